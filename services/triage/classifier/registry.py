"""Model versions on disk and which one is live: what the worker, the web and the
retrain job share (a folder, no database: the worker has none).

``TRIAGE_MODELS_DIR`` (``var/triage/models``) holds one folder per trained
version (``versions/<version>/``: the artefacts the classifier loads, its
``metrics.json`` and the gate's ``gate.json``), the pointer ``live.json`` and
``history.jsonl`` (every switch: who, when, from, to, why).

Without a pointer the committed artefacts (``services/triage/model``) are live.
A switch writes the pointer to a temporary file, fsyncs it and renames it over
``live.json`` (atomic on POSIX): a crash at any point leaves either the old
pointer or the new one, never half of one, and a version folder is complete
before any pointer names it (it is written under ``tmp-*`` and renamed).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.common.files import fsync_path, write_atomic
from services.triage.classifier import artefacts

LIVE_FILE = "live.json"
HISTORY_FILE = "history.jsonl"
GATE_FILE = "gate.json"
METRICS_FILE = "metrics.json"
VERSIONS = "versions"
#: The committed artefacts' name in the registry (always there, never deleted).
COMMITTED = "committed"
_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


class RegistryError(Exception):
    """An unknown or malformed version, or a version folder that cannot be loaded."""


@dataclass(frozen=True, slots=True)
class Live:
    """The live version: its name and its artefact folder (``mtime_ns`` of the pointer
    lets a reader see a switch with one ``stat``)."""

    version: str
    directory: Path
    stamp: tuple[int, int]


def valid_version(version: str) -> str:
    if not _VERSION.fullmatch(version):
        raise RegistryError(f"not a version name: {version!r}")
    return version


class Registry:
    """The versions under ``root`` and the live pointer."""

    def __init__(self, root: Path, committed: Path = artefacts.ARTEFACT_DIR) -> None:
        self.root = root
        self.committed = committed

    # --- reading ---------------------------------------------------------------------

    def directory(self, version: str) -> Path:
        """The artefact folder of ``version`` (``committed``: the repository's)."""
        if version == COMMITTED:
            return self.committed
        path = self.root / VERSIONS / valid_version(version)
        if not (path / artefacts.METADATA_FILE).exists():
            raise RegistryError(f"no model version {version!r}")
        return path

    def stamp(self) -> tuple[int, int]:
        """Changes whenever the pointer is replaced (inode, mtime); (0, 0) without one."""
        try:
            st = (self.root / LIVE_FILE).stat()
        except FileNotFoundError:
            return (0, 0)
        return (st.st_ino, st.st_mtime_ns)

    def live(self) -> Live:
        """The live version; the committed one without a (readable) pointer."""
        stamp = self.stamp()
        try:
            raw = json.loads((self.root / LIVE_FILE).read_text(encoding="utf-8"))
            version = str(raw["version"])
            return Live(version, self.directory(version), stamp)
        except (FileNotFoundError, ValueError, KeyError, TypeError, RegistryError):
            return Live(COMMITTED, self.committed, stamp)

    def versions(self) -> list[str]:
        """Every trained version, oldest first (by folder time), then ``committed``."""
        folder = self.root / VERSIONS
        if not folder.is_dir():
            return [COMMITTED]
        found = [
            p
            for p in folder.iterdir()
            if p.is_dir() and _VERSION.fullmatch(p.name) and (p / artefacts.METADATA_FILE).exists()
        ]
        found.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [COMMITTED, *(p.name for p in found)]

    def read_json(self, version: str, name: str) -> dict[str, Any]:
        try:
            value = json.loads((self.directory(version) / name).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def history(self) -> list[dict[str, Any]]:
        path = self.root / HISTORY_FILE
        if not path.exists():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash
        return rows

    def model_version(self, version: str) -> str:
        """The version the classifier reports (and decisions record) for ``version``."""
        return artefacts.load_metadata(self.directory(version)).version

    # --- writing -----------------------------------------------------------------------

    def staging(self, name: str) -> Path:
        """An empty folder to write a candidate into (see :meth:`add`)."""
        path = self.root / f"tmp-{valid_version(name)}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def add(self, staged: Path, version: str) -> Path:
        """Move a complete candidate folder into place under ``version``."""
        artefacts.load_metadata(staged)  # complete, or refuse
        target = self.root / VERSIONS / valid_version(version)
        if target.exists():
            raise RegistryError(f"model version {version!r} exists already")
        target.parent.mkdir(parents=True, exist_ok=True)
        staged.replace(target)
        fsync_path(target.parent)
        return target

    def write_gate(self, version: str, gate: dict[str, Any]) -> None:
        write_atomic(
            self.directory(version) / GATE_FILE, (json.dumps(gate, indent=2) + "\n").encode()
        )

    def switch(self, version: str, *, by: str, why: str) -> Live:
        """Make ``version`` live (promotion or rollback); recorded in the history."""
        directory = self.directory(version)
        artefacts.load_metadata(directory)  # never point at what cannot load
        previous = self.live().version
        self.root.mkdir(parents=True, exist_ok=True)
        at = datetime.now(UTC).isoformat()
        pointer = {"version": version, "at": at, "by": by, "why": why}
        write_atomic(self.root / LIVE_FILE, (json.dumps(pointer) + "\n").encode())
        entry = {**pointer, "from": previous}
        with (self.root / HISTORY_FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        return self.live()
