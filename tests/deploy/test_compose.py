"""docker-compose.yml cannot drift from the code: every variable it sets is a
setting some service reads, every command is a module that exists, secrets
are required (no defaults), and the file is valid for a real compose."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from services.common.configdoc import env_names
from services.common.kafka import KafkaSettings
from services.ingest.config import IngestSettings
from tests.conftest import ROOT

COMPOSE = ROOT / "docker-compose.yml"
SETTINGS: list[type[BaseSettings]] = [KafkaSettings, IngestSettings]
#: Variables read outside the settings classes (logging, the image's own).
OTHER_VARIABLES = {"LOG_FORMAT", "LOG_LEVEL"}
SECRETS = re.compile(r"(KEY|TOKEN|PASSWORD|SECRET)$")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _known_variables() -> set[str]:
    return {env for settings in SETTINGS for env, _ in env_names(settings)} | OTHER_VARIABLES


def _our_services() -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in _compose()["services"].items() if "build" in spec}


def test_every_variable_is_a_real_setting() -> None:
    known = _known_variables()
    for name, spec in _our_services().items():
        unknown = set(spec.get("environment", {})) - known
        assert not unknown, f"{name} sets variables no service reads: {sorted(unknown)}"


def test_every_command_is_a_module_that_exists() -> None:
    for name, spec in _our_services().items():
        command = spec["command"]
        assert command[:2] == ["python", "-m"], name
        assert importlib.util.find_spec(command[2]) is not None, f"{name}: {command[2]}"


def test_secrets_are_required_not_defaulted() -> None:
    for name, spec in _our_services().items():
        for key, value in spec.get("environment", {}).items():
            if SECRETS.search(key) and not key.startswith(("INGEST_X_", "INGEST_MASTODON_")):
                assert str(value).startswith(f"${{{key}:?"), f"{name}.{key} must be ${{{key}:?...}}"


def test_ports_match_the_settings() -> None:
    ingest = _our_services()["ingest"]
    assert ingest["environment"]["INGEST_PORT"] == IngestSettings().port
    assert f"127.0.0.1:{IngestSettings().port}:{IngestSettings().port}" in ingest["ports"]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs docker-compose")
def test_a_real_compose_accepts_the_file() -> None:
    done = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        env={"INGEST_API_KEY": "x" * 24, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
