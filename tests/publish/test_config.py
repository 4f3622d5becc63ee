"""Publisher and sandbox settings: documented, real endpoints by default, no
placeholder tokens in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from services.devstack import configdoc
from services.publish.config import PublishSettings
from services.sandbox import SandboxSettings
from tests.helpers import ROOT


@pytest.mark.parametrize("settings", [PublishSettings, SandboxSettings])
def test_every_setting_has_a_doc_comment(settings: type[BaseSettings]) -> None:
    comments = configdoc.field_comments(settings)

    assert [name for name in settings.model_fields if name not in comments] == []


def test_the_readme_tables_are_up_to_date() -> None:
    readme = (ROOT / "services/publish/README.md").read_text(encoding="utf-8")

    assert configdoc.render(readme) == readme, "run configdoc --write services/publish/README.md"


def test_defaults_are_the_real_platforms_and_nothing_is_enabled() -> None:
    settings = PublishSettings()

    assert settings.x_api_base_url == "https://api.x.com"
    assert settings.mastodon_base_url is None
    assert settings.x_access_token is None
    assert not settings.x_enabled


def test_chunks_over_5_mib_are_refused() -> None:
    with pytest.raises(ValidationError, match="x_chunk_bytes"):
        PublishSettings(x_chunk_bytes=5 * 1024 * 1024 + 1)


def test_a_refresh_token_needs_the_client_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLISH_X_REFRESH_TOKEN", "refresh-token")

    with pytest.raises(ValidationError, match="need x_client_id"):
        PublishSettings()
    monkeypatch.setenv("PUBLISH_X_CLIENT_ID", "app")
    settings = PublishSettings()
    assert settings.x_enabled
    assert settings.x_refresh_token is not None
    assert "refresh-token" not in repr(settings)


def test_production_refuses_a_placeholder_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKEACTION_ENV", "production")
    monkeypatch.setenv("PUBLISH_X_ACCESS_TOKEN", "changeme")

    with pytest.raises(ValidationError, match="x_access_token"):
        PublishSettings()


def test_sandbox_public_url_defaults_to_where_it_listens() -> None:
    assert SandboxSettings(port=8123).base_url == "http://127.0.0.1:8123"
    assert SandboxSettings(public_url="http://demo:9/").base_url == "http://demo:9"
