"""What the triage web refuses, mapped to HTTP in one place (``app.py``): every
error class carries its status.

TriageError
├── BadRequest         400  a malformed header or parameter (a number that is not one)
├── NotFound           404  no such question, team, answer or user
├── Forbidden          403  the role or the team may not do this
├── Conflict           409  the item is not in a state that allows this
│   ├── ClaimedByOther 409  another person holds the claim (until ``until``)
│   └── AnswerReplaced 409  the answer reviewed is no longer the one waiting for review
├── Invalid            422  the request is well formed but not acceptable
│   └── ConsentMissing 422  no consent, no answer
└── TooManyAttempts    429  too many failed logins; retry after ``retry_after_s``

MediaError (answer videos and uploads, :mod:`.media`)
├── UnknownUpload      404  no such upload, or an id that cannot be one
├── UnknownMedia       404  no such stored video, or a key or URI that cannot be one
├── OffsetMismatch     409  the chunk does not start where the upload stands (``expected``)
├── UploadIncomplete   409  ``complete`` before every declared byte arrived (``offset``)
├── UploadComplete     409  the upload is complete and takes no more bytes
├── TooLarge           413  a declared size, a chunk or a stream over its ``limit``
├── UnsupportedMedia   415  a type not accepted, or bytes that are not that type of video
├── UndecodableMedia   422  FFmpeg cannot decode it, or it is cut short (nothing is kept)
├── InvalidUpload      422  a malformed declaration (size, sha256, question, owner, name)
└── ChecksumMismatch   422  the bytes do not hash to the declared sha256 (the upload is kept)
"""

from __future__ import annotations

from datetime import datetime


class TriageError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(TriageError):
    status = 400
    code = "bad_request"


class Unauthorized(TriageError):
    status = 401
    code = "unauthorized"


class NotFound(TriageError):
    status = 404
    code = "not_found"


class Forbidden(TriageError):
    status = 403
    code = "forbidden"


class Conflict(TriageError):
    status = 409
    code = "conflict"


class ClaimedByOther(Conflict):
    code = "claimed"

    def __init__(self, message: str, *, holder: str, until: datetime | None) -> None:
        super().__init__(message)
        self.holder = holder
        self.until = until


class NotUndoable(Conflict):
    code = "not_undoable"


class AnswerReplaced(Conflict):
    """The moderator reviewed an answer that is no longer the one waiting for review
    (the team recorded a newer one, or it was sent back): review the current one."""

    code = "answer_replaced"


class AnswerChanged(Conflict):
    """The answer's words, subtitles or cut changed after the moderator looked (a team
    edit meanwhile): review it again."""

    code = "answer_changed"


class Invalid(TriageError):
    status = 422
    code = "invalid_request"


class ConsentMissing(Invalid):
    code = "consent_required"


class SpeakerPaused(Conflict):
    """The person filmed has their publishing paused (an escalation under one of their
    answers, or a moderator): resume it on the replies page first."""

    code = "speaker_paused"


class TooManyAttempts(TriageError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# --- answer videos and uploads ---------------------------------------------------


class MediaError(Exception):
    """Base of everything :mod:`.media` raises on purpose."""

    status = 400
    #: The error code in the response body (None: the status's own).
    code: str | None = None


class UnknownUpload(MediaError):
    """No such upload, or an id that cannot be one (no path is built from it)."""

    status = 404


class UnknownMedia(MediaError):
    """No such stored video, or a key or URI that cannot be one of this store's."""

    status = 404


class OffsetMismatch(MediaError):
    """A chunk must start where the upload stands; resume from ``expected``."""

    status = 409

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"chunk at offset {got}, but {expected} bytes were received")
        self.expected = expected
        self.got = got


class UploadIncomplete(MediaError):
    """``complete`` before every declared byte arrived; resume from ``offset``."""

    status = 409

    def __init__(self, offset: int, size: int) -> None:
        super().__init__(f"{offset} of {size} bytes received")
        self.offset = offset
        self.size = size


class UploadComplete(MediaError):
    """The upload is complete and takes no more bytes."""

    status = 409


class TooLarge(MediaError):
    """A declared size, a chunk or a stream over ``limit`` bytes."""

    status = 413

    def __init__(self, message: str, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class UnsupportedMedia(MediaError):
    """A type that is not accepted, or bytes that are not a video of the declared type."""

    status = 415


class UndecodableMedia(MediaError):
    """The file cannot be decoded as a video, or is cut short; nothing of it is kept."""

    status = 422
    code = "undecodable_media"


class InvalidUpload(MediaError):
    """A malformed declaration (size, sha256, question, owner, file name)."""

    status = 422


class ChecksumMismatch(MediaError):
    """The bytes do not hash to the declared sha256; the upload is kept (discard it)."""

    status = 422

    def __init__(self, declared: str, actual: str) -> None:
        super().__init__(f"sha256 of the bytes is {actual}, {declared} was declared")
        self.declared = declared
        self.actual = actual
