from __future__ import annotations

from services.common.messages import Platform
from services.common.replyability import NOT_SUMMONED_ON_X, replyability


def test_x_refuses_a_reply_to_a_post_that_did_not_summon_the_account() -> None:
    assert replyability(Platform.X, False) == (False, NOT_SUMMONED_ON_X)
    assert replyability("x", True).can_reply
    # Not known (a mention heard before ingest recorded it): X decides.
    assert replyability(Platform.X, None).can_reply


def test_mastodon_has_no_such_rule() -> None:
    assert replyability(Platform.MASTODON, False) == (True, None)
