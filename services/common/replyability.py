"""Whether a platform lets the campaign account answer a mention by a reply.

Since 2026-02-23 a self-serve X app may reply only to a post whose author
summoned the replying account (@mentioned it, or quoted one of its posts); X
refuses any other reply with a 403. Mastodon and Bluesky have no such rule. The
triage web shows this on every question, routes by it, and the publisher
refuses, before uploading anything, a reply X would refuse.
"""

from __future__ import annotations

from typing import NamedTuple

from services.common.messages import Platform

#: Why a post that did not summon the account cannot be answered by a reply on X.
NOT_SUMMONED_ON_X = (
    "X lets the campaign account reply only to a post that @mentions it or quotes one of "
    "its posts, and this one does neither (a hashtag-only post): answer it with a "
    "standalone post instead"
)


class Replyability(NamedTuple):
    can_reply: bool
    #: Why not, when ``can_reply`` is false.
    reason: str | None = None


def replyability(platform: Platform | str, summoned: bool | None) -> Replyability:
    """Can a reply go under this mention? ``summoned`` ``None`` (a mention heard
    before ingest recorded it) is given the benefit of the doubt: X decides."""
    if Platform(platform) is Platform.X and summoned is False:
        return Replyability(False, NOT_SUMMONED_ON_X)
    return Replyability(True)
