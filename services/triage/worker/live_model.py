"""The live model, followed between batches: when the registry's pointer
(:mod:`services.triage.classifier.registry`) names another version, its artefact
folder is loaded off the event loop and used from the next batch on, without a
restart. A version that fails to load is logged and the running model stays."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from services.triage.classifier.base import Classifier
from services.triage.classifier.registry import Registry
from services.triage.worker import metrics

log = logging.getLogger(__name__)

#: Builds a classifier from an artefact folder (the composition root's loader: whatever
#: runtime it uses, the swap is at the level of "which folder is live").
Loader = Callable[[Path], Classifier]


class LiveModel:
    """Which artefact folder is live, and the classifier loaded from it."""

    def __init__(self, registry: Registry, load: Loader, current: Classifier) -> None:
        self.registry = registry
        self.load = load
        self.classifier = current
        live = registry.live()
        self.directory = live.directory
        self._stamp = live.stamp

    async def refresh(self) -> Classifier | None:
        """The newly live classifier when the pointer moved and its folder loads; else None."""
        stamp = self.registry.stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        live = self.registry.live()
        if live.directory == self.directory:
            return None
        try:
            fresh = await asyncio.to_thread(self.load, live.directory)
        except Exception:
            log.exception(
                "model %s did not load; %s stays live", live.version, self.classifier.version
            )
            metrics.MODEL_SWAPS.labels("failed").inc()
            return None
        log.info("model %s -> %s (%s)", self.classifier.version, fresh.version, live.directory)
        metrics.MODEL_SWAPS.labels("ok").inc()
        self.classifier, self.directory = fresh, live.directory
        return fresh
