"""Every name of a media-folder file the triage database holds, for the sweep of
unreferenced files (:mod:`services.triage.web.sweep`). Read-only.

A stored file can be named by: an answer's video URI (``objects/<key>``) and poster
(``posters/<sha256>.jpg``); a media job's key, payload (the original it reads, its
sha256) and result (the poster, the rendition: a finished job is the cache the next
answer with the same video is served from), in any state; and an outbox message
(``answers.recorded``'s video, each ``replies.requested``'s rendition and subtitle
files), sent or not. These columns are read as words (``[A-Za-z0-9_.-]+``): a file
whose name appears anywhere in them is referenced, whatever the folder or the media
root the URI was written under.

A subtitle file is named by nothing but the ``replies.requested`` that carries it,
and the publisher may read it long after (a reply held while its speaker is paused):
when a reply still awaits its outcome and its request has left the outbox, the
subtitle files it needs cannot be known, and :attr:`References.subtitles_unknown`
says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from services.common import topics
from services.common.jobs import JobState
from services.triage.web.models import Answer, MediaJob, OutboxMessage, Reply, ReplyState
from services.triage.web.store.outbox import reply_id_of
from services.triage.web.store.transaction import Database

_WORD = re.compile(r"[A-Za-z0-9_.-]+")
#: A job in these states may still write (or reuse) a file under its sha256.
_LIVE = (JobState.QUEUED.value, JobState.RUNNING.value)


def words(*texts: str | bytes | None) -> set[str]:
    """The words of ``texts`` (file names survive whole: ``<id>.mp4``, ``<sha256>.srt``)."""
    found: set[str] = set()
    for text in texts:
        if text:
            decoded = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
            found.update(_WORD.findall(decoded))
    return found


@dataclass(frozen=True)
class References:
    """What the database names, read at one moment."""

    #: Every word of every column that can name a stored file.
    words: frozenset[str]
    #: The words of the media jobs still queued or running (their sha256s among them):
    #: a worker may be about to write, or to reuse, a file under them.
    live: frozenset[str]
    #: Some reply awaits its outcome and its request is no longer in the outbox.
    subtitles_unknown: bool


class MediaReferences:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def snapshot(self) -> References:
        """Everything the database names now (an error propagates: nothing is known)."""
        found: set[str] = set()
        live: set[str] = set()
        async with self.db.sessions() as session:
            answers = await session.execute(select(Answer.media_uri, Answer.poster_key))
            for uri, poster in answers:
                found |= words(uri, poster)
            t = MediaJob
            jobs = await session.execute(
                select(t.c.key, t.c.state, t.c.payload_json, t.c.result_json)
            )
            for key, state, payload, result in jobs:
                named = words(key, payload, result)
                found |= named
                if state in _LIVE:
                    live |= named
            # Read before the outbox: a request pruned meanwhile reads as unknown.
            awaited = set(
                await session.scalars(
                    select(Reply.reply_id).where(Reply.state == ReplyState.REQUESTED.value)
                )
            )
            messages = await session.execute(select(OutboxMessage.topic, OutboxMessage.value))
            for topic, value in messages:
                found |= words(value)
                if topic == topics.REPLIES_REQUESTED:
                    awaited.discard(reply_id_of(value) or "")
        return References(frozenset(found), frozenset(live), bool(awaited))
