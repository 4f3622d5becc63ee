"""Signed commands: the triage web signs what it tells the publisher to do
(``replies.requested``, ``consent.withdrawn``, ``replies.action``,
``speakers.paused``); the publisher obeys nothing else.

HMAC-SHA256 over the canonical JSON of the message (keys sorted, no spaces,
UTF-8, the ``signature`` member left out) and the logical topic, so a signed
command is valid only on its own topic. The signature travels in the message:
``"signature": {"key_id": "k2", "hmac_sha256": "<hex>"}``.

Keys come from the environment (:class:`SigningSettings`, ``COMMAND_SIGNING_*``):
several verify keys and one signing key, so keys rotate without a stop (README).
A key is a :class:`~pydantic.SecretStr`: never logged, never in an error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.codec import DecodeError
from services.common.config import PLACEHOLDER_SECRETS, Environment, ServiceSettings
from services.common.topics import (
    CONSENT_WITHDRAWN,
    REPLIES_ACTION,
    REPLIES_REQUESTED,
    SPEAKERS_PAUSED,
)

#: The topics whose messages are commands the publisher obeys only when signed.
SIGNED_TOPICS = frozenset({REPLIES_REQUESTED, CONSENT_WITHDRAWN, REPLIES_ACTION, SPEAKERS_PAUSED})
#: The member of a command that carries its signature.
SIGNATURE_FIELD = "signature"
#: The development key: ``make run`` and the tests sign with it; production refuses it.
DEV_KEY_ID = "dev"
DEV_KEY = "takeaction-development-only-command-key"
#: Shortest key production accepts (characters).
MIN_KEY_CHARS = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_DOMAIN = b"takeaction.command.v1"


class SignatureError(DecodeError):
    """A command that is not signed, or not signed with a key this service trusts.

    ``reason`` is a short label for metrics (``unsigned``, ``unknown_key``,
    ``bad_signature``, ``malformed``); the message says more, never a key.
    """

    step = "verify"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _parse_keys(raw: str) -> dict[str, str]:
    """``id:secret,id:secret`` → {id: secret}. Errors name the key id, never a secret."""
    keys: dict[str, str] = {}
    for n, part in enumerate(p.strip() for p in raw.split(",")):
        if not part:
            continue
        key_id, sep, secret = part.partition(":")
        key_id = key_id.strip()
        if not sep or not _KEY_ID.match(key_id):
            raise ValueError(
                f"COMMAND_SIGNING_KEYS entry {n + 1} is not '<id>:<secret>' "
                "(id: letters, digits, '_', '.', '-', at most 32)"
            )
        if key_id in keys:
            raise ValueError(f"COMMAND_SIGNING_KEYS names key {key_id!r} twice")
        if not secret:
            raise ValueError(f"COMMAND_SIGNING_KEYS key {key_id!r} is empty")
        keys[key_id] = secret
    if not keys:
        raise ValueError("COMMAND_SIGNING_KEYS has no key")
    return keys


class SigningSettings(ServiceSettings):
    """``COMMAND_SIGNING_*``: the keys of signed commands, shared by the triage web
    (signs with ``key_id``) and the publisher (verifies with any of ``keys``)."""

    model_config = SettingsConfigDict(
        env_prefix="COMMAND_SIGNING_",
        frozen=True,
        extra="ignore",
        env_ignore_empty=True,
        hide_input_in_errors=True,
    )
    secret_fields: ClassVar[tuple[str, ...]] = ()

    #: Keys that sign and verify commands, ``<id>:<secret>`` comma-separated (secret;
    #: production refuses the development key and any key under 32 characters).
    keys: SecretStr = SecretStr(f"{DEV_KEY_ID}:{DEV_KEY}")
    #: Id of the key the triage web signs with (one of ``keys``); unset: the first.
    key_id: str | None = None

    @model_validator(mode="after")
    def _keys_usable(self) -> SigningSettings:
        keys = _parse_keys(self.keys.get_secret_value())
        if self.key_id is not None and self.key_id not in keys:
            raise ValueError(
                f"COMMAND_SIGNING_KEY_ID={self.key_id!r} is not one of COMMAND_SIGNING_KEYS"
            )
        if self.environment is Environment.PRODUCTION:
            for key_id, secret in keys.items():
                if (
                    secret == DEV_KEY
                    or secret.strip().lower() in PLACEHOLDER_SECRETS
                    or len(secret) < MIN_KEY_CHARS
                ):
                    raise ValueError(
                        f"COMMAND_SIGNING_KEYS key {key_id!r} is a placeholder or shorter "
                        f"than {MIN_KEY_CHARS} characters; set a real key in the environment"
                    )
        return self

    def command_keys(self) -> CommandKeys:
        keys = _parse_keys(self.keys.get_secret_value())
        signing = self.key_id or next(iter(keys))
        return CommandKeys(
            signing_id=signing,
            keys={key_id: SecretStr(secret) for key_id, secret in keys.items()},
        )


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load(value: bytes) -> dict[str, Any]:
    try:
        document = json.loads(
            value.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise SignatureError("malformed", f"not a JSON command: {exc}") from exc
    if not isinstance(document, dict):
        raise SignatureError("malformed", "not a JSON object")
    return document


def canonical(document: Mapping[str, Any]) -> bytes:
    """The bytes a command's signature covers: sorted keys, no spaces, UTF-8,
    without its ``signature`` member."""
    body = {k: v for k, v in document.items() if k != SIGNATURE_FIELD}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True)
class CommandKeys:
    """One signing key (by id) and every key that verifies."""

    signing_id: str
    keys: Mapping[str, SecretStr]

    def __post_init__(self) -> None:
        if self.signing_id not in self.keys:
            raise ValueError(f"signing key {self.signing_id!r} is not among the keys")

    def _mac(self, key_id: str, topic: str, body: bytes) -> str:
        secret = self.keys[key_id].get_secret_value().encode("utf-8")
        message = b"\x00".join((_DOMAIN, topic.encode("utf-8"), body))
        return hmac.new(secret, message, hashlib.sha256).hexdigest()

    def sign(self, topic: str, value: bytes) -> bytes:
        """``value`` (a JSON command for the logical ``topic``) with its signature."""
        document = _load(value)
        document[SIGNATURE_FIELD] = {
            "key_id": self.signing_id,
            "hmac_sha256": self._mac(self.signing_id, topic, canonical(document)),
        }
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def verify(self, topic: str, value: bytes | None) -> None:
        """Raise :class:`SignatureError` unless ``value`` carries a valid signature
        for the logical ``topic`` by one of the keys."""
        if value is None:
            raise SignatureError("unsigned", "empty message (tombstone)")
        document = _load(value)
        signature = document.get(SIGNATURE_FIELD)
        if signature is None:
            raise SignatureError("unsigned", f"unsigned command on {topic}")
        if (
            not isinstance(signature, dict)
            or not isinstance(signature.get("key_id"), str)
            or not isinstance(signature.get("hmac_sha256"), str)
        ):
            raise SignatureError("malformed", "signature is not {key_id, hmac_sha256}")
        key_id: str = signature["key_id"]
        if key_id not in self.keys:
            raise SignatureError("unknown_key", f"signed with unknown key id {key_id[:32]!r}")
        expected = self._mac(key_id, topic, canonical(document))
        given = signature["hmac_sha256"].encode("utf-8")
        if not hmac.compare_digest(expected.encode("ascii"), given):
            raise SignatureError("bad_signature", f"bad signature (key id {key_id!r})")


__all__ = [
    "DEV_KEY",
    "DEV_KEY_ID",
    "SIGNED_TOPICS",
    "CommandKeys",
    "SignatureError",
    "SigningSettings",
    "canonical",
]
