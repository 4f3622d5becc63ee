"""``python -m services.triage worker`` runs the stream worker (consumes
``mentions.raw``, produces ``mentions.classified`` / ``mentions.quarantined``).

Commands are looked up in :data:`COMMANDS`; each takes the remaining
arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from services.common.bootstrap import BootstrapError
from services.common.kafka import KafkaSettings
from services.common.logs import configure_logging
from services.triage.agents import create_worker, ensure_worker_topics, run_worker
from services.triage.classifier.base import Classifier
from services.triage.config import TriageSettings
from services.triage.domain import Triage
from services.triage.rules import RulesError, RulesFile

log = logging.getLogger(__name__)

#: How long the worker keeps trying to reach Kafka at start (attempts, one a second).
STARTUP_ATTEMPTS = 120


def build_classifier(settings: TriageSettings, campaign_examples: list[str]) -> Classifier:
    """The real classifier (loads the model: seconds, never at import time)."""
    from services.triage.classifier import load_classifier  # noqa: PLC0415 - heavy: torch

    return load_classifier(settings, campaign_examples)


def worker(argv: Sequence[str]) -> int:
    """Composition root of the stream worker: rules, model, decider, faust app."""
    parser = argparse.ArgumentParser(prog="python -m services.triage worker")
    parser.parse_args(argv)
    configure_logging("triage-worker")
    settings = TriageSettings()
    kafka = KafkaSettings()
    try:
        rules = RulesFile(settings.rules_path, check_every_s=settings.rules_check_every_s)
    except RulesError as exc:
        log.error("%s", exc)  # noqa: TRY400 - the message is the whole story
        return 2
    classifier = build_classifier(settings, rules.current().campaign_examples)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(ensure_worker_topics(kafka, attempts=STARTUP_ATTEMPTS))
    except BootstrapError as exc:
        log.error("%s", exc)  # noqa: TRY400 - the message is the whole story
        loop.close()
        return 1
    composed = create_worker(
        settings,
        kafka,
        classifier=classifier,
        decider=Triage(rules, classifier.version),
        web_bind=settings.worker_host,
    )
    log.info(
        "triage worker: group %s, %s, batches of %d within %.3fs, health on :%d",
        settings.worker_group,
        kafka.bootstrap_servers,
        settings.batch_size,
        settings.batch_within_s,
        settings.worker_port,
    )
    return run_worker(composed, loop)


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"worker": worker}


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.triage")
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args(argv[:1])
    return COMMANDS[args.command](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
