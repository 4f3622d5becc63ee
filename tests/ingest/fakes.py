"""Fakes for ingest tests: an in-memory sink with the real sink's dedupe semantics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.common.messages import MentionReceived, Source
from services.ingest.exceptions import BrokerUnavailable
from services.ingest.sink import SubmitResult


@dataclass
class FakeSink:
    produced: list[MentionReceived] = field(default_factory=list)
    dead: list[tuple[Source, str, bytes]] = field(default_factory=list)
    #: Number of upcoming submit() calls that fail as if Kafka were down.
    fail_next: int = 0

    async def submit(self, mentions: Sequence[MentionReceived], source: Source) -> SubmitResult:
        if self.fail_next:
            self.fail_next -= 1
            raise BrokerUnavailable("Kafka did not accept the mentions: fake outage")
        result = SubmitResult()
        ids = {m.id for m in self.produced}
        for mention in mentions:
            if mention.id in ids:
                result.duplicates.append(mention.id)
            else:
                ids.add(mention.id)
                self.produced.append(mention)
                result.accepted.append(mention.id)
        return result

    async def dead_letter(self, *, source: Source, error: str, raw: bytes) -> None:
        self.dead.append((source, error, raw))
