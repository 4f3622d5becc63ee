"""The publisher's use cases, between the ledger, the governor and the platforms:
publish one requested reply (or hold it while its person is paused), reconcile
after a restart, take replies down when consent is withdrawn, record pauses and
resumes, and learn engagements and opt-outs from mentions.

Nothing here knows Kafka: :mod:`services.publish.agents` decodes, calls these and
produces what they return. Each call returns :class:`Done` (produce the message,
if any, and move on) or :class:`Retry` (do the same input again at ``at``), both
in :mod:`services.publish.outcomes`. A reply's media files are checked by
:mod:`services.publish.media_files` before the first byte goes out.

The one rule that keeps a reply from going out twice: a reply is ``sending`` in
the ledger (committed) before the platform is called, and a ``sending`` reply is
looked up on the platform (:meth:`Platform.find_reply`) before any new post.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from services.common.messages import (
    ConsentWithdrawn,
    MentionReceived,
    PublishReply,
    ReplyPublished,
    Source,
    SpeakerPaused,
    mention_id,
    utcnow,
)
from services.common.messages import Platform as PlatformName
from services.common.replies import Templates
from services.publish import domain, metrics
from services.publish.config import PublishSettings
from services.publish.exceptions import (
    AlreadyReplied,
    FinalError,
    MediaOutsideRoot,
    PublishError,
    RateLimited,
    RetryableError,
    UnsupportedMedia,
)
from services.publish.ledger import Ledger
from services.publish.media_files import check_contents, check_rendition, media_file
from services.publish.models import FINAL_STATES, Reply, ReplyState
from services.publish.outcomes import (
    Done,
    Outcome,
    Rejection,
    Retry,
    describe_final,
    failed_message,
    outcome_message,
    published_message,
)
from services.publish.platforms.base import Platform, PostedReply, ReplyDraft
from services.publish.spend import CallClass, SpendLedger

log = logging.getLogger(__name__)

#: How often a reply waiting for its mention looks again (seconds).
MENTION_RECHECK_S = 2.0


async def _find(platform: Platform, row: Reply) -> PostedReply | None:
    """``row`` on its platform, looked for the way the ledger says it was sent."""
    return await platform.find_reply(
        in_reply_to=row.in_reply_to, text=row.text, standalone=row.standalone
    )


class Publisher:
    def __init__(
        self,
        *,
        ledger: Ledger,
        platforms: Mapping[PlatformName, Platform],
        settings: PublishSettings,
        templates: Templates | None = None,
        clock: Callable[[], float] = time.time,
        spend: SpendLedger | None = None,
        reannounce_after_s: float = 900.0,
    ) -> None:
        self.ledger = ledger
        #: A request for a reply announced longer ago than this (the producer's resend
        #: window, ``KAFKA_RESEND_WINDOW_S``) has its outcome announced again.
        self.reannounce_after_s = reannounce_after_s
        self.spend = spend
        self.platforms = platforms
        self.settings = settings
        self.policy = domain.Policy.from_settings(settings)
        self.templates = templates or Templates.load(settings.templates_file)
        self.clock = clock
        #: This process, as the owner of the replies it sends.
        self.instance = uuid.uuid4().hex[:16]

    # -- replies.requested -----------------------------------------------------------

    async def screen(self, request: PublishReply) -> Rejection | None:
        """What refuses ``request`` before the ledger opens it: a reply to another post
        than the mention's own, media outside the media root, or a second reply to a
        post that already has a live one (whatever the question)."""
        if request.mention_id != mention_id(request.platform, request.in_reply_to):
            return Rejection(
                "not_the_mention",
                f"in_reply_to {request.in_reply_to} is not the mention's own post "
                f"({request.mention_id})",
            )
        if request.media is not None:
            try:
                media_file(request.media, self.settings.media_root)
            except UnsupportedMedia as exc:
                reason = "media_outside_root" if isinstance(exc, MediaOutsideRoot) else "media"
                return Rejection(reason, str(exc))
        other = await self.ledger.live_reply_to(
            request.platform.value, request.in_reply_to, excluding=request.reply_id
        )
        if other is not None:
            return Rejection(
                "post_already_answered",
                f"{request.platform.value} post {request.in_reply_to} already has a reply "
                f"({other}): one reply per post asked",
            )
        return None

    async def handle(self, request: PublishReply, command: bytes | None = None) -> Outcome:
        """Publish ``request`` at most once, whatever happened before; hold it while its
        person is paused. ``command``: the record as the triage web signed it, kept with
        a held reply and requested again on resume (without it, the request must come
        again by itself)."""
        row = await self.ledger.open(request)
        platform_name = request.platform.value
        if row.state in FINAL_STATES:
            return self._repeated(row)
        # Before any wait (a rate limit, a budget, the engagement wait, a backoff): a
        # paused person's reply is set aside, not waited for, so the partition goes on.
        if row.state == ReplyState.PENDING and await self._hold(request, command):
            return Done(None)
        platform = self.platforms.get(request.platform)
        if platform is None:
            message = f"{platform_name} publishing is not configured on this publisher"
            if row.state == ReplyState.SENDING:  # cannot reconcile it: keep it for later
                log.error("reply %s is sending but %s", row.reply_id, message)
                return Retry(self.clock() + self.settings.reply_retry_max_s, message)
            row = await self.ledger.mark_failed(row.reply_id, message, retryable=True, count=False)
            metrics.REPLIES.labels(platform_name, "failed_retryable").inc()
            return Done(failed_message(row))
        buckets = platform.reply_buckets
        if request.media is not None:
            buckets += platform.media_buckets
        wait = max(platform.budget.wait_s(bucket) for bucket in buckets)
        if wait > 0:
            metrics.RATE_LIMIT_PAUSES.labels(platform_name).inc()
            return Retry(self.clock() + wait, f"{platform_name} account rate limited")
        return await self._try(request, row, platform, command)

    def _repeated(self, row: Reply) -> Done:
        """A request for a reply in a final state: nothing is posted again."""
        log.info("reply %s already %s; not posting again", row.reply_id, row.state)
        metrics.REPLIES.labels(row.platform, "repeated").inc()
        # Announced lately: nothing more (were the broker to lose it, this
        # process's resend window has it). Not announced (stopped before the
        # broker acknowledged it), or longer ago than that window (the embedded
        # broker came back empty and the web asks again for what it awaits):
        # announce it now; the outcome's consumer is idempotent.
        if row.announced_at is not None and self.ledger.now() - row.announced_at < (
            timedelta(seconds=self.reannounce_after_s)
        ):
            return Done(None)
        return Done(outcome_message(row))

    async def _try(
        self, request: PublishReply, row: Reply, platform: Platform, command: bytes | None
    ) -> Outcome:
        """One try, its errors sorted into retry-later and failed-for-good."""
        platform_name = request.platform.value
        try:
            return await self._attempt(request, row, platform, command)
        except RateLimited as exc:
            metrics.RATE_LIMIT_PAUSES.labels(platform_name).inc()
            log.info("reply %s put off until %.0f: %s", row.reply_id, exc.reset_at, exc.message)
            return Retry(max(exc.reset_at, self.clock()), exc.message)
        except RetryableError as exc:
            return await self._retry_or_fail(row.reply_id, exc, platform)
        except FinalError as exc:
            row = await self.ledger.mark_failed(
                row.reply_id, describe_final(exc), retryable=False, count=True
            )
            log.warning("reply %s failed for good: %s", row.reply_id, exc.message)
            metrics.REPLIES.labels(platform_name, "failed").inc()
            return Done(failed_message(row))
        except UnsupportedMedia as exc:
            row = await self.ledger.mark_failed(
                row.reply_id, str(exc), retryable=False, count=False
            )
            metrics.REPLIES.labels(platform_name, "failed").inc()
            return Done(failed_message(row))

    async def _attempt(
        self, request: PublishReply, row: Reply, platform: Platform, command: bytes | None
    ) -> Outcome:
        if row.state == ReplyState.SENDING:
            taken = await self._resume(request, row, platform)
        else:
            taken = await self._start(request, row)
        if not isinstance(taken, Reply):
            return taken
        row = taken
        assert row.text is not None
        media_ids = []
        if request.media is not None:
            video = media_file(request.media, self.settings.media_root)
            await asyncio.to_thread(check_contents, video)
            await asyncio.to_thread(check_rendition, video, request.platform.value)
            media_ids.append(await platform.upload_video(video))
        draft = ReplyDraft(
            text=row.text,
            in_reply_to=row.in_reply_to,
            idempotency_key=row.reply_id,
            media_ids=tuple(media_ids),
            language=request.language,
            standalone=request.standalone,
        )
        # The upload can take minutes: a pause that came meanwhile still holds the post,
        # and a withdrawal of the consent refuses it (nothing goes out, not even for
        # the moment the take-down after publishing would leave it up).
        if await self._hold(request, command):
            return Done(None)
        if (refused := await self._withdrawn_meanwhile(request, row)) is not None:
            return refused
        posted = await platform.post_reply(draft)
        return await self._published(row, posted, platform)

    async def _hold(self, request: PublishReply, command: bytes | None) -> bool:
        """Whether the reply is held because its person is paused (recorded if so)."""
        why = await self.ledger.hold_if_paused(request, command)
        if why is None:
            return False
        metrics.REPLIES.labels(request.platform.value, "held").inc()
        log.info("reply %s held until its person is resumed: %s", request.reply_id, why)
        return True

    async def _withdrawn_meanwhile(self, request: PublishReply, row: Reply) -> Done | None:
        """The reply refused when its consent is withdrawn now (by speaker and question,
        or by its answer: the governor's ``consent`` rule); None when it is not."""
        snapshot = await self.ledger.snapshot(request)
        why = domain.check_consent(request, snapshot, self.policy, utcnow())
        if why is None:
            return None
        return await self._refuse(row, [domain.Refusal(domain.CONSENT, why)])

    async def _resume(
        self, request: PublishReply, row: Reply, platform: Platform
    ) -> Reply | Outcome:
        """A reply found ``sending``: published if it is on the platform already, else
        taken over (no owner, its own, or a lease run out) and governed again."""
        # The last try may have posted before it could say so: look first.
        found = await platform.find_reply(
            in_reply_to=row.in_reply_to, text=row.text, standalone=request.standalone
        )
        if found is not None:
            log.info("reply %s was already on %s as %s", row.reply_id, row.platform, found.post_id)
            return await self._published(row, found, platform, reconciled=True)
        if not await self.ledger.claim(row.reply_id, self.instance, self._lease()):
            return self._held_elsewhere(row)
        verdict = await self._govern(request, row, compose=False)
        return verdict if isinstance(verdict, Done | Retry) else row

    async def _start(self, request: PublishReply, row: Reply) -> Reply | Outcome:
        """A ``pending`` reply: governed, its text composed, then ``sending`` by this
        publisher, unless another one took it first."""
        composed = await self._govern(request, row, compose=True)
        if not isinstance(composed, domain.Composed):
            assert composed is not None  # composing yields a text or a verdict
            return composed
        try:
            sending = await self.ledger.start_sending(
                row.reply_id,
                text=composed.text,
                template_id=composed.template_id,
                owner=self.instance,
                lease_until=self._lease(),
                standalone=request.standalone,
            )
        except AlreadyReplied:
            refusal = domain.Refusal(
                domain.ONE_REPLY_PER_QUESTION,
                f"another reply to question {row.question_id} or to {row.platform} "
                f"post {row.in_reply_to} went live first",
            )
            return await self._refuse(row, [refusal])
        if sending is None:  # no longer pending: another publisher read it and took it first
            return self._held_elsewhere(await self.ledger.get(row.reply_id) or row)
        return sending

    def _held_elsewhere(self, row: Reply) -> Retry:
        """Another publisher is sending the reply (a rebalance moved the partition):
        it may be posting right now. Look again when its lease runs out (at once
        when there is none: the next look finds what became of it)."""
        until = row.lease_until.timestamp() if row.lease_until else self.clock()
        return Retry(max(until, self.clock() + 1.0), "another publisher is sending it")

    async def _look_up(self, row: Reply, platform: Platform) -> PostedReply | None:
        """The reply on the platform, looked for the way it was sent (threaded or
        standalone), or None (also when the platform cannot say)."""
        try:
            return await _find(platform, row)
        except PublishError as exc:
            log.warning("reply %s: could not look it up on %s: %s", row.reply_id, row.platform, exc)
            return None

    async def _govern(
        self, request: PublishReply, row: Reply, *, compose: bool
    ) -> Outcome | domain.Composed | None:
        """The governor's verdict: put off, refused, or allowed (with the text
        composed when ``compose``)."""
        snapshot = await self.ledger.snapshot(request)
        refusals = domain.check(request, snapshot, self.policy, utcnow())
        if pending := self._mention_pending(row, snapshot, refusals):
            return pending
        composed = (
            domain.compose(request, snapshot, self.templates, self.policy) if compose else None
        )
        if isinstance(composed, domain.Refusal):
            refusals.append(composed)
        if refusals:
            return await self._refuse(row, refusals)
        assert not isinstance(composed, domain.Refusal)
        return composed

    def _mention_pending(
        self, row: Reply, snapshot: domain.Snapshot, refusals: list[domain.Refusal]
    ) -> Retry | None:
        """Put the reply off when all that stops it is a mention not read yet.

        Engagements are learnt from ``mentions.raw``, which this publisher reads
        on its own consumer group: after a restart, or behind a backlog, a request
        can come before its mention. It waits ``engagement_wait_s`` from the first
        time the reply was seen, then is refused like any reply to a mention that
        did not engage the campaign.
        """
        if snapshot.engagement is not None or [r.rule for r in refusals] != [domain.ENGAGED]:
            return None
        left = self.settings.engagement_wait_s - (utcnow() - row.created_at).total_seconds()
        if left <= 0:
            return None
        metrics.MENTION_WAITS.inc()
        reason = f"mention {row.mention_id} not read from mentions.raw yet"
        log.info("reply %s put off: %s", row.reply_id, reason)
        return Retry(self.clock() + min(MENTION_RECHECK_S, left), reason)

    def _lease(self) -> datetime:
        return utcnow() + timedelta(seconds=self.settings.sending_lease_s)

    async def _published(
        self, row: Reply, posted: PostedReply, platform: Platform, *, reconciled: bool = False
    ) -> Done:
        row = await self.ledger.mark_published(row.reply_id, posted)
        metrics.REPLIES.labels(row.platform, "reconciled" if reconciled else "published").inc()
        log.info("reply %s published on %s as %s", row.reply_id, row.platform, row.post_id)
        # Consent withdrawn while this reply was being sent: take it down at once.
        withdrawn = [
            w
            for w in await self.ledger.withdrawals_for(
                row.speaker_ref, row.question_id, row.answer_id
            )
            if w.at >= row.consent_at
        ]
        if withdrawn:
            try:
                await self._take_down_or_record(row, platform, withdrawn[0])
            except (RateLimited, RetryableError) as exc:
                log.warning(
                    "reply %s (%s post %s) must come down, consent withdrawn: %s; "
                    "the take-down sweep tries again",
                    row.reply_id,
                    row.platform,
                    row.post_id,
                    exc.message,
                )
        return Done(published_message(row))

    async def _refuse(self, row: Reply, refusals: list[domain.Refusal]) -> Done:
        row = await self.ledger.refuse(row.reply_id, refusals)
        for refusal in refusals:
            metrics.REFUSALS.labels(refusal.rule).inc()
        metrics.REPLIES.labels(row.platform, "refused").inc()
        log.info("reply %s refused: %s", row.reply_id, "; ".join(map(str, refusals)))
        return Done(failed_message(row))

    async def _retry_or_fail(
        self, reply_id: str, exc: RetryableError, platform: Platform
    ) -> Outcome:
        row = await self.ledger.record_error(reply_id, exc.message)
        metrics.RETRIES.labels(row.platform).inc()
        if row.attempts >= self.settings.reply_max_attempts:
            if row.state == ReplyState.SENDING:
                # The last error may have come after the post went out (a timeout on
                # the answer): a live reply must not be recorded as failed, or the
                # "one per question" guard would no longer cover it.
                found = await self._look_up(row, platform)
                if found is not None:
                    return await self._published(row, found, platform, reconciled=True)
            row = await self.ledger.mark_failed(
                reply_id,
                f"{exc.message} (after {row.attempts} tries)",
                retryable=True,
                count=False,
            )
            metrics.REPLIES.labels(row.platform, "failed_retryable").inc()
            log.warning("reply %s failed after %d tries: %s", reply_id, row.attempts, exc.message)
            return Done(failed_message(row))
        delay = min(
            self.settings.reply_retry_initial_s * 2 ** (row.attempts - 1),
            self.settings.reply_retry_max_s,
        )
        log.info("reply %s try %d failed (%s); next in %.1f s", reply_id, row.attempts, exc, delay)
        return Retry(self.clock() + delay, exc.message)

    # -- restart ---------------------------------------------------------------------

    async def reconcile_sending(self) -> list[ReplyPublished]:
        """At start: every ``sending`` reply that is on its platform becomes
        ``published``. Those not found stay ``sending`` for their redelivered request."""
        announced = []
        for row in await self.ledger.sending():
            platform = self.platforms.get(PlatformName(row.platform))
            if platform is None:
                continue
            try:
                found = await _find(platform, row)
            except PublishError as exc:
                log.warning("could not reconcile reply %s now: %s", row.reply_id, exc.message)
                continue
            if found is not None:
                done = await self._published(row, found, platform, reconciled=True)
                assert isinstance(done.message, ReplyPublished)
                announced.append(done.message)
        return announced

    # -- speakers.paused -----------------------------------------------------------------

    async def pause(self, event: SpeakerPaused) -> bool:
        """Record a pause or resume of a person; False when an as recent or newer
        decision is in force (a late or repeated command changes nothing)."""
        applied = await self.ledger.record_pause(event)
        action = "pause" if event.paused else "resume"
        metrics.SPEAKER_PAUSES.labels(action, "applied" if applied else "ignored").inc()
        log.info(
            "%s of %s by %s at %s %s",
            action,
            event.speaker_ref,
            event.decided_by,
            event.at.isoformat(),
            "recorded" if applied else "ignored: an as recent or newer decision is in force",
        )
        return applied

    # -- consent.withdrawn -------------------------------------------------------------

    async def withdraw(self, event: ConsentWithdrawn) -> Outcome:
        """Take down every published reply the withdrawal covers; record each."""
        if await self.ledger.record_withdrawal(event):
            log.info(
                "consent of %s withdrawn by %s (questions: %s)",
                event.speaker_ref,
                event.withdrawn_by,
                ", ".join(event.question_ids) or "all",
            )
        withdrawal = domain.WithdrawalFact(event.at, event.withdrawn_by, event.reason)
        featuring = await self.ledger.published_featuring(
            event.speaker_ref, event.question_ids, event.answer_id
        )
        for row in featuring:
            if event.at < row.consent_at:
                continue  # consent given again after this withdrawal
            platform = await self._take_down_platform(row)
            if platform is None:
                continue
            try:
                await self._take_down_or_record(row, platform, withdrawal)
            except RateLimited as exc:
                metrics.RATE_LIMIT_PAUSES.labels(row.platform).inc()
                return Retry(max(exc.reset_at, self.clock()), exc.message)
            except RetryableError as exc:
                return Retry(self.clock() + self.settings.reply_retry_initial_s, exc.message)
        return Done()

    async def take_down_withdrawn(self) -> int:
        """Take down every published reply whose consent was withdrawn after it was
        given; how many came down.

        The sweep behind the two paths above: a take-down that failed after a late
        publish, or a publisher killed between publishing and taking down (the
        withdrawal event was committed before the reply existed, so it never comes
        again). A platform still failing is tried at the next sweep.
        """
        done = 0
        for row, withdrawal in await self.ledger.still_up_after_withdrawal():
            platform = await self._take_down_platform(row)
            if platform is None:
                continue
            try:
                if await self._take_down_or_record(row, platform, withdrawal):
                    done += 1
            except (RateLimited, RetryableError) as exc:
                log.warning(
                    "reply %s (%s post %s) must come down: %s; trying again at the next sweep",
                    row.reply_id,
                    row.platform,
                    row.post_id,
                    exc.message,
                )
        return done

    async def _take_down_platform(self, row: Reply) -> Platform | None:
        """The platform to take ``row`` down on; None, recorded as a ``withdrawal``
        error for people to act on (the sweep then leaves it), when this publisher
        has no such platform configured."""
        platform = self.platforms.get(PlatformName(row.platform))
        if platform is None:
            log.error(
                "reply %s must come down but %s is not configured", row.reply_id, row.platform
            )
            await self.ledger.record_decision(
                row.reply_id,
                rule="withdrawal",
                verdict="error",
                reason=f"{row.platform} is not configured on this publisher",
            )
        return platform

    async def _take_down_or_record(
        self, row: Reply, platform: Platform, withdrawal: domain.WithdrawalFact
    ) -> bool:
        """Take the reply down; True when done. A final refusal is recorded (for
        people to act on) and gives False; a retryable error is raised."""
        try:
            await self._take_down(row, platform, withdrawal)
        except FinalError as exc:
            metrics.WITHDRAWALS.labels(row.platform, "error").inc()
            await self.ledger.record_decision(
                row.reply_id, rule="withdrawal", verdict="error", reason=describe_final(exc)
            )
            log.error(  # noqa: TRY400 - the platform's message is the story
                "could not take down reply %s (%s post %s): %s",
                row.reply_id,
                row.platform,
                row.post_id,
                exc.message,
            )
            return False
        return True

    async def _take_down(
        self, row: Reply, platform: Platform, withdrawal: domain.WithdrawalFact
    ) -> None:
        assert row.post_id is not None
        deleted = await platform.delete_post(row.post_id)
        what = "deleted" if deleted else "already gone"
        await self.ledger.mark_withdrawn(
            row.reply_id,
            reason=f"consent of {row.speaker_ref} withdrawn by {withdrawal.withdrawn_by}: "
            f"{row.platform} post {row.post_id} {what}",
        )
        metrics.WITHDRAWALS.labels(row.platform, "deleted" if deleted else "already_gone").inc()
        log.info("reply %s withdrawn: %s post %s %s", row.reply_id, row.platform, row.post_id, what)

    # -- mentions.raw --------------------------------------------------------------------

    async def observe_mention(self, mention: MentionReceived) -> None:
        """Record how the mention engaged the campaign, and an opt-out if it is one."""
        how = domain.engagement(
            mention.text, self.settings.campaign_handles, self.settings.campaign_hashtags
        )
        if mention.summoned:  # named or quoted the account (ingest read the entities)
            how |= {domain.ACCOUNT}
        if mention.source is Source.X_STREAM and self.spend is not None:
            # X bills every post the stream reads, once: not per delivery of the mention.
            await self.spend.record(CallClass.POST_READ, item=mention.id)
        platform = mention.platform.value
        if how:
            await self.ledger.record_engagement(
                mention.id,
                platform=platform,
                author_id=mention.author.id,
                how=how,
                at=mention.created_at,
            )
        if not domain.is_opt_out(mention.text):
            return
        addressed = domain.ACCOUNT in how or (
            mention.in_reply_to is not None
            and await self.ledger.is_our_post(platform, mention.in_reply_to)
        )
        if not addressed:
            return
        added = await self.ledger.add_opt_out(
            platform,
            mention.author.id,
            source="reply",
            handle=mention.author.handle,
            reason=mention.text[:200],
            mention_id=mention.id,
        )
        if added:
            metrics.OPT_OUTS.labels("reply").inc()
            log.info("%s author %s opted out (%s)", platform, mention.author.id, mention.id)
