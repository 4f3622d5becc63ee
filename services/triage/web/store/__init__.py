"""The triage database, by aggregate: :class:`Questions` (the queue and the
moderators' actions), :class:`Teams` (recording teams and their feeds),
:class:`Tags` (the moderators' labels on questions),
:class:`Notifications` (what each person is told, read or not),
:class:`Labels` and :class:`ModelJobs` (learning from the moderators),
:class:`Answers` (recorded answers, their consent and its withdrawal, the replies'
outcomes), :class:`Review` (the moderators' review: approve or send back),
:class:`AnswerMedia` (what the media worker makes of an answer, cuts, transcript
edits, the renditions replies publish), :class:`MediaReferences` (every media file a
row names, for the sweep), :class:`Protection` (the replies under our
published answers) and the :class:`Outbox`, over one
:class:`Database` (sessions, clock, timeline, audit, outbox writes and the
conditional-UPDATE concurrency rule:
:mod:`.transaction`). One transaction per call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.common.jobs import JobTable
from services.common.messages import utcnow
from services.common.signing import CommandKeys
from services.triage.web.models import MediaJob
from services.triage.web.store.answers import Answers, StoredAnswer, WithdrawalRequest
from services.triage.web.store.learning import Labels, ModelJobs
from services.triage.web.store.media import AnswerMedia, MediaPolicy, MediaStatus
from services.triage.web.store.media_refs import MediaReferences
from services.triage.web.store.notifications import Notifications
from services.triage.web.store.outbox import Outbox
from services.triage.web.store.protection import Protection
from services.triage.web.store.questions import Counts, Outcome, QuestionFilter, Questions
from services.triage.web.store.review import Review
from services.triage.web.store.tags import Tags
from services.triage.web.store.teams import FeedItem, TeamLoad, Teams
from services.triage.web.store.transaction import Actor, Clock, Database, new_id

__all__ = [
    "Actor",
    "AnswerMedia",
    "Answers",
    "Clock",
    "Counts",
    "Database",
    "FeedItem",
    "Labels",
    "MediaPolicy",
    "MediaReferences",
    "MediaStatus",
    "ModelJobs",
    "Notifications",
    "Outbox",
    "Outcome",
    "Protection",
    "QuestionFilter",
    "Questions",
    "Review",
    "StoredAnswer",
    "Tags",
    "TeamLoad",
    "Teams",
    "TriageStore",
    "WithdrawalRequest",
    "new_id",
]


class TriageStore:
    """The aggregates over one database (what the web's lifespan builds once)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        claim_ttl_s: int = 120,
        consent_scopes: Sequence[str] = ("campaign-social", "public"),
        media_policy: MediaPolicy | None = None,
        command_keys: CommandKeys | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.db = Database(engine, claim_ttl_s=claim_ttl_s, clock=clock)
        self.jobs = JobTable(MediaJob, clock=clock)
        self.media = AnswerMedia(self.db, self.jobs, media_policy or MediaPolicy())
        self.media_refs = MediaReferences(self.db)
        #: What the readiness check asks (the same engine as ``db``'s).
        self.engine = engine
        self.questions = Questions(self.db)
        self.teams = Teams(self.db)
        self.tags = Tags(self.db)
        self.notifications = Notifications(self.db)
        self.answers = Answers(self.db, self.media, consent_scopes=consent_scopes)
        self.review = Review(self.db, self.media)
        self.outbox = Outbox(self.db, command_keys)
        self.protection = Protection(self.db)
        self.labels = Labels(self.db)
        self.model_jobs = ModelJobs(self.db)

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.db.sessions

    def clock(self) -> datetime:
        return self.db.clock()

    def on_outbox(self, wake: Callable[[], None]) -> None:
        """Wake the outbox relay after every commit that wrote to the outbox."""
        self.db.on_outbox(wake)
