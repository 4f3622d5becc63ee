"""Answer-video storage: resumable uploads, the local store, one-shot uploads."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import logging
import os
import random
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from services.common.media.probe import probe
from services.common.media.profiles import MediaInfo
from services.common.messages import utcnow
from services.triage.web import media
from services.triage.web.config import WebSettings
from services.triage.web.exceptions import (
    ChecksumMismatch,
    InvalidUpload,
    OffsetMismatch,
    TooLarge,
    UndecodableMedia,
    UnknownMedia,
    UnknownUpload,
    UnsupportedMedia,
    UploadComplete,
    UploadIncomplete,
)
from services.triage.web.media import (
    LocalMediaStore,
    StoredMedia,
    UploadLockFailed,
    Uploads,
    UploadState,
)
from tests.helpers.media import video_bytes

MAX_BYTES = 4096
CHUNK_MAX = 1024
EXPIRY_S = 3600

MP4_HEAD = (24).to_bytes(4, "big") + b"ftypisom" + b"\x00\x00\x02\x00" + b"isommp42"
WEBM_HEAD = b"\x1a\x45\xdf\xa3" + b"\x9f\x42\x86\x81\x01"


#: What the stand-in probe says of every file (the real probe has tests of its own below).
PROBED = MediaInfo(
    container="mov,mp4,m4a,3gp,3g2,mj2",
    duration_s=3.0,
    width=1080,
    height=1920,
    fps=30.0,
    video_codec="h264",
    bytes=1,
)


def probed(_: Path) -> MediaInfo:
    return PROBED


def video(size: int = 2500, head: bytes = MP4_HEAD, seed: int = 0) -> bytes:
    """A small synthetic video: real magic bytes, then random bytes."""
    return (head + random.Random(seed).randbytes(size))[:size]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_of(uri: str) -> Path:
    """The file a ``file://`` URI names, read the way the publisher reads it."""
    parsed = urlparse(uri)
    assert parsed.scheme == "file"
    return Path(url2pathname(parsed.path))


async def body(*pieces: bytes, drop: bool = False) -> AsyncIterator[bytes]:
    """A request body arriving in pieces; ``drop``: the connection breaks after them."""
    for piece in pieces:
        await asyncio.sleep(0)
        yield piece
    if drop:
        raise ConnectionResetError("the phone lost its signal")


@pytest.fixture
def store(tmp_path: Path) -> LocalMediaStore:
    return LocalMediaStore(tmp_path)


@pytest.fixture
def make_uploads(tmp_path: Path, store: LocalMediaStore) -> Callable[..., Uploads]:
    def make(**overrides: Any) -> Uploads:
        options: dict[str, Any] = {
            "store": store,
            "max_bytes": MAX_BYTES,
            "chunk_max_bytes": CHUNK_MAX,
            "expiry_s": EXPIRY_S,
            "prober": probed,
            **overrides,
        }
        return Uploads(tmp_path, **options)

    return make


@pytest.fixture
def uploads(make_uploads: Callable[..., Uploads]) -> Uploads:
    return make_uploads()


async def create(uploads: Uploads, data: bytes, **overrides: Any) -> UploadState:
    declared: dict[str, Any] = {
        "filename": "answer.mp4",
        "size": len(data),
        "mime": "video/mp4",
        "sha256": sha(data),
        **overrides,
    }
    return await uploads.create("q-1", "team-a", **declared)


async def send_all(uploads: Uploads, upload_id: str, data: bytes) -> UploadState:
    """Append the rest of ``data`` in the largest chunks allowed, from the current offset."""
    state = await uploads.status(upload_id)
    while state.offset < len(data):
        chunk = data[state.offset : state.offset + CHUNK_MAX]
        state = await uploads.append(upload_id, state.offset, chunk)
    return state


def objects(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "objects").iterdir())


def upload_dir_entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "uploads").iterdir())


def age(path: Path, seconds: float) -> None:
    """Make ``path`` (and what is in it) look untouched for ``seconds``."""
    then = utcnow().timestamp() - seconds
    for item in [path, *(path.iterdir() if path.is_dir() else [])]:
        os.utime(item, (then, then))


