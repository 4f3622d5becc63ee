"""The layout issue 15 set, kept: the triage worker and web do not import each
other, the shared floor (``services/common``) imports no service, and no module
outgrows 700 lines (generated migrations aside)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

SERVICES = ROOT / "services"
#: The packages ``services/common`` may not import (every deployable and dev tool).
ABOVE_COMMON = ("devstack", "ingest", "media", "publish", "sandbox", "triage")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "migrations" not in p.parts)


def _offenders(folder: Path, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    found = {}
    for path in _modules(folder):
        bad = sorted(name for name in _imports(path) if any(name.startswith(f) for f in forbidden))
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    return found


def test_the_triage_worker_and_web_do_not_import_each_other() -> None:
    assert _offenders(SERVICES / "triage" / "worker", ("services.triage.web",)) == {}
    assert _offenders(SERVICES / "triage" / "web", ("services.triage.worker",)) == {}


def test_common_imports_no_service() -> None:
    forbidden = tuple(f"services.{name}" for name in ABOVE_COMMON)
    assert _offenders(SERVICES / "common", forbidden) == {}


def test_no_module_is_over_700_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for path in _modules(SERVICES)
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 700
    }
    assert long == {}
