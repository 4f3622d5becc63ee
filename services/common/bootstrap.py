"""Create the pipeline's topics at start, idempotently.

Missing topics are created with the configured partitions and retention;
existing ones are left alone (a topic with fewer partitions than configured
is reported, never altered: repartitioning moves keys and is an ops decision).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Iterable

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from services.common.kafka import KafkaSettings, make_admin
from services.common.topics import ALL_TOPICS, TopicSpec

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36


class BootstrapError(RuntimeError):
    """Topics could not be created."""


async def ensure_topics(
    settings: KafkaSettings,
    specs: Iterable[TopicSpec] = ALL_TOPICS,
    *,
    attempts: int = 30,
    delay_s: float = 1.0,
) -> list[str]:
    """Create missing topics; return the physical names that were created."""
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            return await _ensure_once(settings, list(specs))
        except (KafkaConnectionError, OSError, KafkaError) as exc:
            last = exc
            log.info("broker not ready (attempt %d/%d): %s", attempt, attempts, exc)
            await asyncio.sleep(delay_s)
    raise BootstrapError(f"could not reach Kafka at {settings.bootstrap_servers}: {last}")


async def _ensure_once(settings: KafkaSettings, specs: list[TopicSpec]) -> list[str]:
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = {settings.topic(spec.name): spec for spec in specs}
        missing = [
            NewTopic(
                name,
                settings.partitions_for(spec.name),
                settings.replication_factor,
                topic_configs={"retention.ms": str(settings.retention_ms), **spec.configs},
            )
            for name, spec in wanted.items()
            if name not in existing
        ]
        created: list[str] = []
        if missing:
            response = await admin.create_topics(missing)
            for name, code, message in _topic_errors(response):
                if code == 0:
                    created.append(name)
                elif code != TOPIC_ALREADY_EXISTS:
                    raise BootstrapError(f"creating topic {name} failed ({code}): {message}")
            log.info("created topics: %s", ", ".join(created) or "none")
        present = [name for name in wanted if name in existing]
        if present:
            await _report_partitions(admin, settings, {n: wanted[n] for n in present})
        return created
    finally:
        await admin.close()


def _topic_errors(response: object) -> list[tuple[str, int, str | None]]:
    errors = getattr(response, "topic_errors", [])
    return [(e[0], e[1], e[2] if len(e) > 2 else None) for e in errors]


async def _report_partitions(
    admin: object, settings: KafkaSettings, specs: dict[str, TopicSpec]
) -> None:
    describe = getattr(admin, "describe_topics")  # noqa: B009 - typed loosely upstream
    for info in await describe(list(specs)):
        have = len(info.get("partitions", []))
        want = settings.partitions_for(specs[info["topic"]].name)
        if have < want:
            log.warning(
                "topic %s has %d partitions, %d configured; not altering it",
                info["topic"],
                have,
                want,
            )


def main() -> int:
    """``python -m services.common.bootstrap``: create the topics (compose init step)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = KafkaSettings()
    try:
        created = asyncio.run(ensure_topics(settings))
    except BootstrapError as exc:
        log.error("%s", exc)  # noqa: TRY400 - the message is the whole story
        return 1
    log.info("%d topics created on %s", len(created), settings.bootstrap_servers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
