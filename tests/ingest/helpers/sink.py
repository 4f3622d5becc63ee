"""Fakes for ingest tests: one in-memory MentionSink with the real sink's dedupe
semantics, used by the webhook, X stream and Mastodon tests alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.common.messages import MentionReceived, Source
from services.ingest.exceptions import BrokerUnavailable
from services.ingest.sink import SubmitResult


@dataclass
class FakeSink:
    """Dedupes by mention id like :class:`KafkaMentionSink`, records every call, and
    plays a broker that is down for the next ``fail_submits`` / ``fail_dead_letters``
    calls. ``expect_source`` (when set) fails the test on any other source."""

    fail_submits: int = 0
    fail_dead_letters: int = 0
    expect_source: Source | None = None
    #: submit() calls, refused ones included.
    attempts: int = 0
    accepted: list[MentionReceived] = field(default_factory=list)
    #: Every id handed to submit() that it took (duplicates included).
    submitted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    #: (error, original bytes) of each dead letter.
    dead_letters: list[tuple[str, bytes]] = field(default_factory=list)
    sources: set[Source] = field(default_factory=set)

    def _check(self, source: Source) -> None:
        if self.expect_source is not None:
            assert source is self.expect_source
        self.sources.add(source)

    async def submit(self, mentions: Sequence[MentionReceived], source: Source) -> SubmitResult:
        self.attempts += 1
        self._check(source)
        if self.fail_submits > 0:
            self.fail_submits -= 1
            raise BrokerUnavailable("Kafka did not accept the mentions: fake outage")
        result = SubmitResult()
        seen = set(self.by_id)
        for mention in mentions:
            self.submitted.append(mention.id)
            if mention.id in seen:
                self.duplicates.append(mention.id)
                result.duplicates.append(mention.id)
            else:
                seen.add(mention.id)
                self.accepted.append(mention)
                result.accepted.append(mention.id)
        return result

    async def dead_letter(self, *, source: Source, error: str, raw: bytes) -> None:
        self._check(source)
        if self.fail_dead_letters > 0:
            self.fail_dead_letters -= 1
            raise BrokerUnavailable("Kafka did not accept the dead letter: fake outage")
        self.dead_letters.append((error, raw))

    @property
    def by_id(self) -> dict[str, MentionReceived]:
        return {m.id: m for m in self.accepted}

    @property
    def ids(self) -> list[str]:
        """Native ids of the accepted mentions, in the order they were accepted."""
        return [m.native_id for m in self.accepted]
