"""The READMEs' configuration tables cannot drift from the settings classes."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from services.common.kafka import KafkaSettings
from services.devstack import configdoc
from services.ingest.config import IngestSettings
from services.triage.web.config import WebSettings
from services.triage.worker.config import WorkerSettings
from tests.helpers import ROOT

DOCUMENTED = [KafkaSettings, IngestSettings, WorkerSettings, WebSettings]
READMES = [
    "README.md",
    "services/ingest/README.md",
    "services/triage/README.md",
    "services/publish/README.md",
    "services/sandbox/README.md",
]


@pytest.mark.parametrize("settings", DOCUMENTED)
def test_every_setting_has_a_doc_comment(settings: type[BaseSettings]) -> None:
    comments = configdoc.field_comments(settings)
    undocumented = [name for name in settings.model_fields if name not in comments]
    assert undocumented == []


@pytest.mark.parametrize("readme", READMES)
def test_readme_tables_are_up_to_date(readme: str) -> None:
    current = (ROOT / readme).read_text(encoding="utf-8")
    assert "<!-- config:" in current
    assert configdoc.render(current) == current, f"run `make docs` ({readme} is stale)"


def test_render_replaces_a_stale_table() -> None:
    stale = "x\n<!-- config:services.common.kafka:KafkaSettings -->\nold\n<!-- /config -->\ny\n"
    fresh = configdoc.render(stale)
    assert "\nold\n" not in fresh
    assert "`KAFKA_BOOTSTRAP_SERVERS`" in fresh
    assert fresh.startswith("x\n")
    assert fresh.endswith("<!-- /config -->\ny\n")


def test_tables_do_not_depend_on_where_the_checkout_lives() -> None:
    for readme in READMES:
        assert str(ROOT) not in (ROOT / readme).read_text(encoding="utf-8"), readme
