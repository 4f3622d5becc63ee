"""``python -m services.triage worker`` runs the stream worker (consumes
``mentions.raw``, produces ``mentions.classified`` / ``mentions.quarantined``);
``python -m services.triage web`` runs the moderator page, the team feeds and
the JSON API (consumes ``mentions.classified`` and the reply outcomes).

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
from services.triage.classifier import load_classifier
from services.triage.config import TriageSettings
from services.triage.domain import Triage
from services.triage.rules import RulesError, RulesFile

log = logging.getLogger(__name__)

#: How long the worker keeps trying to reach Kafka at start (attempts, one a second).
STARTUP_ATTEMPTS = 120


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
    classifier = load_classifier(settings, rules.current().campaign_examples)
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
        decider=Triage(rules, classifier.version, campaign=classifier),
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


def web(argv: Sequence[str]) -> int:
    """The triage web: moderator page, team feeds, JSON API, and its consumers."""
    parser = argparse.ArgumentParser(prog="python -m services.triage web")
    parser.parse_args(argv)
    configure_logging("triage-web")
    from services.common.http import run_server  # noqa: PLC0415 - web only
    from services.triage.app import create_app  # noqa: PLC0415 - web only

    settings = TriageSettings()
    run_server(create_app(settings), settings.host, settings.port)
    return 0


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"worker": worker, "web": web}


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.triage")
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args(argv[:1])
    return COMMANDS[args.command](argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