# --- resumable uploads ----------------------------------------------------------


async def test_a_dropped_connection_resumes_from_the_offset_status_reports(
    uploads: Uploads, tmp_path: Path
) -> None:
    data = video(2500)
    state = await create(uploads, data)
    assert (state.offset, state.owner, state.question_id) == (0, "team-a", "q-1")

    with pytest.raises(ConnectionResetError):
        await uploads.append(state.id, 0, body(data[:600], data[600:900], drop=True))

    assert (await uploads.status(state.id)).offset == 900  # what arrived is kept
    state = await send_all(uploads, state.id, data)
    assert state.offset == len(data)
    stored = await uploads.complete(state.id)

    assert stored.sha256 == sha(data)
    assert (stored.mime, stored.bytes) == ("video/mp4", len(data))
    assert stored.key == f"{state.id}.mp4"
    assert stored.uri.startswith("file:///")
    assert file_of(stored.uri).read_bytes() == data
    assert file_of(stored.uri) == await uploads.store.path(stored.key)
    assert stored.media().sha256 == sha(data)
    assert stored.media().duration_s == PROBED.duration_s
    assert not (tmp_path / "uploads" / state.id / "data").exists()


async def test_a_cancelled_append_keeps_what_arrived_and_lets_go_of_the_upload(
    uploads: Uploads,
) -> None:
    data = video(1500)
    state = await create(uploads, data)

    async def stalls() -> AsyncIterator[bytes]:
        yield data[:500]
        await asyncio.Event().wait()  # the phone stops sending, the server times out
        yield b"never"

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(uploads.append(state.id, 0, stalls()), 0.2)

    assert (await uploads.status(state.id)).offset == 500
    await send_all(uploads, state.id, data)
    assert (await uploads.complete(state.id)).sha256 == sha(data)


async def test_a_chunk_at_the_wrong_offset_says_where_to_resume(uploads: Uploads) -> None:
    data = video(2000)
    state = await create(uploads, data)
    await uploads.append(state.id, 0, data[:100])

    for offset in (0, 50, 200):
        with pytest.raises(OffsetMismatch) as refused:
            await uploads.append(state.id, offset, data[offset : offset + 100])
        assert (refused.value.expected, refused.value.got) == (100, offset)
    assert (await uploads.status(state.id)).offset == 100


async def test_a_declared_size_over_the_limit_is_refused(uploads: Uploads) -> None:
    with pytest.raises(TooLarge) as refused:
        await create(uploads, video(100), size=MAX_BYTES + 1)
    assert refused.value.limit == MAX_BYTES


async def test_bytes_past_the_declared_size_are_refused_and_rolled_back(uploads: Uploads) -> None:
    data = video(1000)
    state = await create(uploads, data)

    with pytest.raises(TooLarge):
        await uploads.append(state.id, 0, data + b"x")
    assert (await uploads.status(state.id)).offset == 0

    await uploads.append(state.id, 0, data[:600])
    with pytest.raises(TooLarge) as refused:
        await uploads.append(state.id, 600, body(data[600:], b"extra"))
    assert refused.value.limit == 400
    assert (await uploads.status(state.id)).offset == 600


async def test_a_chunk_over_the_chunk_limit_is_refused_and_rolled_back(
    uploads: Uploads, tmp_path: Path
) -> None:
    data = video(3000)
    state = await create(uploads, data)

    with pytest.raises(TooLarge) as refused:
        await uploads.append(state.id, 0, body(data[:512], data[512 : CHUNK_MAX + 1]))

    assert refused.value.limit == CHUNK_MAX
    assert (await uploads.status(state.id)).offset == 0
    assert (tmp_path / "uploads" / state.id / "data").stat().st_size == 0


