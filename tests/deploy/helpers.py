"""What the deploy checks share: the settings classes every deployment file is
held against, the services they describe, and the external tools they run.

A check that needs a tool which is not installed fails with what to install
(``make install`` for the Python ones, ``make system-deps`` for the Debian ones);
it is skipped instead only when ``TAKEACTION_ALLOW_MISSING_TOOLS=1`` is set, a
documented opt-out for a machine where the tool cannot be installed (CI never
sets it).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from services.common.config import ServiceSettings
from services.common.kafka import KafkaSettings
from services.common.signing import SigningSettings
from services.devstack.configdoc import env_names
from services.ingest.config import IngestSettings
from services.media.config import MediaSettings
from services.publish.config import PublishSettings
from services.triage.web.config import WebSettings
from services.triage.worker.config import WorkerSettings
from tests.helpers import ROOT

DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"

SETTINGS: tuple[type[BaseSettings], ...] = (
    KafkaSettings,
    IngestSettings,
    WorkerSettings,
    WebSettings,
    PublishSettings,
    MediaSettings,
    SigningSettings,
)
#: Variables read outside the settings classes (services.common.logs).
OTHER_VARIABLES = frozenset({"LOG_FORMAT", "LOG_LEVEL"})
#: Read by every service (Kafka, logging, the environment guard).
COMMON_PREFIXES = ("KAFKA_", "LOG_", "TAKEACTION_")

ALLOW_MISSING = "TAKEACTION_ALLOW_MISSING_TOOLS"
#: What a server binds in a container (its health checks and peers come from outside).
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
#: The one writable path of a read-only container.
TMP = "/tmp"  # noqa: S108

#: Secrets a deployment requires although the settings class lets them be unset.
REQUIRED_HERE: dict[str, frozenset[str]] = {
    # The moderators cannot log in to a fresh stack without a first admin; the web signs
    # the publisher's commands and the publisher obeys only those (the same keys).
    "triage-web": frozenset({"TRIAGE_ADMIN_PASSWORD", "COMMAND_SIGNING_KEYS"}),
    "publish": frozenset({"COMMAND_SIGNING_KEYS"}),
}
#: Secrets every service of a deployment needs: SASL/SCRAM to Kafka (production
#: refuses PLAINTEXT).
EVERY_SERVICE_REQUIRES = frozenset({"KAFKA_SASL_PASSWORD"})
#: Settings a service reads beside its own prefix and the common ones.
ALSO_READS: dict[str, tuple[str, ...]] = {
    "triage-web": ("COMMAND_SIGNING_",),
    "publish": ("COMMAND_SIGNING_",),
}


@dataclass(frozen=True)
class Service:
    """One long-running process of the stack and the settings it runs under."""

    name: str
    module: str
    command: str
    settings: type[ServiceSettings]
    #: Settings fields of the address and port its HTTP server binds.
    host_field: str
    port_field: str
    #: Settings fields of the internal port (metrics, health details), when it has one.
    internal_host_field: str | None = None
    internal_port_field: str | None = None

    @property
    def prefix(self) -> str:
        return str(self.settings.model_config.get("env_prefix", ""))

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Every prefix of the variables it reads (its own, the common ones, others)."""
        return (self.prefix, *COMMON_PREFIXES, *ALSO_READS.get(self.name, ()))

    @property
    def port(self) -> int:
        value = self.settings.model_fields[self.port_field].default
        assert isinstance(value, int)
        return value

    @property
    def metrics_port(self) -> int:
        """Where Prometheus scrapes: the internal port, else the only one."""
        if self.internal_port_field is None:
            return self.port
        value = self.settings.model_fields[self.internal_port_field].default
        assert isinstance(value, int)
        return value

    def env(self, field: str) -> str:
        return f"{self.prefix}{field}".upper()

    @property
    def required_secrets(self) -> frozenset[str]:
        required = frozenset(self.env(f) for f in self.settings.secret_fields)
        return required | REQUIRED_HERE.get(self.name, frozenset()) | EVERY_SERVICE_REQUIRES

    @property
    def optional_secrets(self) -> frozenset[str]:
        return frozenset(self.env(f) for f in self.settings.optional_secret_fields)


SERVICES: dict[str, Service] = {
    s.name: s
    for s in (
        Service("ingest", "services.ingest", "serve", IngestSettings, "host", "port"),
        Service(
            "triage-worker",
            "services.triage",
            "worker",
            WorkerSettings,
            "worker_host",
            "worker_port",
        ),
        Service(
            "triage-web",
            "services.triage",
            "web",
            WebSettings,
            "host",
            "port",
            internal_host_field="internal_host",
            internal_port_field="internal_port",
        ),
        Service("publish", "services.publish", "serve", PublishSettings, "host", "port"),
        Service("media", "services.media", "serve", MediaSettings, "host", "port"),
    )
}
#: The topic bootstrap: runs once, no server.
BOOTSTRAP_MODULE = "services.common.bootstrap"


def known_variables() -> set[str]:
    """Every environment variable some service reads."""
    return {env for settings in SETTINGS for env, _ in env_names(settings)} | OTHER_VARIABLES


def secret_variables() -> set[str]:
    """Every variable whose setting is a secret (``SecretStr``)."""
    secrets = set()
    for settings in SETTINGS:
        for env, field in env_names(settings):
            annotation = str(settings.model_fields[field].annotation)
            if SecretStr.__name__ in annotation:
                secrets.add(env)
    return secrets


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def require_tool(name: str, install: str) -> str:
    """The path of the executable ``name`` (the virtualenv's own first), or fail saying
    how to install it."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed; {install}"
    if os.environ.get(ALLOW_MISSING) == "1":
        pytest.skip(f"{message} ({ALLOW_MISSING}=1)")
    pytest.fail(f"{message} (or set {ALLOW_MISSING}=1 to skip this check)", pytrace=False)


def require_module(name: str, install: str) -> Any:
    """Import ``name`` or fail saying how to install it (same opt-out as tools)."""
    import importlib  # noqa: PLC0415 - only here, so a missing tool is a message, not an error

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError:
        message = f"the Python module {name} is not installed; {install}"
        if os.environ.get(ALLOW_MISSING) == "1":
            pytest.skip(f"{message} ({ALLOW_MISSING}=1)")
        pytest.fail(f"{message} (or set {ALLOW_MISSING}=1 to skip this check)", pytrace=False)
