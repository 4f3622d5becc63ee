"""Answer videos: the ``MediaStore`` port, its local adapter, and resumable uploads
(:meth:`Uploads.create` declares one, :meth:`Uploads.append` adds a chunk at the
offset :meth:`Uploads.status` reports, :meth:`Uploads.complete` checks the bytes,
probes them (a file FFmpeg cannot decode is refused and nothing of it is kept) and
moves them into the store; :meth:`Uploads.hold` keeps other requests off an upload
while a caller completes it and records what it became; :meth:`Uploads.put_stream`
takes a whole video from one request). The folder layout and the guarantees are in
the triage README ("Answers"); the errors are
:class:`~services.triage.web.exceptions.MediaError`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import weakref
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from io import BufferedWriter
from pathlib import Path
from typing import Annotated, Literal, ParamSpec, Protocol, TypeAlias, TypeVar
from urllib.parse import urlparse
from urllib.request import url2pathname

from pydantic import Field, StringConstraints, ValidationError

from services.common.files import fsync_path, write_atomic
from services.common.media.probe import Undecodable, probe
from services.common.media.profiles import MediaInfo
from services.common.messages import Media, Part, Sha256Hex, ShortText, UtcDatetime, utcnow
from services.triage.web.config import VIDEO_TYPES, WebSettings
from services.triage.web.exceptions import (
    ChecksumMismatch,
    InvalidUpload,
    MediaError,
    OffsetMismatch,
    TooLarge,
    UndecodableMedia,
    UnknownMedia,
    UnknownUpload,
    UnsupportedMedia,
    UploadComplete,
    UploadIncomplete,
)

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: A request body: all of it at once, or its pieces as they arrive.
Body: TypeAlias = bytes | AsyncIterable[bytes]

#: File extension and container family of each video type the magic-byte check knows.
_VIDEO: dict[str, tuple[str, str]] = {
    "video/mp4": (".mp4", "iso-bmff"),
    "video/quicktime": (".mov", "iso-bmff"),
    "video/3gpp": (".3gp", "iso-bmff"),
    "video/webm": (".webm", "matroska"),
    "video/x-matroska": (".mkv", "matroska"),
}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_HEAD_BYTES = 16
_ID_BYTES = 24  # secrets.token_urlsafe(24): 32 characters, 192 random bits
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{32}")
_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}\.[a-z0-9]{1,8}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_LOCK_POLL_S = 0.05
_READ_BYTES = 1024 * 1024


# --- values ---------------------------------------------------------------------


class StoredMedia(Part):
    """A finished video in the store: what ``AnswerRecorded.media`` needs, and its key."""

    key: str
    uri: str
    mime: str
    bytes: int
    sha256: Sha256Hex
    #: What the probe found (None only for videos stored before probing existed).
    info: MediaInfo | None = None

    def media(self) -> Media:
        return Media(
            uri=self.uri,
            mime=self.mime,
            bytes=self.bytes,
            sha256=self.sha256,
            duration_s=self.info.duration_s if self.info and self.info.duration_s > 0 else None,
        )


class _Declared(Part):
    """What ``create`` was told: ``uploads/<id>/meta.json``."""

    question_id: ShortText
    #: The team (slug) that created the upload; the caller checks it on every request.
    owner: ShortText
    #: The name the file had on the phone (kept for people, never used as a path).
    filename: Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")]
    mime: str
    size: Annotated[int, Field(gt=0)]
    sha256: Sha256Hex
    created_at: UtcDatetime


class UploadState(_Declared):
    """An upload as it stands: ``offset`` bytes received, where the next chunk starts."""

    id: str
    offset: int
    #: Last chunk (or creation, or completion); the upload expires ``expiry_s`` after it.
    updated_at: UtcDatetime
    expires_at: UtcDatetime
    #: Set once complete: the video in the store.
    stored: StoredMedia | None = None


def sniff(head: bytes) -> str | None:
    """The container family from a file's first bytes: ``iso-bmff`` (MP4, QuickTime: an
    ``ftyp`` box at offset 4), ``matroska`` (WebM, Matroska: the EBML magic) or None."""
    if head[4:8] == b"ftyp":
        return "iso-bmff"
    if head.startswith(_EBML_MAGIC):
        return "matroska"
    return None


# --- the store ------------------------------------------------------------------


class MediaStore(Protocol):
    """Where finished answer videos live. Keys are ``<id>.<ext>``, chosen by the caller."""

    async def put(self, src: Path, key: str) -> str:
        """Move the finished file ``src`` in as ``key``, atomically; returns its URI."""
        ...

    async def path(self, key: str) -> Path:
        """The local file of ``key``, to read or serve with HTTP Range (``UnknownMedia``)."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove ``key`` (consent withdrawn); False if it was not there."""
        ...

    def uri(self, key: str) -> str:
        """The absolute URI the publisher reads ``key`` through."""
        ...

    def key_of(self, uri: str) -> str:
        """The key behind one of this store's URIs (``UnknownMedia`` for any other)."""
        ...


