"""Signed commands: what the web signs verifies, anything else is refused with a
reason; keys rotate; production refuses the development key; no key leaks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr, ValidationError

from services.common import topics
from services.common.codec import DecodeError
from services.common.messages import ConsentWithdrawn
from services.common.signing import (
    DEV_KEY,
    CommandKeys,
    SignatureError,
    SigningSettings,
    canonical,
)

REAL_OLD = "o" * 40
REAL_NEW = "n" * 40


def keys(signing: str = "k1", **secrets: str) -> CommandKeys:
    return CommandKeys(
        signing_id=signing,
        keys={k: SecretStr(v) for k, v in (secrets or {"k1": REAL_OLD}).items()},
    )


COMMAND = json.dumps({"reply_id": "r1", "text": "héllo", "n": 1.5, "signature": None}).encode()


def test_a_signed_command_verifies_and_keeps_its_content() -> None:
    k = keys()
    signed = k.sign(topics.REPLIES_REQUESTED, COMMAND)
    k.verify(topics.REPLIES_REQUESTED, signed)
    document = json.loads(signed)
    assert document["signature"]["key_id"] == "k1"
    assert {k: v for k, v in document.items() if k != "signature"} == {
        "reply_id": "r1",
        "text": "héllo",
        "n": 1.5,
    }


def test_the_signature_ignores_key_order_and_spacing() -> None:
    k = keys()
    signed = json.loads(k.sign(topics.REPLIES_REQUESTED, COMMAND))
    reordered = json.dumps(dict(reversed(list(signed.items()))), indent=2).encode()
    k.verify(topics.REPLIES_REQUESTED, reordered)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (COMMAND, "unsigned"),
        (b'{"reply_id": "r1"}', "unsigned"),
        (None, "unsigned"),
        (b"\xff", "malformed"),
        (b"[1]", "malformed"),
        (b'{"a": NaN}', "malformed"),
        (b'{"a": 1, "a": 2}', "malformed"),
        (b'{"a": 1, "signature": "abc"}', "malformed"),
        (b'{"a": 1, "signature": {"key_id": "zz", "hmac_sha256": "00"}}', "unknown_key"),
        (b'{"a": 1, "signature": {"key_id": "k1", "hmac_sha256": "\xc3\xa9"}}', "bad_signature"),
    ],
)
def test_anything_else_is_refused_with_its_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(SignatureError) as caught:
        keys().verify(topics.REPLIES_REQUESTED, value)
    assert caught.value.reason == reason
    assert isinstance(caught.value, DecodeError)
    assert REAL_OLD not in str(caught.value)


def test_a_changed_field_a_wrong_key_or_another_topic_do_not_verify() -> None:
    signed = json.loads(keys().sign(topics.REPLIES_REQUESTED, COMMAND))
    tampered = dict(signed, text="other")
    with pytest.raises(SignatureError, match="bad signature"):
        keys().verify(topics.REPLIES_REQUESTED, json.dumps(tampered).encode())
    forged = keys(k1="x" * 40).sign(topics.REPLIES_REQUESTED, COMMAND)
    with pytest.raises(SignatureError, match="bad signature"):
        keys().verify(topics.REPLIES_REQUESTED, forged)
    with pytest.raises(SignatureError, match="bad signature"):
        keys().verify(topics.CONSENT_WITHDRAWN, json.dumps(signed).encode())


def test_keys_rotate_one_signs_all_verify() -> None:
    old = keys("k1", k1=REAL_OLD)
    both = keys("k2", k2=REAL_NEW, k1=REAL_OLD)
    both.verify(topics.REPLIES_REQUESTED, old.sign(topics.REPLIES_REQUESTED, COMMAND))
    signed = both.sign(topics.REPLIES_REQUESTED, COMMAND)
    assert json.loads(signed)["signature"]["key_id"] == "k2"
    with pytest.raises(SignatureError) as caught:
        old.verify(topics.REPLIES_REQUESTED, signed)
    assert caught.value.reason == "unknown_key"


def test_canonical_form_leaves_the_signature_out() -> None:
    assert canonical({"b": 1, "a": "é", "signature": {"x": 1}}) == '{"a":"é","b":1}'.encode()


def test_a_command_signed_before_a_new_optional_field_still_verifies_and_decodes() -> None:
    """The signature covers the JSON as sent, not the model: a withdrawal signed by a
    web that knew no ``answer_id`` verifies and decodes (``None``); one with it verifies."""
    k = keys()
    event = ConsentWithdrawn(
        speaker_ref="s1", question_ids=("q1",), withdrawn_by="mod1", at=datetime.now(UTC)
    )
    old = event.model_dump(mode="json", exclude={"answer_id"})
    signed = k.sign(topics.CONSENT_WITHDRAWN, json.dumps(old).encode())
    k.verify(topics.CONSENT_WITHDRAWN, signed)
    assert ConsentWithdrawn.model_validate_json(signed).answer_id is None
    new = event.model_copy(update={"answer_id": "a1"}).model_dump_json().encode()
    signed = k.sign(topics.CONSENT_WITHDRAWN, new)
    k.verify(topics.CONSENT_WITHDRAWN, signed)
    assert ConsentWithdrawn.model_validate_json(signed).answer_id == "a1"


# --- settings ---------------------------------------------------------------------


def test_development_has_a_working_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMMAND_SIGNING_KEYS", raising=False)
    monkeypatch.delenv("COMMAND_SIGNING_KEY_ID", raising=False)
    monkeypatch.setenv("TAKEACTION_ENV", "development")
    k = SigningSettings().command_keys()
    k.verify(topics.REPLIES_REQUESTED, k.sign(topics.REPLIES_REQUESTED, COMMAND))


def test_settings_pick_the_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKEACTION_ENV", "production")
    monkeypatch.setenv("COMMAND_SIGNING_KEYS", f"k2:{REAL_NEW}, k1:{REAL_OLD}")
    monkeypatch.setenv("COMMAND_SIGNING_KEY_ID", "k1")
    k = SigningSettings().command_keys()
    assert k.signing_id == "k1"
    assert set(k.keys) == {"k1", "k2"}
    monkeypatch.delenv("COMMAND_SIGNING_KEY_ID")
    assert SigningSettings().command_keys().signing_id == "k2"


@pytest.mark.parametrize(
    "value",
    [f"dev:{DEV_KEY}", "k1:changeme", "k1:short-but-not-a-placeholder", f"k1:{REAL_OLD},k2:secret"],
)
def test_production_refuses_placeholder_keys_without_showing_them(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TAKEACTION_ENV", "production")
    monkeypatch.setenv("COMMAND_SIGNING_KEYS", value)
    with pytest.raises(ValidationError) as caught:
        SigningSettings()
    shown = str(caught.value)
    assert "placeholder" in shown
    for secret in value.replace(",", ":").split(":")[1::2]:
        assert secret not in shown


@pytest.mark.parametrize(
    ("value", "key_id", "message"),
    [
        ("no-colon", None, "not '<id>:<secret>'"),
        (f"k1:{REAL_OLD},k1:{REAL_NEW}", None, "twice"),
        ("k1:", None, "empty"),
        (",", None, "no key"),
        (f"k1:{REAL_OLD}", "k9", "not one of"),
    ],
)
def test_malformed_keys_are_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, key_id: str | None, message: str
) -> None:
    monkeypatch.setenv("COMMAND_SIGNING_KEYS", value)
    if key_id:
        monkeypatch.setenv("COMMAND_SIGNING_KEY_ID", key_id)
    with pytest.raises(ValidationError, match=message) as caught:
        SigningSettings()
    assert REAL_OLD not in str(caught.value)
    assert REAL_NEW not in str(caught.value)


def test_keys_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMAND_SIGNING_KEYS", f"k1:{REAL_OLD}")
    settings = SigningSettings()
    assert REAL_OLD not in repr(settings)
    assert REAL_OLD not in repr(settings.command_keys())
