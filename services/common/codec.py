"""JSON on the wire: explicit encode/decode at every boundary, never pickle.

Decoding is where hostile bytes meet the system, so every way it can fail is
one exception, :class:`DecodeError`, whose message says what was wrong.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

#: Messages bigger than this are refused before parsing.
MAX_MESSAGE_BYTES = 1_048_576


class DecodeError(ValueError):
    """Raised when bytes from a topic or a request are not a valid message."""

    #: The step a consumer's dead letter names (stage ``<service>.<step>``).
    step = "decode"


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode("utf-8")


def encode_key(key: str | None) -> bytes | None:
    return None if key is None else key.encode("utf-8")


def describe_validation_error(error: ValidationError, limit: int = 5) -> str:
    """A short, human-readable summary: ``author.handle: Field required; ...``."""
    parts = []
    for item in error.errors(include_url=False)[:limit]:
        where = ".".join(str(p) for p in item["loc"]) or "(root)"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - limit
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def decode(model: type[M], raw: bytes | None) -> M:
    """Parse ``raw`` as ``model``; raise :class:`DecodeError` with the reason."""
    if raw is None:
        raise DecodeError("empty message (tombstone)")
    if len(raw) > MAX_MESSAGE_BYTES:
        raise DecodeError(f"message of {len(raw)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not valid UTF-8 at byte {exc.start}") from exc
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            raise DecodeError(f"malformed JSON: {exc.errors()[0]['msg']}") from exc
        raise DecodeError(f"invalid {model.__name__}: {describe_validation_error(exc)}") from exc
