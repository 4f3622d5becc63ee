"""Retrain the heads on the public data plus the campaign's own labels, and measure
the candidate beside the live model on the same texts (what :mod:`.gate` judges).

Heads only, on the live model's body (its fine-tuned layers kept as they are):
the served embedding does not move, the text states come from one frozen
forward pass and are cached (``cache_dir``, default ``var/train/cache``, keyed by
the texts and the body), and a retrain is minutes on one thread. The question head and its
calibration are kept (the moderators' labels say little about questions: an
approval is only ever a positive).

The labels are split by time: the most recent ``holdout_share`` (at least
``min_holdout``) are held back and never trained on (the gate's campaign
slice); of the rest every ``1 / calibration_share``-th (by a hash of the text)
calibrates the thresholds, the others train. The public data is a fixed
sample (``public_per_source`` per source, ``val_per_set`` per validation set),
so each retrain costs the same whatever the data folder holds.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

from services.triage.classifier import artefacts, train
from services.triage.classifier.data import MISSING, Corpus, Example, load_corpus, normalise_text
from services.triage.classifier.features import cached_states
from services.triage.classifier.metrics import (
    best_threshold,
    binary_report,
    fit_temperature,
    robust_threshold,
    sigmoid,
)
from services.triage.classifier.model import TASKS, Heads, file_sha256

log = logging.getLogger(__name__)

#: The standard validation sets a retrain measures (the question head is kept).
PUBLIC_VAL = ("olid", "hateval", "davidson")
#: Public training sources a retrain samples (DailyDialog only teaches questions).
PUBLIC_TRAIN = ("olid", "hateval", "davidson")
_CAMPAIGN_SUFFIX = re.compile(r"-campaign-\d{8}T\d{6}$")

Progress = Callable[[str, float], None]


@dataclass(frozen=True, slots=True)
class CampaignLabel:
    """One moderated text: 1, 0 or :data:`MISSING` per task, and when it was labelled."""

    text: str
    at: datetime
    offensive: int = MISSING
    hate: int = MISSING
    question: int = MISSING
    id: str = ""


@dataclass(frozen=True, slots=True)
class RetrainConfig:
    epochs: int = 4
    seed: int = 13
    public_per_source: int = 1500
    val_per_set: int = 800
    holdout_share: float = 0.2
    min_holdout: int = 20
    calibration_share: float = 0.15
    campaign_weight: float = 3.0
    #: Train and calibrate on the campaign labels shuffled among themselves (the held-back
    #: slice keeps its true labels): a candidate that must be refused (the gate's control).
    shuffle_labels: bool = False


@dataclass(frozen=True, slots=True)
class Split:
    train: list[CampaignLabel]
    calibration: list[CampaignLabel]
    holdout: list[CampaignLabel]


def split_labels(labels: Sequence[CampaignLabel], config: RetrainConfig) -> Split:
    """The most recent labels held back; of the rest a calibration slice by hash."""
    ordered = sorted(labels, key=lambda label: (label.at, label.id))
    n_hold = min(len(ordered), max(config.min_holdout, round(config.holdout_share * len(ordered))))
    rest, holdout = ordered[: len(ordered) - n_hold], ordered[len(ordered) - n_hold :]
    every = max(2, round(1 / config.calibration_share)) if config.calibration_share else 0

    def calibrates(label: CampaignLabel) -> bool:
        digest = hashlib.sha256(label.text.encode()).digest()
        return bool(every) and int.from_bytes(digest[:4], "big") % every == 0

    return Split(
        train=[x for x in rest if not calibrates(x)],
        calibration=[x for x in rest if calibrates(x)],
        holdout=holdout,
    )


def as_examples(labels: Sequence[CampaignLabel], source: str) -> list[Example]:
    """The labels as training examples (hate implies offensive, as in the public data)."""
    out = []
    for label in labels:
        offensive = 1 if label.hate == 1 and label.offensive == MISSING else label.offensive
        out.append(
            Example(
                text=normalise_text(label.text),
                source=source,
                split=source,
                offensive=offensive,
                hate=label.hate,
                question=label.question,
            )
        )
    return out


def shuffled(examples: list[Example], seed: int) -> list[Example]:
    """The same texts with the label rows permuted among them (wrong labels)."""
    rows = [(e.offensive, e.hate, e.question) for e in examples]
    random.Random(seed).shuffle(rows)  # noqa: S311 - a deliberate wrong-label control
    return [
        replace(e, offensive=o, hate=h, question=q)
        for e, (o, h, q) in zip(examples, rows, strict=True)
    ]


def public_corpus(root: Path, config: RetrainConfig) -> Corpus:
    """A fixed sample of the public training data and validation sets."""
    corpus = load_corpus(root, seed=config.seed)
    train_rows: list[Example] = []
    for source in PUBLIC_TRAIN:
        rows = [e for e in corpus.train if e.source == source]
        train_rows += rows[:: max(1, len(rows) // max(1, config.public_per_source))]
    val = {}
    for name in PUBLIC_VAL:
        rows = corpus.val[name]
        val[name] = rows[:: max(1, len(rows) // max(1, config.val_per_set))]
    return Corpus(train=train_rows, val=val)


def body_digest(body: dict[str, torch.Tensor]) -> str:
    """sha256 of the fine-tuned layers alone: every retrain keeps them, so the text states
    of one body are computed once, whichever heads a version has."""
    digest = hashlib.sha256()
    for key in sorted(body):
        digest.update(key.encode())
        digest.update(body[key].to(torch.float16).contiguous().numpy().tobytes())
    return digest.hexdigest()


def candidate_version(live_version: str, now: datetime) -> str:
    return f"{_CAMPAIGN_SUFFIX.sub('', live_version)}-campaign-{now:%Y%m%dT%H%M%S}"


def _heads_from(directory: Path, meta: artefacts.Metadata) -> train.Student:
    heads = Heads(width=meta.head_width, n_layers=len(meta.head_layers))
    state = artefacts.load_weights(directory)
    prefix = artefacts.HEADS_PREFIX
    heads.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return train.Student(nn.ModuleList(), heads)


def _labelled(data: train.Batches, task: int) -> np.ndarray[Any, np.dtype[np.bool_]]:
    mask: np.ndarray[Any, np.dtype[np.bool_]] = data.labels[:, task].numpy() != MISSING
    return mask


def _two_classes(y: np.ndarray[Any, Any]) -> bool:
    return bool(len(y)) and 0 < int(y.sum()) < len(y)


def calibrate(
    student: train.Student,
    states: Any,
    sets: dict[str, train.Batches],
    config: train.Config,
    keep: dict[str, artefacts.TaskCalibration],
) -> dict[str, artefacts.TaskCalibration]:
    """Temperature and threshold for offensive and hate on the public validation sets
    and the campaign's calibration slice (the threshold best for the worst of them);
    the question head's calibration as kept."""
    logits = {name: train.predict(student, states, data, config)[0] for name, data in sets.items()}
    result = dict(keep)
    for task, names in (
        ("offensive", ("olid", "campaign")),
        ("hate", ("hateval", "davidson", "campaign")),
    ):
        k = TASKS.index(task)
        per_set = []
        for name in names:
            if name not in sets:
                continue
            has = _labelled(sets[name], k)
            y = sets[name].labels[has, k].numpy().astype(np.int64)
            if _two_classes(y):
                per_set.append((y, logits[name][has, k]))
        if not per_set:
            continue
        t = fit_temperature(
            np.concatenate([y for y, _ in per_set]), np.concatenate([lg for _, lg in per_set])
        )
        probs = [(y, sigmoid(lg / t)) for y, lg in per_set]
        threshold = (
            robust_threshold(probs) if len(probs) > 1 else best_threshold(*probs[0], macro=True)
        )
        result[task] = train.folded(t, threshold)
    return result