async def test_a_checksum_mismatch_keeps_the_upload_until_discarded(
    uploads: Uploads, tmp_path: Path
) -> None:
    data = video(2000)
    state = await create(uploads, data, sha256=sha(b"another video"))
    await send_all(uploads, state.id, data)

    with pytest.raises(ChecksumMismatch) as refused:
        await uploads.complete(state.id)

    assert (refused.value.declared, refused.value.actual) == (sha(b"another video"), sha(data))
    kept = await uploads.status(state.id)
    assert (kept.offset, kept.stored) == (len(data), None)
    assert objects(tmp_path) == []
    await uploads.discard(state.id)
    with pytest.raises(UnknownUpload):
        await uploads.status(state.id)


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        pytest.param(b"these are my notes, not a video\n" * 40, "video/mp4", id="text-as-mp4"),
        pytest.param(b"\x00" * 1000, "video/quicktime", id="zeros-as-mov"),
        pytest.param(video(1000, MP4_HEAD), "video/webm", id="mp4-as-webm"),
        pytest.param(video(1000, WEBM_HEAD), "video/mp4", id="webm-as-mp4"),
    ],
)
async def test_bytes_that_are_not_the_declared_video_are_refused(
    uploads: Uploads, tmp_path: Path, data: bytes, mime: str
) -> None:
    state = await create(uploads, data, mime=mime)
    await send_all(uploads, state.id, data)

    with pytest.raises(UnsupportedMedia):
        await uploads.complete(state.id)
    assert (await uploads.status(state.id)).stored is None
    assert objects(tmp_path) == []