class LocalMediaStore:
    """``MediaStore`` on a local or shared folder: ``root/objects/<key>``, ``file://`` URIs."""

    def __init__(self, root: Path) -> None:
        self.objects = root.resolve() / "objects"
        self.objects.mkdir(parents=True, exist_ok=True)

    def _file(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise UnknownMedia(f"no media {key!r}")
        return self.objects / key

    async def put(self, src: Path, key: str) -> str:
        await _run(_move, src, self._file(key))
        return self.uri(key)

    async def path(self, key: str) -> Path:
        file = self._file(key)
        if not await _run(file.is_file):
            raise UnknownMedia(f"no media {key!r}")
        return file

    async def delete(self, key: str) -> bool:
        file = self._file(key)
        try:
            await _run(file.unlink)
        except FileNotFoundError:
            return False
        log.info("deleted media %s", key)
        return True

    def uri(self, key: str) -> str:
        return self._file(key).as_uri()

    def key_of(self, uri: str) -> str:
        parsed = urlparse(uri)
        path = Path(url2pathname(parsed.path))
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise UnknownMedia(f"{uri!r} is not a file:// URI")
        if path.parent != self.objects:
            raise UnknownMedia(f"{uri!r} is not in this media store")
        return self._file(path.name).name


# --- uploads --------------------------------------------------------------------


class _Busy(Exception):
    """Another request holds the upload (only when not waiting for it)."""


class UploadLockFailed(MediaError):
    """The upload's lock file cannot be opened or locked (the media volume refuses
    locks, or is failing): nothing was done; try again later."""

    status = 503
    code = "upload_lock_failed"


class HeldUpload:
    """An upload a request holds (:meth:`Uploads.hold`): no other request, of this
    process or another replica, works on it until the ``async with`` ends."""

    def __init__(self, uploads: Uploads, folder: Path, state: UploadState) -> None:
        self._uploads = uploads
        self._folder = folder
        #: The upload as it stood when the hold began.
        self.state = state

    async def complete(self) -> StoredMedia:
        """:meth:`Uploads.complete`, within the hold."""
        return await self._uploads._complete(self._folder)

    async def discard(self) -> None:
        """:meth:`Uploads.discard`, within the hold (a complete one's video stays)."""
        await _run(shutil.rmtree, self._folder)
        log.info("upload %s discarded", self._folder.name)


class Uploads:
    """Resumable uploads under ``root/uploads``, finished into ``store``.

    Requests on one upload take turns, in this process and across replicas sharing
    the folder (an ``flock`` on the upload's lock file, opened for writing: on NFS an
    exclusive ``flock`` is a byte-range lock, which a read-only descriptor cannot
    take). A request that waited its turn then sees the offset the other one left.
    """

    def __init__(
        self,
        root: Path,
        store: MediaStore,
        *,
        max_bytes: int,
        chunk_max_bytes: int,
        expiry_s: float,
        types: Iterable[str] = VIDEO_TYPES,
        min_duration_s: float = 0.5,
        prober: Callable[[Path], MediaInfo] = probe,
    ) -> None:
        self.types = tuple(types)
        if unknown := set(self.types) - _VIDEO.keys():
            raise ValueError(f"no magic bytes known for {sorted(unknown)}")
        self.dir = root.resolve() / "uploads"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.max_bytes = max_bytes
        self.chunk_max_bytes = chunk_max_bytes
        self.expiry = timedelta(seconds=expiry_s)
        self.min_duration_s = min_duration_s
        self.prober = prober
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @classmethod
    def from_settings(cls, settings: WebSettings, store: MediaStore | None = None) -> Uploads:
        return cls(
            settings.media_dir,
            store if store is not None else LocalMediaStore(settings.media_dir),
            max_bytes=settings.upload_max_bytes,
            chunk_max_bytes=settings.upload_chunk_max_bytes,
            expiry_s=settings.upload_expiry_s,
            types=settings.upload_types,
            min_duration_s=settings.min_answer_s,
        )

    async def create(
        self, question_id: str, owner: str, *, filename: str, size: int, mime: str, sha256: str
    ) -> UploadState:
        """Declare an upload. Its id is unguessable; the caller still checks ``owner``."""
        mime = self._accepted(mime)
        if size > self.max_bytes:
            raise TooLarge(f"{size} bytes declared, at most {self.max_bytes}", self.max_bytes)
        try:
            declared = _Declared(
                question_id=question_id,
                owner=owner,
                filename=filename,
                mime=mime,
                size=size,
                sha256=sha256.lower(),
                created_at=utcnow(),
            )
        except ValidationError as e:
            raise InvalidUpload(str(e)) from None
        folder = self.dir / secrets.token_urlsafe(_ID_BYTES)
        await _run(_create, folder, declared)
        log.info("upload %s created: %s bytes for %s by %s", folder.name, size, question_id, owner)
        return await _run(self._load, folder)

    async def status(self, upload_id: str) -> UploadState:
        return await _run(self._load, self._folder(upload_id))

    async def append(self, upload_id: str, offset: int, chunk: Body) -> UploadState:
        """Add ``chunk`` at ``offset``, which must be the bytes received so far.

        At most ``chunk_max_bytes``, never past the declared size (``TooLarge``, and
        the chunk is rolled back). If the body breaks off, what arrived is kept.
        """
        async with self._locked(upload_id) as folder:
            state = await _run(self._load, folder)
            if state.stored is not None:
                raise UploadComplete(f"upload {upload_id} is complete")
            if offset != state.offset:
                raise OffsetMismatch(state.offset, offset)
            limit = min(self.chunk_max_bytes, state.size - offset)
            file = await _run(_open, folder / "data", "ab")
            received = 0
            try:
                async with contextlib.aclosing(_pieces(chunk)) as pieces:
                    async for piece in pieces:
                        received += len(piece)
                        if received > limit:
                            raise TooLarge(
                                f"chunks are at most {self.chunk_max_bytes} bytes and the upload"
                                f" has {state.size - offset} left to receive",
                                limit,
                            )
                        await _run(file.write, piece)
            except MediaError:
                await _run(file.truncate, offset)
                raise
            finally:
                await _run(_close_synced, file)
            return await _run(self._load, folder)

    async def complete(self, upload_id: str) -> StoredMedia:
        """Check size, sha256 and magic bytes, probe the video, then move it into the store.

        On a failed size or sha256 check the upload stays as it is (resume, or discard
        it). A file that does not decode (``UndecodableMedia``), or is too short, is
        refused and the upload removed: nothing of it stays. Calling it again once
        complete answers the same ``StoredMedia``.
        """
        async with self.hold(upload_id) as upload:
            return await upload.complete()

    async def discard(self, upload_id: str) -> None:
        """Forget an upload (a complete one's video stays in the store)."""
        async with self.hold(upload_id) as upload:
            await upload.discard()

    @contextlib.asynccontextmanager
    async def hold(self, upload_id: str) -> AsyncIterator[HeldUpload]:
        """Keep every other request off the upload while the caller works on it: to
        complete it and record what it became as one step, which a retry (waiting its
        turn) then finds done. ``UnknownUpload`` if there is none."""
        async with self._locked(upload_id) as folder:
            yield HeldUpload(self, folder, await _run(self._load, folder))

    async def expire(self, now: datetime | None = None) -> list[str]:
        """Remove uploads (and leftovers) idle longer than the expiry; the names removed.

        An upload a request is working on is left for the next round.
        """
        cutoff = ((now or utcnow()) - self.expiry).timestamp()
        removed = []
        for path in await _run(_listdir, self.dir):
            try:
                if await _run(_is_upload, path):
                    async with self._locked(path.name, wait=False):
                        gone = await _run(_remove_if_idle, path, cutoff)
                else:  # a `put_stream` or a `create` that died half way
                    gone = await _run(_remove_if_idle, path, cutoff)
            except (_Busy, UnknownUpload, FileNotFoundError):
                continue
            except (UploadLockFailed, OSError) as exc:  # one bad entry stops no other
                log.warning("upload %s not expired this round: %s", path.name, exc)
                continue
            if gone:
                removed.append(path.name)
        if removed:
            log.info("expired %d uploads: %s", len(removed), ", ".join(removed))
        return removed

    async def put_stream(
        self, stream: Body, *, mime: str, sha256: str | None = None
    ) -> StoredMedia:
        """Store a whole video from one request (no resume).

        At most ``max_bytes``, checked as the bytes arrive: ``TooLarge`` at the first
        byte over. The declared ``sha256`` (if any) and the magic bytes are checked as
        in ``complete``. Nothing is left behind when it fails.
        """
        mime = self._accepted(mime)
        if sha256 is not None and not _SHA256.fullmatch(sha256 := sha256.lower()):
            raise InvalidUpload("sha256 must be 64 hexadecimal digits")
        key = secrets.token_urlsafe(_ID_BYTES) + _VIDEO[mime][0]
        tmp = self.dir / f"{key}.part"
        digest = hashlib.sha256()
        head, size = b"", 0
        file = await _run(_open, tmp, "xb")
        try:
            try:
                async with contextlib.aclosing(_pieces(stream)) as pieces:
                    async for piece in pieces:
                        size += len(piece)
                        if size > self.max_bytes:
                            raise TooLarge(f"more than {self.max_bytes} bytes", self.max_bytes)
                        head = (head + piece[:_HEAD_BYTES])[:_HEAD_BYTES]
                        await _run(_write_hashed, file, digest, piece)
            finally:
                await _run(_close_synced, file)
            _check(mime, head, sha256, digest.hexdigest())
            info = await self._probe(tmp)
            uri = await self.store.put(tmp, key)
        finally:
            await _run(tmp.unlink, missing_ok=True)
        log.info("stored %s (%s bytes) in one go", key, size)
        return StoredMedia(
            key=key, uri=uri, mime=mime, bytes=size, sha256=digest.hexdigest(), info=info
        )

    # -- helpers --

    async def _complete(self, folder: Path) -> StoredMedia:
        """:meth:`complete` of the upload in ``folder``, which the caller holds."""
        state = await _run(self._load, folder)
        stored = state.stored
        if stored is None:
            if state.offset != state.size:
                raise UploadIncomplete(state.offset, state.size)
            sha256, head = await _run(_hash_file, folder / "data")
            _check(state.mime, head, state.sha256, sha256)
            try:
                info = await self._probe(folder / "data")
            except MediaError:
                await _run(shutil.rmtree, folder)
                log.info("upload %s refused by the probe and removed", state.id)
                raise
            key = state.id + _VIDEO[state.mime][0]
            stored = StoredMedia(
                key=key,
                uri=self.store.uri(key),
                mime=state.mime,
                bytes=state.size,
                sha256=sha256,
                info=info,
            )
            # Recorded before the move: a crash in between is finished by the next call.
            await _run(write_atomic, folder / "done.json", stored.model_dump_json().encode())
        if await _run((folder / "data").exists):
            await self.store.put(folder / "data", stored.key)
            log.info("upload %s complete: %s (%s bytes)", state.id, stored.key, stored.bytes)
        return stored

    async def _probe(self, path: Path) -> MediaInfo:
        """What the video is (in a worker thread); ``UndecodableMedia`` for a file FFmpeg
        cannot decode or that is cut short, ``InvalidUpload`` for one too short to answer."""
        try:
            info = await _run(self.prober, path)
        except Undecodable as exc:
            raise UndecodableMedia(str(exc)) from None
        if info.duration_s < self.min_duration_s:
            raise InvalidUpload(
                f"the video is {info.duration_s:.1f} s long; an answer is at least"
                f" {self.min_duration_s:g} s"
            )
        return info

    def _accepted(self, mime: str) -> str:
        kind = mime.split(";", 1)[0].strip().lower()
        if kind not in self.types:
            raise UnsupportedMedia(f"{mime!r} is not accepted: one of {', '.join(self.types)}")
        return kind

    def _folder(self, upload_id: str) -> Path:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise UnknownUpload(f"no upload {upload_id!r}")
        return self.dir / upload_id

    def _load(self, folder: Path) -> UploadState:
        try:
            declared = _Declared.model_validate_json((folder / "meta.json").read_bytes())
            done = folder / "done.json"
            if done.exists():
                stored = StoredMedia.model_validate_json(done.read_bytes())
                offset, touched = declared.size, done.stat().st_mtime
            else:
                data = (folder / "data").stat()
                stored, offset, touched = None, data.st_size, data.st_mtime
        except FileNotFoundError:
            raise UnknownUpload(f"no upload {folder.name!r}") from None
        updated_at = datetime.fromtimestamp(touched, UTC)
        return UploadState(
            **declared.model_dump(),
            id=folder.name,
            offset=offset,
            updated_at=updated_at,
            expires_at=updated_at + self.expiry,
            stored=stored,
        )

    @contextlib.asynccontextmanager
    async def _locked(self, upload_id: str, *, wait: bool = True) -> AsyncIterator[Path]:
        """Hold the upload: an flock on its lock file, through a descriptor of this call's
        own, so it excludes every other request, of this process or another replica.

        Requests of this process queue on an ``asyncio.Lock`` first instead of polling.
        Opening the lock file and a non-blocking flock are quick metadata calls, made on
        the loop; waiting for the flock polls, so it never blocks the loop. The file is
        opened for reading and writing (an exclusive lock on NFS needs it) and never
        created here: ``create`` makes it, and a folder without one is no upload. Any
        other failure to open or lock it is ``UploadLockFailed`` (503), logged.
        """
        folder = self._folder(upload_id)
        lock = self._locks.setdefault(upload_id, asyncio.Lock())
        if not wait and lock.locked():
            raise _Busy(upload_id)
        async with lock:
            try:
                fd = os.open(folder / "lock", os.O_RDWR)
            except FileNotFoundError:
                raise UnknownUpload(f"no upload {upload_id!r}") from None
            except OSError as exc:
                raise _lock_failed(upload_id, "open", exc) from exc
            try:
                while not _try_flock(fd, upload_id):
                    if not wait:
                        raise _Busy(upload_id)
                    await asyncio.sleep(_LOCK_POLL_S)
                yield folder
            finally:
                os.close(fd)  # releases the flock


def _lock_failed(upload_id: str, step: str, exc: OSError) -> UploadLockFailed:
    log.error("upload %s: cannot %s its lock file: %s", upload_id, step, exc)
    return UploadLockFailed(f"upload {upload_id} cannot be locked now ({exc}); try again later")


def _check(mime: str, head: bytes, declared: str | None, sha256: str) -> None:
    if declared is not None and sha256 != declared:
        raise ChecksumMismatch(declared, sha256)
    if sniff(head) != _VIDEO[mime][1]:
        raise UnsupportedMedia(f"the file is not a {mime} video")


async def _pieces(body: Body) -> AsyncGenerator[bytes, None]:
    if isinstance(body, bytes):
        if body:
            yield body
        return
    async for piece in body:
        if piece:
            yield piece


async def _run(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn`` in a worker thread. If the caller is cancelled, the thread's work still
    finishes before the cancellation goes on, so nothing writes after its lock is gone."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what the caller gets
        raise


# --- blocking file work (runs in worker threads) ----------------------------------


def _try_flock(fd: int, upload_id: str) -> bool:
    """Take the lock if it is free; False if another holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:  # EBADF, ENOLCK, EIO...: not "held by another"
        raise _lock_failed(upload_id, "lock", exc) from exc
    return True


def _open(path: Path, mode: Literal["ab", "xb"]) -> BufferedWriter:
    return path.open(mode)


def _close_synced(file: BufferedWriter) -> None:
    with file:
        file.flush()
        os.fsync(file.fileno())


def _write_hashed(file: BufferedWriter, digest: hashlib._Hash, piece: bytes) -> None:
    file.write(piece)
    digest.update(piece)


def _create(folder: Path, declared: _Declared) -> None:
    folder.mkdir()
    (folder / "lock").touch(mode=0o600)
    (folder / "data").touch()
    write_atomic(folder / "meta.json", declared.model_dump_json().encode())  # last: now it exists


def _move(src: Path, dst: Path) -> None:
    """A rename; across file systems, a copy renamed into place (atomic either way)."""
    try:
        src.replace(dst)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}")
        try:
            shutil.copyfile(src, tmp)
            fsync_path(tmp)
            tmp.replace(dst)
        finally:
            tmp.unlink(missing_ok=True)
        src.unlink()
    fsync_path(dst.parent)


def _hash_file(path: Path) -> tuple[str, bytes]:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        head = file.read(_HEAD_BYTES)
        digest.update(head)
        while block := file.read(_READ_BYTES):
            digest.update(block)
    return digest.hexdigest(), head


def _last_activity(path: Path) -> float:
    times = [path.stat().st_mtime]
    if path.is_dir():
        times += [child.stat().st_mtime for child in path.iterdir()]
    return max(times)


def _is_upload(path: Path) -> bool:
    return _UPLOAD_ID.fullmatch(path.name) is not None and (path / "lock").exists()


def _listdir(folder: Path) -> list[Path]:
    return list(folder.iterdir())


def _remove_if_idle(path: Path, cutoff: float) -> bool:
    if _last_activity(path) >= cutoff:
        return False
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    return True
