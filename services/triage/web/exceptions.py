"""What the triage web refuses, mapped to HTTP in one place (``app.py``)::

TriageError
├── NotFound           404  no such question, team, answer or user
├── Forbidden          403  the role or the team may not do this
├── Conflict           409  the item is not in a state that allows this
│   └── ClaimedByOther 409  another person holds the claim (until ``until``)
├── Invalid            422  the request is well formed but not acceptable
│   └── ConsentMissing 422  no consent, no answer
└── TooManyAttempts    429  too many failed logins; retry after ``retry_after_s``
"""

from __future__ import annotations

from datetime import datetime


class TriageError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class Invalid(TriageError):
    status = 422
    code = "invalid_request"


class ConsentMissing(Invalid):
    code = "consent_required"


class TooManyAttempts(TriageError):
    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