@pytest.mark.parametrize(
    ("head", "mime", "extension"),
    [
        (MP4_HEAD, "video/mp4", ".mp4"),
        (MP4_HEAD, "video/quicktime", ".mov"),
        (WEBM_HEAD, "video/webm", ".webm"),
    ],
)
async def test_each_accepted_video_type_is_stored(
    uploads: Uploads, head: bytes, mime: str, extension: str
) -> None:
    data = video(1800, head)
    state = await create(uploads, data, mime=mime)
    await send_all(uploads, state.id, data)

    stored = await uploads.complete(state.id)

    assert (stored.mime, stored.key) == (mime, state.id + extension)
    assert file_of(stored.uri).read_bytes() == data


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"mime": "image/png"}, UnsupportedMedia),
        ({"mime": "video/ogg"}, UnsupportedMedia),
        ({"sha256": "abc"}, InvalidUpload),
        ({"sha256": "g" * 64}, InvalidUpload),
        ({"size": 0}, InvalidUpload),
        ({"size": -5}, InvalidUpload),
        ({"filename": "answer\n.mp4"}, InvalidUpload),
        ({"filename": "a" * 256}, InvalidUpload),
    ],
)
async def test_a_malformed_declaration_is_refused(
    uploads: Uploads, tmp_path: Path, overrides: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await create(uploads, video(100), **overrides)
    assert upload_dir_entries(tmp_path) == []


async def test_a_declaration_is_normalised(uploads: Uploads) -> None:
    data = video(100)
    state = await create(uploads, data, mime="Video/MP4; codecs=avc1", sha256=sha(data).upper())
    assert (state.mime, state.sha256) == ("video/mp4", sha(data))
    assert state.expires_at == state.updated_at + timedelta(seconds=EXPIRY_S)
    assert len(state.id) == 32
    assert state.id != (await create(uploads, data)).id


async def test_an_empty_or_missing_owner_or_question_is_refused(uploads: Uploads) -> None:
    with pytest.raises(InvalidUpload):
        await uploads.create(
            "", "team-a", filename="a.mp4", size=10, mime="video/mp4", sha256=sha(b"")
        )
    with pytest.raises(InvalidUpload):
        await uploads.create(
            "q-1", " ", filename="a.mp4", size=10, mime="video/mp4", sha256=sha(b"")
        )


async def test_complete_before_every_byte_arrived_says_how_many_did(uploads: Uploads) -> None:
    data = video(2000)
    state = await create(uploads, data)
    await uploads.append(state.id, 0, data[:700])

    with pytest.raises(UploadIncomplete) as refused:
        await uploads.complete(state.id)
    assert (refused.value.offset, refused.value.size) == (700, 2000)


async def test_complete_is_idempotent_and_an_upload_complete_takes_no_more_bytes(
    uploads: Uploads, tmp_path: Path
) -> None:
    data = video(1200)
    state = await create(uploads, data)
    await send_all(uploads, state.id, data)

    stored = await uploads.complete(state.id)

    assert await uploads.complete(state.id) == stored  # the client lost the first answer
    assert (await uploads.status(state.id)).stored == stored
    with pytest.raises(UploadComplete):
        await uploads.append(state.id, len(data), b"more")
    await uploads.discard(state.id)
    assert file_of(stored.uri).read_bytes() == data  # the video outlives its upload
    assert objects(tmp_path) == [file_of(stored.uri)]


class FailingStore(LocalMediaStore):
    """The process dies between recording completion and moving the video in."""

    async def put(self, src: Path, key: str) -> str:
        raise OSError("killed")


async def test_a_complete_interrupted_before_the_move_is_finished_by_the_next_call(
    make_uploads: Callable[..., Uploads], tmp_path: Path
) -> None:
    data = video(1500)
    interrupted = make_uploads(store=FailingStore(tmp_path))
    state = await create(interrupted, data)
    await send_all(interrupted, state.id, data)
    with pytest.raises(OSError, match="killed"):
        await interrupted.complete(state.id)
    assert objects(tmp_path) == []

    stored = await make_uploads().complete(state.id)

    assert file_of(stored.uri).read_bytes() == data


async def test_discarding_removes_the_upload(uploads: Uploads, tmp_path: Path) -> None:
    data = video(1500)
    state = await create(uploads, data)
    await uploads.append(state.id, 0, data[:1000])

    await uploads.discard(state.id)

    assert upload_dir_entries(tmp_path) == []
    for call in (uploads.status(state.id), uploads.discard(state.id)):
        with pytest.raises(UnknownUpload):
            await call


# --- concurrency ----------------------------------------------------------------


@pytest.mark.parametrize("replicas", [False, True], ids=["one-process", "two-replicas"])
async def test_concurrent_appends_take_turns(
    make_uploads: Callable[..., Uploads], replicas: bool
) -> None:
    first, other = make_uploads(), make_uploads() if replicas else None
    second = other or first
    data, intruder = video(1000, seed=1), video(1000, seed=2)
    state = await create(first, data)
    sent, gate = asyncio.Event(), asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield data[:400]
        sent.set()
        await gate.wait()
        yield data[400:]

    slow_append = asyncio.create_task(first.append(state.id, 0, slow()))
    await sent.wait()
    racing_append = asyncio.create_task(second.append(state.id, 0, intruder))
    await asyncio.sleep(0.2)
    assert not racing_append.done()  # waits for its turn
    gate.set()

    assert (await slow_append).offset == len(data)
    with pytest.raises(OffsetMismatch) as refused:
        await racing_append
    assert refused.value.expected == len(data)
    assert (await second.complete(state.id)).sha256 == sha(data)  # not interleaved


async def test_a_held_upload_keeps_other_requests_waiting_until_it_is_let_go(
    make_uploads: Callable[..., Uploads],
) -> None:
    first, replica = make_uploads(), make_uploads()
    data = video(1000)
    state = await create(first, data)
    await send_all(first, state.id, data)

    async with first.hold(state.id) as upload:
        assert upload.state.offset == len(data)
        stored = await upload.complete()
        waiting = [
            asyncio.create_task(first.complete(state.id)),
            asyncio.create_task(replica.complete(state.id)),
        ]
        await asyncio.sleep(0.2)
        assert not any(task.done() for task in waiting)

    assert await asyncio.gather(*waiting) == [stored, stored]


# --- a media volume's locks ---------------------------------------------------------


@pytest.fixture
def nfs_flock(monkeypatch: pytest.MonkeyPatch) -> None:
    """``flock`` as the Linux NFS client does it: a byte-range lock, so an exclusive one
    needs a descriptor open for writing (EBADF otherwise)."""
    real = fcntl.flock

    def flock(fd: int, operation: int) -> None:
        readonly = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        if operation & fcntl.LOCK_EX and readonly:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)


