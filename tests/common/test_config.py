from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.ingest.config import IngestSettings


def test_placeholder_secret_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKEACTION_ENV", "production")
    monkeypatch.setenv("INGEST_API_KEY", "changeme")
    with pytest.raises(ValidationError, match="placeholder"):
        IngestSettings()


def test_real_secret_accepted_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKEACTION_ENV", "production")
    monkeypatch.setenv("INGEST_API_KEY", "q8V1mZ3kP0wXr7Ty2uLc")
    settings = IngestSettings()
    assert settings.api_key.get_secret_value() == "q8V1mZ3kP0wXr7Ty2uLc"
    assert "q8V1" not in repr(settings)


def test_development_allows_empty_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TAKEACTION_ENV", raising=False)
    monkeypatch.delenv("INGEST_API_KEY", raising=False)
    assert IngestSettings().api_key.get_secret_value() == ""


def test_settings_are_frozen() -> None:
    settings = IngestSettings()
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


def test_optional_secret_is_checked_only_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKEACTION_ENV", "production")
    monkeypatch.setenv("INGEST_API_KEY", "q8V1mZ3kP0wXr7Ty2uLc")
    assert IngestSettings().x_bearer_token is None
    monkeypatch.setenv("INGEST_X_BEARER_TOKEN", "secret")
    with pytest.raises(ValidationError, match="x_bearer_token"):
        IngestSettings()
