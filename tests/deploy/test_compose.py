"""docker-compose.yml cannot drift from the code: one container per service running
a command that exists, on the port its settings class says, setting only variables
some service reads; secrets required, never defaulted; startup ordered by health;
.env.example listing exactly what the file reads; and the file accepted by a real
compose implementation (Debian's docker-compose, ``make system-deps``), whose
resolved environment every service's settings class must accept in production."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from sqlalchemy.engine import make_url

from services.common.kafka import KafkaSettings
from services.common.signing import SigningSettings
from services.ingest.config import IngestSettings
from tests.deploy.helpers import (
    ALL_INTERFACES,
    BOOTSTRAP_MODULE,
    COMMON_PREFIXES,
    COMPOSE,
    DEPLOY,
    SERVICES,
    TMP,
    known_variables,
    load_yaml,
    require_tool,
    secret_variables,
)

ENV_EXAMPLE = COMPOSE.parent / ".env.example"
#: ``${NAME}``, ``${NAME:-default}``, ``${NAME:?message}`` (and the forms without ``:``).
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<sep>:?[-?])?(?P<rest>[^}]*)\}")
SECRET_NAME = re.compile(r"(KEY|TOKEN|PASSWORD|SECRET)$")
#: Third-party images the stack runs (not built from this repository).
INFRASTRUCTURE = {"kafka", "postgres", "prometheus", "grafana"}
MONITORING = {"prometheus", "grafana"}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE)
    return loaded


def _services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = _compose()["services"]
    return services


def _our_services() -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in _services().items() if "build" in spec}


def _env(name: str) -> dict[str, Any]:
    environment: dict[str, Any] = _services()[name].get("environment", {})
    return environment


def _interpolations() -> list[re.Match[str]]:
    """Every ``${...}`` of the file outside comments."""
    lines = COMPOSE.read_text(encoding="utf-8").splitlines()
    code = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return list(INTERPOLATION.finditer(code))


def _required_variables() -> set[str]:
    return {m["name"] for m in _interpolations() if m["sep"] == ":?"}


def _read_variables() -> set[str]:
    """Every variable compose takes from .env or the shell: interpolated, or passed
    through bare (``KEY:`` with no value)."""
    interpolated = {m["name"] for m in _interpolations()}
    passed = {key for name in _our_services() for key, v in _env(name).items() if v is None}
    return interpolated | passed


# --- the file itself ---------------------------------------------------------------------


def test_one_container_per_service_and_the_topic_bootstrap() -> None:
    assert set(_our_services()) == {*SERVICES, "kafka-init"}
    assert set(_services()) >= INFRASTRUCTURE
    assert "name" not in _compose(), "Debian's docker-compose 1.29 rejects a top-level name:"


def test_commands_run_the_services() -> None:
    for name, service in SERVICES.items():
        command = _services()[name]["command"]
        assert command == ["python", "-m", service.module, service.command], name
    assert _services()["kafka-init"]["command"] == ["python", "-m", BOOTSTRAP_MODULE]
    for name, spec in _our_services().items():
        module = spec["command"][2]
        assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"


def test_every_subcommand_exists() -> None:
    """``python -m <module> --help`` lists the subcommand compose runs."""
    by_module: dict[str, set[str]] = {}
    for service in SERVICES.values():
        by_module.setdefault(service.module, set()).add(service.command)
    for module, commands in by_module.items():
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        choices = re.search(r"\{([\w,-]+)\}", done.stdout)
        offered = set(choices[1].split(",")) if choices else set()
        missing = commands - offered
        assert not missing, f"python -m {module} has no command {sorted(missing)}: {offered}"


def test_every_variable_is_a_real_setting() -> None:
    known = known_variables()
    for name in _our_services():
        unknown = set(_env(name)) - known
        assert not unknown, f"{name} sets variables no service reads: {sorted(unknown)}"


def test_each_service_sets_only_what_it_reads() -> None:
    for name, service in SERVICES.items():
        foreign = {k for k in _env(name) if not k.startswith(service.prefixes)}
        assert not foreign, f"{name} does not read {sorted(foreign)}"
    foreign = {k for k in _env("kafka-init") if not k.startswith(COMMON_PREFIXES)}
    assert not foreign, f"kafka-init does not read {sorted(foreign)}"


def test_secrets_are_required_not_defaulted() -> None:
    secrets = secret_variables()
    for name, service in SERVICES.items():
        env = _env(name)
        for key in service.required_secrets:
            assert str(env.get(key, "")).startswith(f"${{{key}:?"), f"{name}.{key}: ${{{key}:?...}}"
        for key in (set(env) & secrets) - service.required_secrets:
            assert key in service.optional_secrets, f"{name}.{key} is a secret nobody may omit"
            assert env[key] is None, f"{name}.{key}: optional secrets pass through bare (`{key}:`)"
    for match in _interpolations():
        if SECRET_NAME.search(match["name"]):
            assert match["sep"] == ":?", f"${{{match['name']}}} must be required: ${{NAME:?...}}"


def test_nothing_is_set_to_an_empty_value() -> None:
    """An empty value is not "unset": ``SecretStr("")`` is refused as a placeholder in
    production, and an empty URL or JSON list is not the default either."""
    for match in _interpolations():
        if match["sep"] in (":-", "-"):
            variable = f"${{{match['name']}{match['sep']}}}"
            assert match["rest"], f"{variable}: pass it through bare instead"
    for name in _our_services():
        empty = [key for key, value in _env(name).items() if value == ""]
        assert not empty, f"{name} sets {empty} to ''"


def test_ports_match_the_settings() -> None:
    for name, service in SERVICES.items():
        spec, env = _services()[name], _env(name)
        port = service.port
        assert env[service.env(service.host_field)] == ALL_INTERFACES, name
        assert env[service.env(service.port_field)] == port, name
        published = [str(p) for p in spec.get("ports", [])]
        exposed = [str(p) for p in spec.get("expose", [])]
        assert str(port) in exposed or f"127.0.0.1:{port}:{port}" in published, name
        if service.internal_port_field and service.internal_host_field:
            assert env[service.env(service.internal_host_field)] == ALL_INTERFACES, name
            assert env[service.env(service.internal_port_field)] == service.metrics_port, name
            assert str(service.metrics_port) in exposed, name  # Prometheus's, not published
        for mapping in published:
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} beyond localhost"
        probe = " ".join(spec["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/healthz" in probe, name


def test_services_are_hardened_and_limited() -> None:
    for name, spec in _services().items():
        assert "no-new-privileges:true" in spec.get("security_opt", []), name
        limits = spec.get("deploy", {}).get("resources", {}).get("limits", {})
        assert {"cpus", "memory"} <= set(limits), f"{name} has no cpu/memory limits"
        if name == "kafka-init":
            assert spec["restart"] == "no"
            continue
        assert spec.get("restart") == "unless-stopped", name
        assert "test" in spec.get("healthcheck", {}), f"{name} has no health check"
    for name, spec in _our_services().items():
        assert spec.get("read_only") is True, f"{name}: read-only root filesystem"
        assert TMP in spec.get("tmpfs", []), name


def test_startup_waits_for_health() -> None:
    for name, spec in _services().items():
        for dependency, condition in spec.get("depends_on", {}).items():
            wanted = "service_healthy"
            if dependency == "kafka-init":
                wanted = "service_completed_successfully"
            assert condition == {"condition": wanted}, f"{name} -> {dependency}"
    for name in SERVICES:
        depends = _services()[name]["depends_on"]
        assert "kafka-init" in depends, f"{name} starts before the topics exist"
        if any(key.endswith("_DATABASE_URL") for key in _env(name)):
            assert "postgres" in depends, f"{name} starts before its database"
    assert "kafka" in _services()["kafka-init"]["depends_on"]


def test_each_service_has_its_own_postgres_database() -> None:
    postgres = _env("postgres")
    created = set(
        re.findall(
            r"CREATE DATABASE (\w+)",
            "".join(p.read_text() for p in (DEPLOY / "postgres" / "initdb").glob("*.sql")),
        )
    )
    databases = []
    for name in SERVICES:
        for key, value in _env(name).items():
            if key.endswith("_DATABASE_URL"):
                url = make_url(INTERPOLATION.sub("secret", value))
                assert url.drivername == "postgresql+asyncpg", key
                assert (url.host, url.port) == ("postgres", 5432), key
                assert url.username == postgres["POSTGRES_USER"], key
                assert "${POSTGRES_PASSWORD:?" in value, key
                assert url.database in created, f"{key}: database {url.database} is never created"
                databases.append(str(url.database))
    # The media worker's queue is a table of the triage database: it shares it.
    assert sorted(databases) == ["publish", "triage", "triage"]
    assert _env("media")["MEDIA_DATABASE_URL"] == _env("triage-web")["TRIAGE_DATABASE_URL"]
    assert "pg_isready" in _services()["postgres"]["healthcheck"]["test"]
    assert "postgres-data:/var/lib/postgresql/data" in _services()["postgres"]["volumes"]


def test_the_publisher_reads_the_answers_where_the_web_wrote_them() -> None:
    """Answers travel as file:// URIs: the publisher needs the same volume at the same
    path, and only to read."""
    media = _env("triage-web")["TRIAGE_MEDIA_DIR"]
    assert f"media:{media}" in _services()["triage-web"]["volumes"]
    assert f"media:{media}:ro" in _services()["publish"]["volumes"]
    assert f"media:{media}" in _services()["media"]["volumes"]  # writes renditions beside them
    assert _env("media")["MEDIA_MEDIA_DIR"] == media
    assert {"media", "postgres-data", "kafka-data"} <= set(_compose()["volumes"])


def test_bind_mounts_exist() -> None:
    for name, spec in _services().items():
        for volume in spec.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"


def test_monitoring_is_an_opt_in_profile() -> None:
    for name, spec in _services().items():
        expected = ["monitoring"] if name in MONITORING else None
        assert spec.get("profiles") == expected, name


def test_env_example_lists_exactly_what_compose_reads() -> None:
    active: dict[str, str] = {}
    commented: set[str] = set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line):
            active[match[1]] = match[2]
        elif match := re.match(r"^# ([A-Z][A-Z0-9_]*)=", line):
            commented.add(match[1])
    required = _required_variables()
    assert set(active) == required, "required variables are the uncommented ones"
    assert all(value == "" for value in active.values()), "no secret value in the example"
    assert commented == _read_variables() - required, "optional variables are listed commented"


# --- a real compose ------------------------------------------------------------------------


def _secret(name: str) -> str:
    if name == "COMMAND_SIGNING_KEYS":  # <id>:<secret>, the secret 32+ characters
        return f"k1:{name.lower().replace('_', '-')}-0123456789abcdef"
    return f"{name.lower().replace('_', '-')}-0123456789abcdef"


def _env_file(tmp_path: Path, *, optional: bool, drop: str | None = None) -> Path:
    """.env.example with its required secrets filled in (but ``drop``), and with the
    optional lines uncommented when ``optional`` (empty secrets filled in too)."""
    lines = []
    for example in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = example
        if optional and (match := re.match(r"^# ([A-Z][A-Z0-9_]*=.*)$", line)):
            line = match[1]
        if match := re.match(r"^([A-Z][A-Z0-9_]*)=$", line):
            if match[1] == drop:
                continue
            line = f"{match[1]}={_secret(match[1])}"
        lines.append(line)
    path = tmp_path / "stack.env"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _compose_cli(tmp_path: Path, env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    executable = require_tool(
        "docker-compose", "`make system-deps` installs Debian's docker-compose"
    )
    return subprocess.run(
        [
            executable,
            "--project-directory",
            str(COMPOSE.parent),
            "--file",
            str(COMPOSE),
            "--env-file",
            str(env_file),
            *args,
        ],
        # Nothing from this shell or a developer's .env: only the file given.
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("profile", [[], ["--profile", "monitoring"]], ids=["core", "monitoring"])
def test_a_real_compose_accepts_the_file(tmp_path: Path, profile: list[str]) -> None:
    done = _compose_cli(tmp_path, _env_file(tmp_path, optional=False), *profile, "config", "-q")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("secret", sorted(_required_variables()))
def test_compose_refuses_to_start_without_a_required_secret(tmp_path: Path, secret: str) -> None:
    env_file = _env_file(tmp_path, optional=False, drop=secret)
    done = _compose_cli(tmp_path, env_file, "config", "-q")
    assert done.returncode != 0
    assert secret in done.stderr


def _resolved_environments(tmp_path: Path, *, optional: bool) -> dict[str, dict[str, str]]:
    done = _compose_cli(tmp_path, _env_file(tmp_path, optional=optional), "config")
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    return {
        name: {k: str(v) for k, v in (spec.get("environment") or {}).items() if v is not None}
        for name, spec in services.items()
        if name in SERVICES or name == "kafka-init"
    }


def _settings_under(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *classes: type[BaseModel]
) -> list[BaseModel]:
    with monkeypatch.context() as patch:
        for key in list(os.environ):
            if key.startswith(
                ("INGEST_", "TRIAGE_", "PUBLISH_", "COMMAND_SIGNING_", *COMMON_PREFIXES)
            ):
                patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        return [cls() for cls in classes]


@pytest.mark.parametrize("optional", [False, True], ids=["required-only", "every-option"])
def test_every_service_accepts_the_environment_compose_gives_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, optional: bool
) -> None:
    """The stack as .env.example describes it starts: every settings class validates
    (production: no placeholder secret) what compose resolves for its container."""
    resolved = _resolved_environments(tmp_path, optional=optional)
    for name, service in SERVICES.items():
        env = resolved[name]
        assert env["TAKEACTION_ENV"] == "production"
        settings, kafka = _settings_under(monkeypatch, env, service.settings, KafkaSettings)
        assert getattr(settings, service.port_field) == service.port
        assert isinstance(kafka, KafkaSettings)
        assert kafka.bootstrap_servers == "kafka:29092"
        if "COMMAND_SIGNING_KEYS" in service.required_secrets:
            (signing,) = _settings_under(monkeypatch, env, SigningSettings)
            assert isinstance(signing, SigningSettings)
    (kafka,) = _settings_under(monkeypatch, resolved["kafka-init"], KafkaSettings)
    assert isinstance(kafka, KafkaSettings)
    assert kafka.partitions == 6
    if optional:
        (ingest,) = _settings_under(monkeypatch, resolved["ingest"], IngestSettings)
        assert isinstance(ingest, IngestSettings)
        # JSON in .env survives quoting and its '#' (a comment marker when unquoted).
        assert [rule.value for rule in ingest.x_rules] == [
            "@TakeActionCamps OR #TakeAction -is:retweet"
        ]
        assert kafka.topic_partitions == {"mentions.raw": 12}
