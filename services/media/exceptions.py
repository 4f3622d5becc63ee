"""What a media job can fail with.

MediaJobError
├── PermanentJobError   no try will do better (the source is gone or undecodable; the
│                       rendition does not satisfy its profile): failed at once
└── (any other error)   tried again with backoff, up to ``MEDIA_MAX_ATTEMPTS``
"""

from __future__ import annotations


class MediaJobError(Exception):
    """A job could not be done."""


class PermanentJobError(MediaJobError):
    """A job that no retry can do: failed for good at once."""
