"""The sweep of media files nothing references: a video, poster, rendition or subtitle
file of the media folder that no row of the triage database names
(:mod:`.store.media_refs`) and that has not changed for the grace period is removed,
logged by its key and counted. The rules, and why they are safe, are in the triage
README ("Answers").

Only ``objects/``, ``posters/``, ``subtitles/`` and ``renditions/<sha256>/`` are looked
at (a ``renditions/<sha256>/`` folder left empty goes too, once it has been empty for
the grace period and no media job of that original is queued or running); unfinished
uploads have their own expiry and anything else is left alone. No
symbolic link is followed or removed: folders are opened one step at a time with
``O_NOFOLLOW`` and files removed relative to them. The database is read after the
folder is listed and read again right before each batch of removals; when it cannot
be read, nothing is removed that round.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from services.triage.web import metrics
from services.triage.web.store.media_refs import References

log = logging.getLogger(__name__)

#: Folders of one level of files each.
FLAT = ("objects", "posters", "subtitles")
#: The folder of one folder per original (``renditions/<sha256>/<recipe>.mp4``).
RENDITIONS = "renditions"
#: How often the sweep runs (seconds): each round reads every answer, media job and
#: outbox message, and a file is old for a day before it goes, so an hour costs nothing.
EVERY_S = 3600.0
#: The first round, this long after start (seconds): not racing the start-up.
FIRST_S = 60.0
#: Removals per fresh read of the references.
BATCH = 100

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class ReferenceSource(Protocol):
    """What the database names now (:class:`~.store.media_refs.MediaReferences`)."""

    async def snapshot(self) -> References: ...


@dataclass(frozen=True)
class Found:
    """A regular file of the media folder, as it was when listed."""

    #: ``("objects",)`` or ``("renditions", "<sha256>")``.
    folder: tuple[str, ...]
    name: str
    dev: int
    ino: int

    @property
    def key(self) -> str:
        """Where it is in the media folder (what the logs name: no personal data)."""
        return "/".join((*self.folder, self.name))

    @property
    def sha(self) -> str | None:
        """The original's sha256 it was made from (posters and renditions)."""
        if self.folder[0] == RENDITIONS:
            return self.folder[-1]
        if self.folder[0] == "posters":
            return self.name.lstrip(".").partition(".")[0]
        return None


def referenced(found: Found, refs: References, uploads: frozenset[str]) -> bool:
    """Whether anything may still read ``found``: a row names it; a queued or running
    media job may write or reuse it; an upload (``uploads/<id>``, whose finish a retry
    may still complete) became it; or it is a subtitle file while some are unknowable."""
    top = found.folder[0]
    return (
        found.name in refs.words
        or (found.sha is not None and found.sha in refs.live)
        or (top == "objects" and found.name.partition(".")[0] in uploads)
        or (top == "subtitles" and refs.subtitles_unknown)
    )


class OrphanSweep:
    def __init__(
        self,
        root: Path,
        references: ReferenceSource,
        *,
        grace_s: float,
        every_s: float = EVERY_S,
        first_s: float = FIRST_S,
    ) -> None:
        self.root = root.resolve()
        self.references = references
        self.grace_s = grace_s
        self.every_s = every_s
        self.first_s = first_s

    async def run(self) -> None:
        """The web's background task: a round after ``first_s``, then every ``every_s``."""
        await asyncio.sleep(self.first_s)
        while True:
            try:
                await self.sweep()
            except Exception:  # the next round tries again; nothing was removed blindly
                log.exception("media sweep failed")
            await asyncio.sleep(self.every_s)

    async def sweep(self, now: float | None = None) -> list[str]:
        """One round; the keys removed."""
        cutoff = (time.time() if now is None else now) - self.grace_s
        old, empty = await asyncio.to_thread(_scan, self.root, cutoff)
        if not old and not empty:
            return []
        refs = await self._read()
        if refs is None:
            return []
        await self._remove_empty(empty, refs[0])
        orphans = [f for f in old if not referenced(f, *refs)]
        removed: list[str] = []
        for start in range(0, len(orphans), BATCH):
            refs = await self._read()  # again: a row may name one since
            if refs is None:
                break
            for found in orphans[start : start + BATCH]:
                if not referenced(found, *refs) and await self._remove(found, cutoff):
                    removed.append(found.key)
        if removed:
            log.info("media sweep: removed %d unreferenced files", len(removed))
        return removed

    async def _read(self) -> tuple[References, frozenset[str]] | None:
        """The references and the uploads' names; None (logged) when either cannot be read:
        the round removes nothing more."""
        try:
            refs = await self.references.snapshot()
            uploads = await asyncio.to_thread(_upload_stems, self.root)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("media sweep: references unreadable, no file removed this round: %r", exc)
            return None
        return refs, uploads

    async def _remove_empty(self, shas: list[str], refs: References) -> None:
        """Remove the empty ``renditions/<sha256>/`` folders no live job may write into."""
        for sha in shas:
            if sha in refs.live:
                continue
            try:
                await asyncio.to_thread(_remove_empty_folder, self.root, sha)
            except OSError as exc:  # not empty any more, gone, or refused: left alone
                log.debug("media sweep: renditions/%s kept: %s", sha, exc)
            else:
                log.info("media sweep: removed the empty folder renditions/%s", sha)

    async def _remove(self, found: Found, cutoff: float) -> bool:
        try:
            gone = await asyncio.to_thread(_remove, self.root, found, cutoff)
        except FileNotFoundError:  # another replica's sweep took it
            return False
        except OSError as exc:
            log.warning("media sweep: %s not removed: %s", found.key, exc)
            return False
        if gone:
            log.info("media sweep: removed %s (no row names it)", found.key)
            metrics.MEDIA_ORPHANS_REMOVED.labels(found.folder[0]).inc()
        return gone


