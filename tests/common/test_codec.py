from __future__ import annotations

from collections.abc import Callable

import pytest

from services.common import codec
from services.common.messages import MentionReceived


def test_decode_round_trip(mention_factory: Callable[..., MentionReceived]) -> None:
    mention = mention_factory(text="Habari! ¿Qué tal? 👋")
    assert codec.decode(MentionReceived, codec.encode(mention)) == mention


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "tombstone"),
        (b"\xff\xfe{", "not valid UTF-8"),
        (b"{not json", "malformed JSON"),
        (b"[]", "invalid MentionReceived"),
        (b'{"schema_version": 1}', "invalid MentionReceived"),
        (b"x" * (codec.MAX_MESSAGE_BYTES + 1), "exceeds"),
    ],
)
def test_decode_errors_say_what_is_wrong(raw: bytes | None, reason: str) -> None:
    with pytest.raises(codec.DecodeError, match=reason):
        codec.decode(MentionReceived, raw)


def test_validation_summary_names_the_field(
    mention_factory: Callable[..., MentionReceived],
) -> None:
    raw = mention_factory().model_dump_json().replace('"handle":"asker', '"handle_x":"asker')
    with pytest.raises(codec.DecodeError, match=r"author\.handle: Field required"):
        codec.decode(MentionReceived, raw.encode())


def test_encode_key() -> None:
    assert codec.encode_key("x:1") == b"x:1"
    assert codec.encode_key(None) is None