def measure(
    student: train.Student,
    states: Any,
    sets: dict[str, train.Batches],
    holdout: train.Batches | None,
    *,
    config: train.Config,
    calibration: dict[str, artefacts.TaskCalibration],
) -> dict[str, Any]:
    """Reports on the public validation sets (with their headline) and on the held-back
    campaign slice (macro-F1 per task with both classes, and their mean)."""
    report = train.evaluate_cached(student, states, sets, config, calibration)
    report.pop("embedding_cosine", None)
    held: dict[str, Any] = {"n": 0, "tasks": {}}
    if holdout is not None:
        logits, _ = train.predict(student, states, holdout, config)
        held["n"] = len(holdout.rows)
        for task in ("offensive", "hate"):
            k = TASKS.index(task)
            has = _labelled(holdout, k)
            y = holdout.labels[has, k].numpy().astype(np.int64)
            if _two_classes(y):
                cal = calibration[task]
                prob = sigmoid(logits[has, k] / cal.temperature - cal.shift)
                held["tasks"][task] = binary_report(y, prob, cal.threshold).as_dict()
    scores = [r["macro_f1"] for r in held["tasks"].values()]
    held["macro_f1"] = float(np.mean(scores)) if scores else None
    report["holdout"] = held
    return report


def retrain(
    live_dir: Path,
    labels: Sequence[CampaignLabel],
    data_root: Path,
    out_dir: Path,
    *,
    config: RetrainConfig = RetrainConfig(),
    progress: Progress = lambda stage, done: None,
    now: datetime | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Train a candidate into ``out_dir`` (artefacts the classifier loads, ``metrics.json``);
    returns ``{"version", "live", "candidate", "labels"}`` (the measurements of both)."""
    from services.triage.classifier.transformer import default_base_path  # noqa: PLC0415

    now = now or datetime.now(UTC)
    torch.manual_seed(config.seed)
    live_meta = artefacts.load_metadata(live_dir)
    split = split_labels(labels, config)
    progress("loading data", 0.02)
    public = public_corpus(root=data_root, config=config)
    campaign_train = as_examples(split.train, "campaign")
    calibrating = as_examples(split.calibration, "campaign")
    if config.shuffle_labels:  # everything the candidate learns from is wrong
        campaign_train = shuffled(campaign_train, config.seed)
        calibrating = shuffled(calibrating, config.seed)
    val = dict(public.val)
    if calibrating:
        val["campaign"] = calibrating
    holdout = as_examples(split.holdout, "campaign")
    corpus = Corpus(train=[*public.train, *campaign_train], val=val)

    base_path = default_base_path()
    base_sha = file_sha256(base_path / "model.safetensors")
    if base_sha != live_meta.base_model_sha256:
        raise artefacts.BaseModelMismatch(f"{live_meta.version} was trained on another base")
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    base = AutoModel.from_pretrained(str(base_path)).eval()
    body, body_layers, _ = artefacts.with_body(base, live_dir)
    progress("text states", 0.1)
    texts = [*corpus.all_texts(), *(e.text for e in holdout)]
    states = cached_states(
        base,
        tokenizer,
        texts,
        [train.N_LAYERS],
        base_sha256=f"{base_sha}-body-{body_digest(body)[:16]}",
        max_length=live_meta.max_length,
        cache_dir=cache_dir or train.CACHE_DIR,
        groups=[
            *([e.text for e in public.train if e.source == s] for s in PUBLIC_TRAIN),
            *([e.text for e in rows] for rows in public.val.values()),
        ],
    )
    tconfig = train.Config(
        epochs=config.epochs,
        seed=config.seed,
        top_layers=0,
        final_layer_heads=True,
        keep_question=True,
        head_width=live_meta.head_width,
        campaign_weight=config.campaign_weight,
    )
    progress("training", 0.4)
    student, val_data = train.train(
        tconfig,
        corpus,
        states,
        base,
        init_from=live_dir,
        on_epoch=lambda done, total: progress("training", 0.4 + 0.4 * done / total),
    )
    progress("measuring", 0.85)
    calibration = calibrate(student, states, val_data, tconfig, dict(live_meta.tasks))
    public_sets = {name: val_data[name] for name in PUBLIC_VAL}
    held = train.resolve(holdout, states) if holdout else None
    live = _heads_from(live_dir, live_meta)
    version = candidate_version(live_meta.version, now)
    result = {
        "version": version,
        "live_version": live_meta.version,
        "live": measure(
            live, states, public_sets, held, config=tconfig, calibration=dict(live_meta.tasks)
        ),
        "candidate": measure(
            student, states, public_sets, held, config=tconfig, calibration=calibration
        ),
        "labels": {
            "total": len(labels),
            "train": len(split.train),
            "calibration": len(split.calibration),
            "holdout": len(split.holdout),
            "holdout_since": split.holdout[0].at.isoformat() if split.holdout else None,
            "shuffled": config.shuffle_labels,
        },
    }
    state = {**body, **train.export_state(student, 0)}
    weights = artefacts.save_weights(out_dir, state, version)
    artefacts.save_metadata(
        out_dir,
        replace(
            live_meta,
            version=version,
            replaced_layers=body_layers,
            weights_sha256=weights,
            tasks=calibration,
            training={
                "retrained_from": live_meta.version,
                "config": {k: getattr(config, k) for k in RetrainConfig.__dataclass_fields__},
                "labels": result["labels"],
                "public": {k: len(v) for k, v in public.val.items()} | {"train": len(public.train)},
                "at": now.isoformat(),
            },
        ),
    )
    progress("written", 0.95)
    return result