# --- blocking file work (runs in worker threads) ----------------------------------


def _changed(st: os.stat_result) -> float:
    """A file's last change: the later of its mtime and ctime (a rename sets the ctime;
    a video moved into the store keeps the mtime of its last chunk)."""
    return max(st.st_mtime, st.st_ctime)


def _open_dir(root: Path, folder: tuple[str, ...]) -> int:
    """A descriptor of ``root/<folder...>``, each step opened with ``O_NOFOLLOW``."""
    fd = os.open(root, _DIR)
    try:
        for part in folder:
            inner = os.open(part, _DIR | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _entries(root: Path, folder: tuple[str, ...]) -> Iterator[os.DirEntry[str]]:
    """The entries of a folder of the media folder (none when it is missing or refused)."""
    try:
        fd = _open_dir(root, folder)
    except FileNotFoundError:
        return
    except OSError as exc:  # a symbolic link (never followed), or unreadable
        log.warning("media sweep: %s not looked at: %s", "/".join(folder), exc)
        return
    try:
        with os.scandir(fd) as entries:
            yield from entries
    finally:
        os.close(fd)


def _old_files(root: Path, folder: tuple[str, ...], cutoff: float) -> Iterator[Found]:
    for entry in _entries(root, folder):
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("media sweep: %s/%s not looked at: %s", "/".join(folder), entry.name, exc)
            continue
        if stat.S_ISREG(st.st_mode) and _changed(st) < cutoff:
            yield Found(folder, entry.name, st.st_dev, st.st_ino)


def _scan(root: Path, cutoff: float) -> tuple[list[Found], list[str]]:
    """The regular files of the swept folders unchanged since before ``cutoff``, and the
    ``renditions/<sha256>/`` folders empty and unchanged since then."""
    found = [f for top in FLAT for f in _old_files(root, (top,), cutoff)]
    empty: list[str] = []
    for entry in _entries(root, (RENDITIONS,)):
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            continue
        files = list(_old_files(root, (RENDITIONS, entry.name), cutoff))
        found += files
        if (
            not files
            and _changed(st) < cutoff
            and next(_entries(root, (RENDITIONS, entry.name)), None) is None
        ):
            empty.append(entry.name)
    return found, empty


def _upload_stems(root: Path) -> frozenset[str]:
    """The names (to the first dot) under ``uploads/``: ``<id>`` becomes ``objects/<id>.<ext>``."""
    try:
        names = os.listdir(root / "uploads")
    except FileNotFoundError:
        return frozenset()
    return frozenset(n.partition(".")[0] for n in names)


def _remove_empty_folder(root: Path, sha: str) -> None:
    """``rmdir renditions/<sha>`` (refused by the system when something is in it)."""
    fd = _open_dir(root, (RENDITIONS,))
    try:
        os.rmdir(sha, dir_fd=fd)
    finally:
        os.close(fd)


def _remove(root: Path, found: Found, cutoff: float) -> bool:
    """Unlink ``found`` if it is still the same regular file, unchanged since listed."""
    fd = _open_dir(root, found.folder)
    try:
        st = os.stat(found.name, dir_fd=fd, follow_symlinks=False)
        if (
            not stat.S_ISREG(st.st_mode)
            or (st.st_dev, st.st_ino) != (found.dev, found.ino)
            or _changed(st) >= cutoff
        ):
            return False
        os.unlink(found.name, dir_fd=fd)
    finally:
        os.close(fd)
    return True