@pytest.mark.usefixtures("nfs_flock")
async def test_uploads_work_and_take_turns_on_an_nfs_volume(
    make_uploads: Callable[..., Uploads], tmp_path: Path
) -> None:
    first, replica = make_uploads(), make_uploads()
    data, idle = video(2000), video(1500, seed=1)
    state, abandoned = await create(first, data), await create(first, idle)
    await first.append(state.id, 0, data[:1000])
    sent, gate = asyncio.Event(), asyncio.Event()

    async def slow() -> AsyncIterator[bytes]:
        yield data[1000:1500]
        sent.set()
        await gate.wait()
        yield data[1500:]

    appending = asyncio.create_task(first.append(state.id, 1000, slow()))
    await sent.wait()
    racing = asyncio.create_task(replica.append(state.id, 1000, data[1000:]))
    await asyncio.sleep(0.2)
    assert not racing.done()  # the lock holds across replicas
    gate.set()
    assert (await appending).offset == len(data)
    with pytest.raises(OffsetMismatch):
        await racing
    stored = await replica.complete(state.id)
    assert file_of(stored.uri).read_bytes() == data
    age(tmp_path / "uploads" / abandoned.id, EXPIRY_S + 60)

    assert await first.expire() == [abandoned.id]


def _failing_lock(monkeypatch: pytest.MonkeyPatch, lock: Path, code: int = errno.ENOLCK) -> None:
    """``flock`` on ``lock`` fails with ``code`` (the volume refuses locks, or fails)."""
    real, inode = fcntl.flock, lock.stat().st_ino

    def flock(fd: int, operation: int) -> None:
        if os.fstat(fd).st_ino == inode:
            raise OSError(code, os.strerror(code))
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)


