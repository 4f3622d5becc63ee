"""``python -m services.triage.worker`` (also ``python -m services.triage worker``):
composition root of the stream worker — rules, model, decider, faust app."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from services.common.bootstrap import BootstrapError
from services.common.kafka import KafkaSettings
from services.common.lifecycle import die_with_parent
from services.common.logs import configure_logging
from services.triage.classifier import bridge, load_classifier
from services.triage.classifier.registry import Registry
from services.triage.classifier.thread import on_classifier_thread
from services.triage.rules import RulesError, RulesFile
from services.triage.worker.app import create_worker, ensure_worker_topics, run_worker
from services.triage.worker.config import WorkerSettings
from services.triage.worker.domain import Triage
from services.triage.worker.live_model import LiveModel
from services.triage.worker.multilingual import MultilingualEmbedder

log = logging.getLogger(__name__)

#: How long the worker keeps trying to reach Kafka at start (attempts, one a second).
STARTUP_ATTEMPTS = 120


def main(argv: Sequence[str]) -> int:
    """Build the worker from the environment and run it until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m services.triage worker")
    parser.parse_args(argv)
    configure_logging("triage-worker")
    die_with_parent()
    settings = WorkerSettings()
    kafka = KafkaSettings()
    try:
        rules = RulesFile(settings.rules_path, check_every_s=settings.rules_check_every_s)
    except RulesError as exc:
        log.error("%s", exc)  # noqa: TRY400 - the message is the whole story
        return 2
    registry = Registry(settings.models_dir)
    live = registry.live()
    # Loaded on the thread that will classify (services/triage/classifier/thread.py).
    classifier = on_classifier_thread(
        load_classifier, settings, rules.current().campaign_examples, live.directory
    )
    log.info("model %s live (%s)", classifier.version, live.directory)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(ensure_worker_topics(kafka, attempts=STARTUP_ATTEMPTS))
    except BootstrapError as exc:
        log.error("%s", exc)  # noqa: TRY400 - the message is the whole story
        loop.close()
        return 1
    decider = Triage(rules, classifier.version, campaign=classifier)
    if isinstance(classifier, MultilingualEmbedder):
        english_bridge = bridge.bridge_for(classifier)
        decider.cluster_multilingually(english_bridge)
        log.info(
            "clustering questions across languages, in the multilingual space (English %s)",
            f"bridged by {english_bridge.metadata.version}" if english_bridge else "by e5",
        )
    composed = create_worker(
        settings,
        kafka,
        classifier=classifier,
        decider=decider,
        web_bind=settings.worker_host,
        rules=rules,
        live=LiveModel(
            registry,
            lambda folder: on_classifier_thread(
                load_classifier, settings, rules.current().campaign_examples, folder
            ),
            classifier,
        ),
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
