"""Multipart forms whose files spool in a folder of our choosing.

Starlette spools an uploaded file over 1 MB to the system's temporary folder,
which in a container is a tmpfs counted against the memory limit: two large
answers at once would kill it. :func:`spooled_form` parses the same way and
spools on the media volume instead (beside the unfinished uploads)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from tempfile import SpooledTemporaryFile

from fastapi import Request
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from services.triage.web.exceptions import Invalid


class _SpoolingParser(MultiPartParser):
    """Starlette's parser (pinned version), each file part spooled under ``spool_dir``."""

    def __init__(self, request: Request, spool_dir: Path, *, max_files: int, max_fields: int):
        super().__init__(
            request.headers, request.stream(), max_files=max_files, max_fields=max_fields
        )
        self.spool_dir = spool_dir

    def on_headers_finished(self) -> None:
        super().on_headers_finished()
        upload = self._current_part.file
        if upload is None:
            return
        default = self._files_to_close_on_error.pop()  # still empty: nothing rolled over
        default.close()
        spool: SpooledTemporaryFile[bytes] = SpooledTemporaryFile(  # noqa: SIM115 (closed with the form)
            max_size=self.spool_max_size, dir=str(self.spool_dir)
        )
        self._files_to_close_on_error.append(spool)
        upload.file = spool  # type: ignore[assignment]


@contextlib.asynccontextmanager
async def spooled_form(
    request: Request, spool_dir: Path, *, max_files: int, max_fields: int
) -> AsyncIterator[FormData]:
    """The request's multipart form, its files spooled under ``spool_dir`` and
    closed (deleted) on the way out."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise Invalid("send the answer as multipart/form-data")
    parser = _SpoolingParser(request, spool_dir, max_files=max_files, max_fields=max_fields)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise HTTPException(status_code=400, detail=exc.message) from exc
    try:
        yield form
    finally:
        await form.close()
