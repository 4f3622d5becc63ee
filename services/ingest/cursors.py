"""Where a polling or streaming source keeps its cursor between restarts: one small
JSON document per source in ``state_dir``, replaced atomically (a crash mid-write
leaves the previous cursor, never half of one).

A cursor that cannot be read starts the source as on a first start; one that
cannot be written is logged as an error (once, until a write succeeds again) and
the source goes on with the cursor in memory: a restart then reads again what was
taken in, and the sink's dedupe drops the repeats.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class CursorFile:
    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what
        self._failing = False

    def load(self) -> Any:
        """The document saved last; None when there is none or it cannot be read."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning(
                "cannot read the %s at %s (%s); starting without", self.what, self.path, exc
            )
            return None
        try:
            return json.loads(text)
        except ValueError as exc:
            log.warning(
                "the %s at %s is not JSON (%s); starting without", self.what, self.path, exc
            )
            return None

    def save(self, document: Any) -> bool:
        """Write ``document``; False (logged) when it could not be written."""
        problem = self._write(document)
        if problem is not None:
            if not self._failing:
                log.error(
                    "cannot write the %s to %s (%s): it is kept in memory only, a restart "
                    "reads again what was taken in; give ingest a writable INGEST_STATE_DIR",
                    self.what,
                    self.path,
                    problem,
                )
            self._failing = True
            return False
        if self._failing:
            log.info("the %s is written to %s again", self.what, self.path)
        self._failing = False
        return True

    def _write(self, document: Any) -> OSError | None:
        tmp: Path | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            tmp = Path(name)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(document, out)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(self.path)
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            return exc
        return None