async def test_a_lock_that_cannot_be_taken_refuses_the_request_with_503(
    uploads: Uploads,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = video(1000)
    state = await create(uploads, data)
    _failing_lock(monkeypatch, tmp_path / "uploads" / state.id / "lock", errno.EIO)

    for call in (uploads.append(state.id, 0, data), uploads.complete(state.id)):
        with pytest.raises(UploadLockFailed) as refused:
            await call
        assert refused.value.status == 503

    assert (await uploads.status(state.id)).offset == 0  # nothing was done
    assert [r.levelno for r in caplog.records if state.id in r.getMessage()] == [
        logging.ERROR,
        logging.ERROR,
    ]


async def test_a_lock_file_that_cannot_be_opened_refuses_the_request_with_503(
    uploads: Uploads, tmp_path: Path
) -> None:
    state = await create(uploads, video(1000))
    lock = tmp_path / "uploads" / state.id / "lock"
    lock.unlink()
    lock.mkdir()  # EISDIR on opening it for writing, whoever runs the test

    with pytest.raises(UploadLockFailed):
        await uploads.append(state.id, 0, b"data")


async def test_expire_goes_on_past_an_upload_whose_lock_fails(
    uploads: Uploads, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = video(1000)
    broken, idle = await create(uploads, data), await create(uploads, data)
    for path in upload_dir_entries(tmp_path):
        age(path, EXPIRY_S + 60)
    _failing_lock(monkeypatch, tmp_path / "uploads" / broken.id / "lock")

    assert await uploads.expire() == [idle.id]

    assert upload_dir_entries(tmp_path) == [tmp_path / "uploads" / broken.id]
    monkeypatch.undo()
    assert await uploads.expire() == [broken.id]  # the next round, once it locks again


async def test_expire_goes_on_past_an_entry_it_cannot_remove(
    uploads: Uploads, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = video(1000)
    stuck, idle = await create(uploads, data), await create(uploads, data)
    for path in upload_dir_entries(tmp_path):
        age(path, EXPIRY_S + 60)
    rmtree = shutil.rmtree

    def refuse_stuck(path: Path, *args: Any, **kwargs: Any) -> None:
        if Path(path).name == stuck.id:
            raise PermissionError(errno.EACCES, "the volume went read-only")
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", refuse_stuck)

    assert await uploads.expire() == [idle.id]


# --- ids and keys -----------------------------------------------------------------

BAD_IDS = [
    "../../../etc/passwd",
    "..",
    "",
    "../objects",
    "A" * 31 + "/",
    "A" * 32 + "\n",
    "A" * 31 + ".",
    "A" * 33,
]


@pytest.mark.parametrize("upload_id", [*BAD_IDS, "A" * 32])
async def test_ids_that_are_not_uploads_are_unknown(
    uploads: Uploads, tmp_path: Path, upload_id: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "lock").touch()
    calls = [
        uploads.status(upload_id),
        uploads.append(upload_id, 0, b"data"),
        uploads.complete(upload_id),
        uploads.discard(upload_id),
    ]
    for call in calls:
        with pytest.raises(UnknownUpload):
            await call
    assert outside.exists()
    assert sorted(p.name for p in outside.iterdir()) == ["lock"]


@pytest.mark.parametrize(
    "key",
    [
        "../uploads/secret.mp4",
        "../secret.mp4",
        "/etc/passwd",
        "%2e%2e%2fsecret.mp4",
        "secret",
        "." * 20 + ".mp4",
        "A" * 20 + ".mp4\n",
        "A" * 20 + ".mp4/..",
    ],
)
async def test_keys_that_are_not_objects_are_unknown(
    store: LocalMediaStore, tmp_path: Path, key: str
) -> None:
    (tmp_path / "secret.mp4").write_bytes(b"not yours")
    with pytest.raises(UnknownMedia):
        await store.path(key)
    with pytest.raises(UnknownMedia):
        await store.delete(key)
    with pytest.raises(UnknownMedia):
        store.uri(key)
    assert (tmp_path / "secret.mp4").exists()


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",
        "https://example.org/objects/AAAAAAAAAAAAAAAAAAAA.mp4",
        "file://elsewhere{objects}/AAAAAAAAAAAAAAAAAAAA.mp4",
        "file://{objects}/../secret.mp4",
        "file://{objects}/sub/AAAAAAAAAAAAAAAAAAAA.mp4",
    ],
)
def test_uris_that_are_not_this_stores_are_unknown(store: LocalMediaStore, uri: str) -> None:
    with pytest.raises(UnknownMedia):
        store.key_of(uri.format(objects=store.objects))


# --- the store ------------------------------------------------------------------


async def test_withdrawn_consent_deletes_the_video(
    uploads: Uploads, store: LocalMediaStore
) -> None:
    data = video(1000)
    state = await create(uploads, data)
    await send_all(uploads, state.id, data)
    stored = await uploads.complete(state.id)
    assert store.key_of(stored.uri) == stored.key
    path = await store.path(stored.key)
    assert path.read_bytes() == data

    assert await store.delete(stored.key) is True

    assert not path.exists()
    with pytest.raises(UnknownMedia):
        await store.path(stored.key)
    assert await store.delete(stored.key) is False


async def test_put_moves_a_file_in_and_replaces_a_same_key_object(
    store: LocalMediaStore, tmp_path: Path
) -> None:
    key = "B" * 20 + ".webm"
    for content in (b"first", b"second"):
        src = tmp_path / "finished"
        src.write_bytes(content)
        uri = await store.put(src, key)
        assert not src.exists()
        assert file_of(uri).read_bytes() == content
    assert uri == store.uri(key) == (store.objects / key).as_uri()
    assert file_of(uri).is_absolute()


async def test_put_copies_across_file_systems(
    store: LocalMediaStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rename = Path.replace

    def no_rename_across_devices(self: Path, target: Path) -> Path:
        if self.parent != Path(target).parent:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return rename(self, target)

    monkeypatch.setattr(Path, "replace", no_rename_across_devices)
    src = tmp_path / "elsewhere.webm"
    src.write_bytes(b"video")

    uri = await store.put(src, "E" * 20 + ".webm")

    assert file_of(uri).read_bytes() == b"video"
    assert not src.exists()
    assert objects(tmp_path) == [file_of(uri)]  # no copy left half way


async def test_a_cancelled_caller_waits_for_its_disk_work_to_finish() -> None:
    finished = threading.Event()

    def write() -> None:
        time.sleep(0.2)
        finished.set()

    task = asyncio.create_task(media._run(write))
    await asyncio.sleep(0.05)
    task.cancel()
    await asyncio.sleep(0.05)
    task.cancel()  # cancelled again while it waits

    with pytest.raises(asyncio.CancelledError):
        await task
    assert finished.is_set()  # nothing writes after the caller (and its lock) is gone


# --- expiry ---------------------------------------------------------------------


async def test_expire_removes_only_idle_uploads(uploads: Uploads, tmp_path: Path) -> None:
    data = video(2000)
    idle, active = await create(uploads, data), await create(uploads, data)
    await uploads.append(idle.id, 0, data[:500])
    await uploads.append(active.id, 0, data[:500])
    age(tmp_path / "uploads" / idle.id, EXPIRY_S + 60)
    age(tmp_path / "uploads" / active.id, EXPIRY_S + 60)
    await uploads.append(active.id, 500, data[500:900])  # a chunk: no longer idle

    assert await uploads.expire() == [idle.id]

    with pytest.raises(UnknownUpload):
        await uploads.status(idle.id)
    assert (await uploads.status(active.id)).offset == 900
    assert await uploads.expire(utcnow() + timedelta(seconds=EXPIRY_S - 60)) == []
    assert await uploads.expire(utcnow() + timedelta(seconds=EXPIRY_S + 60)) == [active.id]


async def test_expire_removes_leftovers_keeps_videos_and_skips_busy_uploads(
    uploads: Uploads, tmp_path: Path
) -> None:
    data = video(1000)
    done = await create(uploads, data)
    await send_all(uploads, done.id, data)
    stored = await uploads.complete(done.id)
    busy = await create(uploads, data)
    part = tmp_path / "uploads" / ("C" * 32 + ".mp4.part")  # a one-shot upload that died
    part.write_bytes(b"half")
    crashed = tmp_path / "uploads" / ("D" * 32)  # a create that died before its lock file
    crashed.mkdir()
    for path in upload_dir_entries(tmp_path):
        age(path, EXPIRY_S + 60)
    sent, gate = asyncio.Event(), asyncio.Event()

    async def held() -> AsyncIterator[bytes]:
        sent.set()
        await gate.wait()
        yield data

    holding = asyncio.create_task(uploads.append(busy.id, 0, held()))
    await sent.wait()

    removed = await uploads.expire()

    gate.set()
    await holding
    assert sorted(removed) == sorted([done.id, part.name, crashed.name])
    assert upload_dir_entries(tmp_path) == [tmp_path / "uploads" / busy.id]
    assert file_of(stored.uri).read_bytes() == data


# --- whole videos in one request -------------------------------------------------


@pytest.mark.parametrize("declared", [True, False])
async def test_put_stream_stores_a_whole_video(
    uploads: Uploads, tmp_path: Path, declared: bool
) -> None:
    data = video(3000, WEBM_HEAD)
    pieces = [data[i : i + 700] for i in range(0, len(data), 700)]

    stored = await uploads.put_stream(
        body(*pieces), mime="video/webm", sha256=sha(data) if declared else None
    )

    assert stored == StoredMedia(
        key=stored.key,
        uri=stored.uri,
        mime="video/webm",
        bytes=len(data),
        sha256=sha(data),
        info=PROBED,
    )
    assert stored.key.endswith(".webm")
    assert file_of(stored.uri).read_bytes() == data
    assert upload_dir_entries(tmp_path) == []


async def test_put_stream_stops_at_the_first_byte_over_the_limit(
    uploads: Uploads, tmp_path: Path
) -> None:
    pulled = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal pulled
        piece = video(1000)
        for _ in range(50):  # bounded: a regression fails the test, not the disk
            pulled += 1
            yield piece

    with pytest.raises(TooLarge) as refused:
        await uploads.put_stream(endless(), mime="video/mp4")

    assert refused.value.limit == MAX_BYTES
    assert pulled == MAX_BYTES // 1000 + 1
    assert upload_dir_entries(tmp_path) == []
    assert objects(tmp_path) == []


@pytest.mark.parametrize(
    ("data", "declared", "error"),
    [
        (video(1000), {"sha256": sha(b"other")}, ChecksumMismatch),
        (b"plain text, renamed .mp4\n" * 20, {}, UnsupportedMedia),
        (b"", {}, UnsupportedMedia),
        (video(1000), {"sha256": "not-a-sha"}, InvalidUpload),
        (video(1000), {"mime": "application/octet-stream"}, UnsupportedMedia),
    ],
)
async def test_put_stream_refusals_leave_nothing_behind(
    uploads: Uploads,
    tmp_path: Path,
    data: bytes,
    declared: dict[str, Any],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        await uploads.put_stream(body(data), **{"mime": "video/mp4", **declared})
    assert upload_dir_entries(tmp_path) == []
    assert objects(tmp_path) == []


async def test_put_stream_keeps_nothing_from_a_dropped_connection(
    uploads: Uploads, tmp_path: Path
) -> None:
    with pytest.raises(ConnectionResetError):
        await uploads.put_stream(body(video(500), drop=True), mime="video/mp4")
    assert upload_dir_entries(tmp_path) == []


# --- the probe (real: FFmpeg through PyAV) ---------------------------------------------


@pytest.fixture
def probing(make_uploads: Callable[..., Uploads]) -> Uploads:
    return make_uploads(prober=probe, max_bytes=4 * 1024 * 1024, chunk_max_bytes=1024 * 1024)


async def test_complete_probes_the_video_and_keeps_what_it_found(probing: Uploads) -> None:
    data = video_bytes()
    state = await create(probing, data)
    await probing.append(state.id, 0, body(data))

    stored = await probing.complete(state.id)

    assert stored.info is not None
    assert (stored.info.video_codec, stored.info.audio_codec) == ("h264", "aac")
    assert stored.info.duration_s == pytest.approx(1.0, abs=0.1)
    assert stored.media().duration_s == stored.info.duration_s
    assert (await probing.complete(state.id)).info == stored.info  # done.json keeps it


async def test_a_file_cut_short_is_refused_at_completion_and_nothing_is_kept(
    probing: Uploads, tmp_path: Path
) -> None:
    data = video_bytes()[: len(video_bytes()) * 6 // 10]  # the moov box is at the end: lost
    state = await create(probing, data)
    await probing.append(state.id, 0, body(data))

    with pytest.raises(UndecodableMedia, match="cannot be decoded"):
        await probing.complete(state.id)

    assert upload_dir_entries(tmp_path) == []
    assert objects(tmp_path) == []
    with pytest.raises(UnknownUpload):
        await probing.status(state.id)


async def test_put_stream_refuses_what_does_not_decode_and_keeps_nothing(
    probing: Uploads, tmp_path: Path
) -> None:
    with pytest.raises(UndecodableMedia):
        await probing.put_stream(body(video(5000)), mime="video/mp4")
    assert upload_dir_entries(tmp_path) == []
    assert objects(tmp_path) == []


async def test_a_video_too_short_to_be_an_answer_is_refused(
    make_uploads: Callable[..., Uploads], tmp_path: Path
) -> None:
    uploads = make_uploads(prober=probe, max_bytes=1 << 22, min_duration_s=2.0)
    with pytest.raises(InvalidUpload, match=r"1\.0 s long; an answer is at least 2 s"):
        await uploads.put_stream(body(video_bytes()), mime="video/mp4")
    assert objects(tmp_path) == []


# --- configuration ----------------------------------------------------------------


def test_uploads_take_their_limits_from_the_settings(tmp_path: Path) -> None:
    settings = WebSettings(
        media_dir=tmp_path / "media", upload_max_bytes=10_000, upload_types=("video/webm",)
    )

    uploads = Uploads.from_settings(settings)

    assert uploads.dir == (tmp_path / "media" / "uploads").resolve()
    assert isinstance(uploads.store, LocalMediaStore)
    assert uploads.store.objects == (tmp_path / "media" / "objects").resolve()
    assert (uploads.max_bytes, uploads.chunk_max_bytes) == (10_000, settings.upload_chunk_max_bytes)
    assert uploads.expiry == timedelta(seconds=settings.upload_expiry_s)
    assert uploads.types == ("video/webm",)


def test_a_type_without_known_magic_bytes_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="video/ogg"):
        Uploads(
            tmp_path,
            LocalMediaStore(tmp_path),
            max_bytes=MAX_BYTES,
            chunk_max_bytes=CHUNK_MAX,
            expiry_s=EXPIRY_S,
            types=["video/mp4", "video/ogg"],
        )
