from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.config import ServiceSettings
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


def test_a_settings_error_never_shows_the_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 17 (Medium 5): a placeholder in one setting must not print the input,
    whose tail is another real secret here."""
    monkeypatch.setenv("TAKEACTION_ENV", "production")
    monkeypatch.setenv("INGEST_API_KEY", "changeme")
    monkeypatch.setenv("INGEST_MASTODON_ACCESS_TOKEN", "q8V1mZ3kP0wXr7Ty2uLc-REALTAIL")
    with pytest.raises(ValidationError, match="placeholder") as caught:
        IngestSettings()
    assert "REALTAIL" not in str(caught.value)
    assert "REALTAIL" not in repr(caught.value)


def _settings_classes() -> list[type[ServiceSettings]]:
    for module in SETTINGS_MODULES:
        importlib.import_module(module)
    found: list[type[ServiceSettings]] = []
    todo: list[type[ServiceSettings]] = [ServiceSettings]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


SETTINGS_MODULES = (
    "services.common.kafka",
    "services.common.signing",
    "services.ingest.config",
    "services.media.config",
    "services.publish.config",
    "services.sandbox.config",
    "services.triage.config",
    "services.triage.web.config",
    "services.triage.worker.config",
)


def test_every_settings_class_hides_inputs_in_errors() -> None:
    classes = _settings_classes()
    assert len(classes) >= 10
    shown = [c.__name__ for c in classes if not c.model_config.get("hide_input_in_errors")]
    assert shown == []


def test_every_settings_class_is_found() -> None:
    """A settings class outside SETTINGS_MODULES would escape the test above."""
    services = Path(__file__).resolve().parents[2] / "services"
    modules = {
        ".".join(path.relative_to(services.parent).with_suffix("").parts)
        for path in services.rglob("*.py")
        if "(ServiceSettings)" in path.read_text(encoding="utf-8")
        or "Settings(TriageSettings)" in path.read_text(encoding="utf-8")
        or "Settings(ClassifierSettings)" in path.read_text(encoding="utf-8")
    }
    assert modules <= set(SETTINGS_MODULES)
