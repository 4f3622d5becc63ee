"""Protection's use cases in the publisher: watch the replies under every published
answer (:meth:`Protector.sweep`) and carry out the triage web's signed hide / unhide
commands (:meth:`Protector.moderate`), through the same per-account budgets and X's
spend ledger as publishing.

The rules that make it safe:

- a reply is kept in ``watched_replies`` (committed) before it is announced, and
  announced again until the broker acknowledged it: a watcher killed at any point
  misses nothing, and a reply seen twice is kept once;
- an action is ``sending`` (committed) before the platform is called; a redelivered
  command whose action is final only repeats its outcome; hiding and showing are
  idempotent on every platform, so a ``sending`` action met again is carried out
  again without a second effect;
- a report (Mastodon) is not idempotent: it is made at most once per action, its
  step recorded before the one request; a re-run that finds it recorded does not
  report again (``report-unconfirmed`` when the outcome was never known);
- nothing is done to a post the watcher did not read under one of our published
  answers (``refused``): a command cannot make the account hide anyone else's posts.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from pydantic import ValidationError

from services.common.messages import (
    Author,
    ModerateReply,
    ModerationAction,
    ModerationOutcome,
    ReplyKind,
    ReplyModerated,
    ReplyReceived,
    mention_id,
    utcnow,
)
from services.common.messages import Platform as PlatformName
from services.publish import metrics
from services.publish.config import PublishSettings
from services.publish.exceptions import FinalError, RateLimited, RetryableError
from services.publish.models import ActionState, Reply, ReplyAction, ReportState
from services.publish.outcomes import Retry
from services.publish.platforms.base import Moderation, ReplyTarget, Reporting, SeenReply
from services.publish.protect_ledger import ProtectLedger

log = logging.getLogger(__name__)

#: Final action states: a redelivered command only repeats the outcome.
_FINAL = {ActionState.DONE.value, ActionState.FAILED.value, ActionState.REFUSED.value}
_OUTCOMES = {
    ActionState.DONE.value: ModerationOutcome.DONE,
    ActionState.FAILED.value: ModerationOutcome.FAILED,
    ActionState.REFUSED.value: ModerationOutcome.REFUSED,
}


@dataclass(frozen=True)
class Moderated:
    """The command is settled: announce ``message``."""

    message: ReplyModerated


def received(answer: Reply, seen: SeenReply, now_platform: PlatformName) -> ReplyReceived:
    """The ``replies.received`` event of a reply seen under ``answer`` (may raise
    :class:`ValidationError` for a reply the contract cannot carry)."""
    assert answer.post_id is not None
    return ReplyReceived(
        id=mention_id(now_platform, seen.native_id),
        platform=now_platform,
        native_id=seen.native_id,
        answer_post_id=answer.post_id,
        answer_reply_id=answer.reply_id,
        question_id=answer.question_id,
        speaker_ref=answer.speaker_ref,
        kind=ReplyKind(seen.kind),
        author=Author(id=seen.author_id, handle=seen.author_handle[:256]),
        text=seen.text[:10_000],
        lang=seen.lang,
        url=seen.url if seen.url and seen.url.startswith(("http://", "https://")) else None,
        created_at=seen.created_at,
        received_at=utcnow(),
    )


class Protector:
    def __init__(
        self,
        *,
        ledger: ProtectLedger,
        platforms: Mapping[PlatformName, Moderation],
        settings: PublishSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.platforms = platforms
        self.settings = settings
        self.clock = clock

    # -- watching ------------------------------------------------------------------

    async def sweep(self) -> int:
        """Read the replies under every answer published in the last
        ``PUBLISH_PROTECT_WATCH_DAYS``; keep the new ones. Returns how many were new.
        A platform out of budget or failing is skipped until the next sweep."""
        since = utcnow() - timedelta(days=self.settings.protect_watch_days)
        new = 0
        for answer in await self.ledger.watched_answers(since):
            platform = PlatformName(answer.platform)
            moderation = self.platforms.get(platform)
            if moderation is None or answer.post_id is None:
                continue
            if any(moderation.budget.wait_s(b) > 0 for b in moderation.watch_buckets):
                continue
            new += await self._read_under(moderation, answer)
        return new

    async def _read_under(self, moderation: Moderation, answer: Reply) -> int:
        assert answer.post_id is not None
        since_id = None
        if moderation.name is PlatformName.X:
            known = await self.ledger.seen_under(answer.post_id)
            since_id = max(known, key=lambda i: (len(i), i)) if known else None
        try:
            seen = await moderation.replies_under(answer.post_id, since_id=since_id)
        except (RateLimited, RetryableError, FinalError) as exc:
            log.warning("replies under %s %s not read: %s", answer.platform, answer.post_id, exc)
            metrics.PROTECT_READS.labels(answer.platform, "error").inc()
            return 0
        metrics.PROTECT_READS.labels(answer.platform, "ok").inc()
        new = 0
        for reply in seen:
            try:
                message = received(answer, reply, moderation.name)
            except ValidationError as exc:
                log.warning("reply %s under %s skipped: %s", reply.native_id, answer.post_id, exc)
                continue
            if await self.ledger.record_seen(message):
                new += 1
                metrics.PROTECT_REPLIES_SEEN.labels(answer.platform).inc()
        return new

    # -- acting --------------------------------------------------------------------

    async def moderate(self, command: ModerateReply) -> Moderated | Retry:
        """Carry out one hide / unhide command, once."""
        existing = await self.ledger.action(command.action_id)
        if existing is not None and existing.state in _FINAL:
            return Moderated(self._message(command, existing))
        refusal = await self._refusal(command)
        if refusal is not None:
            return refusal
        moderation = self.platforms[command.platform]
        waits = [moderation.budget.resume_at(b) for b in moderation.moderate_buckets]
        resume = max((w for w in waits if w is not None), default=None)
        if resume is not None:
            return Retry(resume, f"{command.platform.value} budget spent")
        row = await self.ledger.start(command)
        watched = await self.ledger.watched(command.reply_id)
        kind = str(json.loads(watched.payload).get("kind", "reply")) if watched else "reply"
        target = ReplyTarget(command.native_id, command.author.id, command.answer_post_id, kind)
        hide = command.action is ModerationAction.HIDE
        try:
            how = await moderation.hide_reply(target, hide)
            if hide and command.report and isinstance(moderation, Reporting):
                how = f"{how}+{await self._report(command, moderation, target)}"
        except RateLimited as exc:
            return Retry(exc.reset_at or self.clock() + 60, str(exc))
        except RetryableError as exc:
            if row.attempts < self.settings.reply_max_attempts:
                wait = self.settings.reply_retry_initial_s * 2 ** (row.attempts - 1)
                return Retry(self.clock() + wait, str(exc))
            row = await self.ledger.finish(command, ActionState.FAILED, error=str(exc)[:4000])
        except FinalError as exc:
            row = await self.ledger.finish(command, ActionState.FAILED, error=str(exc)[:4000])
        else:
            row = await self.ledger.finish(command, ActionState.DONE, how=how)
        metrics.PROTECT_ACTIONS.labels(
            command.platform.value, command.action.value, row.state
        ).inc()
        return Moderated(self._message(command, row))

    async def _report(
        self, command: ModerateReply, reporting: Reporting, target: ReplyTarget
    ) -> str:
        """Report the reply, at most once for the action: ``reported``, or
        ``report-unconfirmed`` when a report may have been made (its request failed
        without an answer, or an earlier run was killed during it; moderators check
        by hand). A refusal or a rate limit, which surely made none, is raised with
        the step cleared, so the next try reports."""
        if not await self.ledger.start_report(command.action_id):
            row = await self.ledger.action(command.action_id)
            if row is not None and row.report_state == ReportState.DONE.value:
                return "reported"
            log.warning(
                "action %s: the report of %s may have been made already; not made again",
                command.action_id,
                command.reply_id,
            )
            return "report-unconfirmed"
        try:
            await reporting.report_reply(target, command.reason)
        except (RateLimited, FinalError):
            await self.ledger.end_report(command.action_id, made=False)
            raise
        except RetryableError as exc:
            log.warning(
                "action %s: the report of %s may have been made (%s); not made again",
                command.action_id,
                command.reply_id,
                exc,
            )
            return "report-unconfirmed"
        await self.ledger.end_report(command.action_id, made=True)
        return "reported"

    async def _refusal(self, command: ModerateReply) -> Moderated | None:
        """Refused (and recorded) unless the watcher read this reply, by this author,
        under this answer of ours on this platform."""
        watched = await self.ledger.watched(command.reply_id)
        if command.platform not in self.platforms:
            why = f"{command.platform.value} is not configured"
            row = await self.ledger.finish(command, ActionState.FAILED, error=why)
            return Moderated(self._message(command, row))
        if (
            watched is not None
            and watched.platform == command.platform.value
            and watched.answer_post_id == command.answer_post_id
            and watched.author_id == command.author.id
        ):
            return None
        why = "not a reply the watcher read under one of our published answers"
        log.warning("action %s on %s refused: %s", command.action_id, command.reply_id, why)
        row = await self.ledger.finish(command, ActionState.REFUSED, error=why)
        metrics.PROTECT_ACTIONS.labels(
            command.platform.value, command.action.value, "refused"
        ).inc()
        return Moderated(self._message(command, row))

    @staticmethod
    def _message(command: ModerateReply, row: ReplyAction) -> ReplyModerated:
        return ReplyModerated(
            action_id=command.action_id,
            reply_id=command.reply_id,
            platform=command.platform,
            action=command.action,
            outcome=_OUTCOMES[row.state],
            how=row.how or "",
            error=(row.error or None) and str(row.error)[:4000],
            at=utcnow(),
        )
