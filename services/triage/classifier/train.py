"""Train the classifier's top layers and heads; write the committed artefacts.

    python -m services.triage.classifier.train [--data-dir DIR] [--out DIR]
        [--epochs N] [--seed N] [--top-layers K] [--bf16] [--int8]

1. Load every data set (:mod:`.data`), deterministic splits from ``--seed``.
2. Run the frozen base model once per text and cache the hidden states the
   trained layers start from, plus layers 4, 5 and 6 (:mod:`.features`,
   ``var/train/cache``, about 2.5-3.5 GB; a rerun with the same data skips
   this pass, ~4 min on 2 idle cores, several times that on busy shared ones).
3. Train (multi-task BCE, missing labels masked). ``--top-layers 2``
   (default, what is committed): fine-tune copies of the top 2 layers and the
   heads, with an embedding-preservation loss (1 - cos to the base's
   mean-pooled embedding; the committed model keeps cosine 0.997 on average).
   ``--top-layers 1`` likewise with one layer. ``--top-layers 0``: the base
   stays frozen and the heads read a learned mix of layers 4-6, so the
   embedding is exactly the base model's. Measured on 2 idle cores: heads only
   ~58 steps/s (6 epochs in 2 min), top 1 ~9 steps/s, top 2 ~5.7 steps/s
   (6 epochs in 20 min); several times slower when the cores are shared.
   ``--bf16``: mixed precision (bf16 matmuls under autocast, fp32 weights and
   optimizer), for CPUs with a bf16 unit: all 6 layers train at ~5 steps/s.
   ``--int8`` (heads only): the states come from the base with dynamic int8
   linear layers, and the artefacts are marked to run so.
4. Fit a temperature per task on validation logits, pick decision thresholds,
   and write ``weights.safetensors`` (fp16), ``metadata.json``,
   ``metrics.json`` and ``MODEL_CARD.md`` into ``--out``.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

from services.triage.classifier import artefacts, card, shortcut
from services.triage.classifier.augment import augmented_split
from services.triage.classifier.data import MISSING, Corpus, Example, data_dir, load_corpus
from services.triage.classifier.features import HiddenStates, cached_states
from services.triage.classifier.metrics import (
    best_threshold,
    binary_report,
    fit_temperature,
    headline,
    robust_threshold,
    sigmoid,
)
from services.triage.classifier.model import (
    TASKS,
    Heads,
    attention_mask_4d,
    file_sha256,
    head_state,
    mean_pool,
    restore_head,
    text_features,
)

log = logging.getLogger(__name__)

N_LAYERS = 6
MAX_LENGTH = 128
CACHE_DIR = artefacts.ARTEFACT_DIR.parents[2] / "var" / "train" / "cache"

#: Loss weight per (source, task): Davidson is a second, noisier source; the
#: question labels on tweets are the weak heuristic negatives (see data.py).
SOURCE_WEIGHTS: dict[str, tuple[float, float, float]] = {
    "olid": (1.0, 1.0, 0.3),
    "hateval": (1.0, 1.0, 0.3),
    "davidson": (0.5, 0.5, 0.3),
    "dailydialog": (0.3, 0.3, 1.0),
    "dailydialog-noqmark": (0.3, 0.3, 1.0),
    # The repository's counterfactual templates (augment.py): few rows, so weighted up.
    "augment": (2.0, 2.0, 0.0),
    # The moderators' labels (campaign.py; weighted by Config.campaign_weight).
    "campaign": (3.0, 3.0, 0.0),
}


@dataclass(frozen=True, slots=True)
class Config:
    epochs: int = 6
    seed: int = 13
    top_layers: int = 2
    batch_size: int = 32
    lr_layers: float = 4e-5
    lr_heads: float = 1e-3
    weight_decay: float = 0.01
    embedding_weight: float = 5.0
    head_width: int = 256
    #: Mixed precision: the trained layers' matmuls in bf16 (autocast), weights and
    #: optimizer in fp32. Only worth it on CPUs with a bf16 unit.
    bf16: bool = False
    #: Heads only (top_layers 0) reading the final layer alone, as a fine-tuned model's
    #: heads do (to continue from them); else a frozen base's heads mix layers 4-6.
    final_layer_heads: bool = False
    #: Keep the question (offensive) head of the model the heads start from exactly as
    #: it was (restored after each epoch; its data then only calibrates it).
    keep_question: bool = False
    keep_offensive: bool = False
    #: Loss weight of the counterfactual templates (hate; offensive too unless
    #: augment_offensive_weight is set): few rows, weighted up.
    augment_weight: float = 2.0
    augment_offensive_weight: float | None = None
    #: Loss weight of the campaign's own labels (the moderators'; :mod:`.campaign`).
    campaign_weight: float = 3.0

    def source_weights(self) -> dict[str, tuple[float, float, float]]:
        """SOURCE_WEIGHTS with the templates' weights of this configuration."""
        offensive = self.augment_offensive_weight
        hate = self.augment_weight
        campaign = self.campaign_weight
        return {
            **SOURCE_WEIGHTS,
            "augment": (hate if offensive is None else offensive, hate, 0.0),
            "campaign": (campaign, campaign, 0.0),
        }

    @property
    def head_layers(self) -> list[int]:
        """Hidden-state indices the heads read: layers 4-6 of a frozen base, else the top."""
        if self.top_layers == 0 and not self.final_layer_heads:
            return [4, 5, 6]
        return [N_LAYERS]


DEFAULTS = Config()


@dataclass(frozen=True, slots=True)
class Batches:
    """Examples resolved to rows of the cached states."""

    rows: torch.Tensor  # int64 [n] index into HiddenStates
    labels: torch.Tensor  # float32 [n, tasks], MISSING where absent
    weights: torch.Tensor  # float32 [n, tasks]
    features: torch.Tensor  # float32 [n, N_TEXT_FEATURES]


def resolve(
    examples: Sequence[Example],
    states: HiddenStates,
    source_weights: dict[str, tuple[float, float, float]] = SOURCE_WEIGHTS,
) -> Batches:
    index = states.index()
    rows = torch.tensor([index[e.text] for e in examples], dtype=torch.int64)
    labels = torch.tensor(
        [[e.offensive, e.hate, e.question] for e in examples], dtype=torch.float32
    )
    weights = torch.tensor([source_weights[e.source] for e in examples], dtype=torch.float32)
    weights = weights * (labels != MISSING).float()
    return Batches(rows, labels, weights, text_features([e.text for e in examples]))


def padded(
    states: HiddenStates, layer: int, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack the cached states of ``rows`` into [B, T, H] float32 and a [B, T] mask."""
    lengths = states.lengths()[rows]
    t = int(lengths.max())
    flat = states.layers[layer]
    out = torch.zeros(len(rows), t, flat.shape[1], dtype=torch.float32)
    mask = torch.zeros(len(rows), t, dtype=torch.int64)
    for b, (r, n) in enumerate(zip(rows.tolist(), lengths.tolist(), strict=True)):
        start = int(states.offsets[r])
        out[b, :n] = flat[start : start + n].float()
        mask[b, :n] = 1
    return out, mask


class Student(nn.Module):
    """Fine-tuned top layers (possibly none) + heads, run on cached states.

    ``inputs``: with top layers, the states entering them; without, the
    states of every layer the heads read (the last one is the final layer).
    """

    def __init__(self, top: nn.ModuleList, heads: Heads) -> None:
        super().__init__()
        self.top = top
        self.heads = heads

    def forward(
        self, inputs: list[torch.Tensor], mask: torch.Tensor, features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if len(self.top):
            hidden = inputs[0]
            attn = attention_mask_4d(mask)
            for layer in self.top:
                out = layer(hidden, attention_mask=attn)
                hidden = out[0] if isinstance(out, tuple) else out
            inputs = [hidden]
        return self.heads(inputs, mask, features), mean_pool(inputs[-1], mask)


def student_inputs(
    states: HiddenStates, config: Config, rows: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """(student inputs, mask, teacher final states) for ``rows`` of the cache."""
    layers = [N_LAYERS - config.top_layers] if config.top_layers else config.head_layers
    padded_layers = [padded(states, layer, rows) for layer in layers]
    mask = padded_layers[0][1]
    inputs = [p[0] for p in padded_layers]
    teacher = inputs[-1] if not config.top_layers else padded(states, N_LAYERS, rows)[0]
    return inputs, mask, teacher


def length_batches(lengths: torch.Tensor, batch_size: int, rng: random.Random) -> list[list[int]]:
    """Batches of similar length (less padding), in a shuffled order."""
    noisy = [(int(n) + rng.random() * 4, i) for i, n in enumerate(lengths.tolist())]
    order = [i for _, i in sorted(noisy)]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def predict(
    student: Student, states: HiddenStates, data: Batches, config: Config, batch_size: int = 128
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]:
    """(logits [n, tasks], cosine to the base embedding [n]) for ``data``, in order."""
    student.eval()
    lengths = states.lengths()[data.rows]
    order = torch.argsort(lengths)
    logits = torch.zeros(len(data.rows), len(TASKS))
    cos = torch.zeros(len(data.rows))
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            sel = order[b : b + batch_size]
            inputs, mask, teacher = student_inputs(states, config, data.rows[sel])
            out, emb = student(inputs, mask, data.features[sel])
            logits[sel] = out
            cos[sel] = nn.functional.cosine_similarity(emb, mean_pool(teacher, mask), dim=-1)
    return logits.double().numpy(), cos.double().numpy()


def load_init(student: Student, directory: Path, start_layer: int) -> None:
    """Start from earlier artefacts (fine-tuned layers and heads) instead of the base.

    Their replaced layers and head layout must match the configuration.
    """
    meta = artefacts.load_metadata(directory)
    wanted = list(range(start_layer, N_LAYERS))
    if student.top and meta.replaced_layers != wanted:
        raise SystemExit(f"--init-from {directory}: layers {meta.replaced_layers} != {wanted}")
    state = {k: v.float() for k, v in artefacts.load_weights(directory).items()}
    for offset, layer in enumerate(student.top):
        prefix = f"encoder.layer.{start_layer + offset}."
        layer.load_state_dict(
            {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        )
    prefix = artefacts.HEADS_PREFIX
    student.heads.load_state_dict(
        {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    )
    log.info("initialised from %s (%s)", directory, meta.version)


def train(
    config: Config,
    corpus: Corpus,
    states: HiddenStates,
    base: nn.Module,
    *,
    init_from: Path | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
) -> tuple[Student, dict[str, Batches]]:
    """Train ``config.epochs`` epochs; ``on_epoch(done, total)`` after each."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)  # noqa: S311 - batch order, not security
    start_layer = N_LAYERS - config.top_layers
    encoder_layers: nn.ModuleList = base.encoder.layer  # type: ignore[union-attr,assignment]
    top = nn.ModuleList(copy.deepcopy(encoder_layers[i]) for i in range(start_layer, N_LAYERS))
    student = Student(top, Heads(width=config.head_width, n_layers=len(config.head_layers)))
    if init_from is not None:
        load_init(student, init_from, start_layer)
    keep = [t for t in TASKS if getattr(config, f"keep_{t}", False)]
    kept = {t: head_state(student.heads, t) for t in keep}
    train_data = resolve(corpus.train, states, config.source_weights())
    val_data = {name: resolve(examples, states) for name, examples in corpus.val.items()}
    optimizer = torch.optim.AdamW(
        [
            {"params": student.top.parameters(), "lr": config.lr_layers},
            {"params": student.heads.parameters(), "lr": config.lr_heads},
        ],
        weight_decay=config.weight_decay,
    )
    lengths = states.lengths()[train_data.rows]
    steps_per_epoch = (len(train_data.rows) + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    warmup = max(1, total // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))),
    )
    bce = nn.BCEWithLogitsLoss(reduction="none")
    step = 0
    for epoch in range(config.epochs):
        student.train()
        started = time.monotonic()
        running = [0.0, 0.0]
        for batch in length_batches(lengths, config.batch_size, rng):
            sel = torch.tensor(batch)
            rows = train_data.rows[sel]
            inputs, mask, teacher = student_inputs(states, config, rows)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                logits, emb = student(inputs, mask, train_data.features[sel])
            logits, emb = logits.float(), emb.float()
            labels = train_data.labels[sel].clamp(min=0.0)
            w = train_data.weights[sel]
            task_loss = (bce(logits, labels) * w).sum() / w.sum().clamp(min=1.0)
            cos = nn.functional.cosine_similarity(emb, mean_pool(teacher, mask), dim=-1)
            emb_loss = (1.0 - cos).mean()
            loss = task_loss + config.embedding_weight * emb_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            running[0] += task_loss.item()
            running[1] += emb_loss.item()
            if step % 100 == 0:
                log.info(
                    "epoch %d step %d/%d task loss %.4f emb loss %.5f (%.1f steps/s)",
                    epoch + 1,
                    step,
                    total,
                    running[0] / 100,
                    running[1] / 100,
                    (step - epoch * steps_per_epoch) / (time.monotonic() - started),
                )
                running = [0.0, 0.0]
        for task, state in kept.items():
            restore_head(student.heads, task, state)
        _end_of_epoch(
            epoch + 1, student, states=states, val_data=val_data, config=config, on_epoch=on_epoch
        )
    return student, val_data


def _end_of_epoch(
    done: int,
    student: Student,
    *,
    states: HiddenStates,
    val_data: dict[str, Batches],
    config: Config,
    on_epoch: Callable[[int, int], None] | None,
) -> None:
    summary = evaluate_cached(student, states, val_data, config, calibration=None)
    log.info("epoch %d val: %s", done, json.dumps(summary["headline"]))
    if on_epoch is not None:
        on_epoch(done, config.epochs)


def _reports(
    y: np.ndarray[Any, np.dtype[np.int64]],
    logits: np.ndarray[Any, np.dtype[np.float64]],
    cal: artefacts.TaskCalibration,
) -> dict[str, Any]:
    return binary_report(y, sigmoid(logits / cal.temperature - cal.shift), cal.threshold).as_dict()


def evaluate_cached(
    student: Student,
    states: HiddenStates,
    val_data: dict[str, Batches],
    config: Config,
    calibration: dict[str, artefacts.TaskCalibration] | None,
) -> dict[str, Any]:
    """Val reports per (set, task) with labels, from the cached states."""
    cal = calibration or {t: artefacts.TaskCalibration() for t in TASKS}
    out: dict[str, Any] = {"sets": {}, "embedding_cosine": {}}
    for name, data in val_data.items():
        logits, cos = predict(student, states, data, config)
        out["embedding_cosine"][name] = {
            "mean": float(cos.mean()),
            "p05": float(np.quantile(cos, 0.05)),
        }
        for k, task in enumerate(TASKS):
            has = data.labels[:, k].numpy() != MISSING
            if has.sum() == 0 or (name == "olid" and task == "hate"):
                continue
            y = data.labels[has, k].numpy().astype(np.int64)
            out["sets"][f"{name}/{task}"] = _reports(y, logits[has, k], cal[task])
    out["headline"] = headline(out["sets"])
    return out


def calibrate(
    student: Student, states: HiddenStates, val_data: dict[str, Batches], config: Config
) -> dict[str, artefacts.TaskCalibration]:
    """Temperatures (NLL) and thresholds per task on the validation sets, the
    threshold folded into the score (:func:`folded`).

    offensive: OLID val. hate: the temperature on HatEval val and Davidson
    held-out together, the threshold best for the worst of them and the
    held-out counterfactual templates (``augment``)
    (:func:`robust_threshold`: HatEval's val->test shift makes a threshold
    tuned on HatEval alone a liability). question: DailyDialog held-out dialogues.
    """

    def collect(names: Sequence[str], k: int) -> tuple[Any, Any]:
        ys, ls = [], []
        for name in names:
            data = val_data[name]
            logits, _ = predict(student, states, data, config)
            has = data.labels[:, k].numpy() != MISSING
            ys.append(data.labels[has, k].numpy().astype(np.int64))
            ls.append(logits[has, k])
        return np.concatenate(ys), np.concatenate(ls)

    result = {}
    y, logit = collect(["olid"], 0)
    t = fit_temperature(y, logit)
    result["offensive"] = folded(t, best_threshold(y, sigmoid(logit / t), macro=True))
    y, logit = collect(["hateval", "davidson"], 1)
    t = fit_temperature(y, logit)
    names = [n for n in ("hateval", "davidson", "augment") if n in val_data]
    per_set = [collect([name], 1) for name in names]
    result["hate"] = folded(t, robust_threshold([(y, sigmoid(logit / t)) for y, logit in per_set]))
    y, logit = collect(["dailydialog"], 2)
    t = fit_temperature(y, logit)
    result["question"] = folded(t, best_threshold(y, sigmoid(logit / t), macro=False))
    return result


def folded(temperature: float, threshold: float) -> artefacts.TaskCalibration:
    """The calibration with the chosen threshold folded in: score 0.5 is the threshold."""
    shift = float(np.log(threshold / (1.0 - threshold)))
    return artefacts.TaskCalibration(temperature=temperature, threshold=0.5, shift=shift)


def export_state(student: Student, start_layer: int) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for offset, layer in enumerate(student.top):
        for key, value in layer.state_dict().items():
            state[f"encoder.layer.{start_layer + offset}.{key}"] = value
    for key, value in student.heads.state_dict().items():
        state[f"{artefacts.HEADS_PREFIX}{key}"] = value
    return state


def training_corpus(args: argparse.Namespace, root: Path, seed: int) -> Corpus:
    """The public data, the counterfactual templates unless ``--no-augment``,
    without the question-only data with ``--keep-question``, every k-th with ``--limit``."""
    corpus = load_corpus(root, seed=seed)
    train = list(corpus.train)
    val = dict(corpus.val)
    if not args.no_augment:
        augment_train, augment_val = augmented_split()
        train += augment_train
        val["augment"] = augment_val
    if args.keep_question:
        train = [e for e in train if not e.source.startswith("dailydialog")]
    if args.limit:
        train = train[:: max(1, len(train) // args.limit)]
        val = {k: v[:: max(1, 4 * len(v) // args.limit)] for k, v in val.items()}
    return Corpus(train=train, val=val)


def _training_summary(
    args: argparse.Namespace, config: Config, corpus: Corpus, root: Path
) -> dict[str, Any]:
    baseline = load_corpus(root, seed=config.seed, civil_negatives=False)
    return {
        "config": {k: getattr(config, k) for k in Config.__dataclass_fields__},
        "shortcut": {
            "public data, implied labels only": shortcut.measure(baseline.train),
            "as trained": shortcut.measure(corpus.train),
        },
        "source_weights": config.source_weights(),
        "data": _data_summary(corpus),
        "data_dir_layout": "TweetEval offensive+hate train/val, Davidson, DailyDialog validation",
        "augment": not args.no_augment,
        "init_from": (artefacts.load_metadata(args.init_from).version if args.init_from else None),
        "body_from": (artefacts.load_metadata(args.body_from).version if args.body_from else None),
        "torch": torch.__version__,
    }


def _data_summary(corpus: Corpus) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for e in corpus.train:
        counts[e.source] = counts.get(e.source, 0) + 1
    return {"train": counts, "val": {k: len(v) for k, v in corpus.val.items()}}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, default=None, help="default: TRIAGE_DATA_DIR")
    parser.add_argument("--out", type=Path, default=artefacts.ARTEFACT_DIR)
    parser.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    parser.add_argument(
        "--top-layers",
        type=int,
        default=None,
        choices=range(N_LAYERS + 1),
        help=f"layers to fine-tune (default {DEFAULTS.top_layers}; 0 with --int8)",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        default=None,
        help="continue from these artefacts' layers and heads (e.g. the committed model)",
    )
    parser.add_argument(
        "--body-from",
        type=Path,
        default=None,
        help="heads only (--top-layers 0) on the fine-tuned layers of these artefacts, "
        "kept as they are (the served embedding does not move)",
    )
    parser.add_argument(
        "--keep-question",
        action="store_true",
        help="with --init-from: keep its question head as it is and train without the "
        "question-only data (DailyDialog train)",
    )
    parser.add_argument(
        "--keep-offensive",
        action="store_true",
        help="with --init-from: keep its offensive head as it is (it still calibrates on OLID)",
    )
    parser.add_argument("--augment-weight", type=float, default=DEFAULTS.augment_weight)
    parser.add_argument(
        "--augment-offensive-weight",
        type=float,
        default=None,
        help="the templates' weight on the offensive task (default: --augment-weight)",
    )
    parser.add_argument("--lr-layers", type=float, default=DEFAULTS.lr_layers)
    parser.add_argument("--lr-heads", type=float, default=DEFAULTS.lr_heads)
    parser.add_argument("--embedding-weight", type=float, default=DEFAULTS.embedding_weight)
    parser.add_argument(
        "--int8",
        action="store_true",
        help="train the heads on the states of the int8 base (what the worker then runs)",
    )
    parser.add_argument(
        "--bf16", action="store_true", help="mixed-precision training (CPUs with a bf16 unit)"
    )
    parser.add_argument(
        "--no-augment",
        action="store_true",
        help="without the counterfactual templates (augment.py): the shortcut baseline",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("TRIAGE_TRAIN_THREADS", "2")),
        help="torch threads (default TRIAGE_TRAIN_THREADS or 2; 1 is much faster on busy cores)",
    )
    parser.add_argument(
        "--limit", type=int, default=0, help="smoke test: every k-th example, about this many"
    )
    return parser


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.top_layers is None:
        args.top_layers = 0 if args.int8 else DEFAULTS.top_layers
    if args.int8 and args.top_layers:
        parser.error("--int8 trains heads only: use it with --top-layers 0")
    if args.body_from is not None and (args.top_layers or args.int8):
        parser.error("--body-from trains heads only: --top-layers 0, without --int8")
    if (args.keep_question or args.keep_offensive) and args.init_from is None:
        parser.error("--keep-question and --keep-offensive need --init-from (the head to keep)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(args.threads)
    config = Config(
        epochs=args.epochs,
        seed=args.seed,
        top_layers=args.top_layers,
        embedding_weight=args.embedding_weight,
        lr_layers=args.lr_layers,
        lr_heads=args.lr_heads,
        bf16=args.bf16,
        final_layer_heads=args.body_from is not None and args.init_from is not None,
        keep_question=args.keep_question,
        keep_offensive=args.keep_offensive,
        augment_weight=args.augment_weight,
        augment_offensive_weight=args.augment_offensive_weight,
    )
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)

    from services.triage.classifier.transformer import (  # noqa: PLC0415
        default_base_path,
        quantize_int8,
    )

    base_path = default_base_path()
    base_sha = file_sha256(base_path / "model.safetensors")
    root = data_dir(args.data_dir)
    log.info("data from %s; base model %s (sha256 %s)", root, base_path, base_sha[:12])
    corpus = training_corpus(args, root, config.seed)
    log.info("data: %s", json.dumps(_data_summary(corpus)))
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    base = AutoModel.from_pretrained(str(base_path)).eval()
    start_layer = N_LAYERS - config.top_layers
    body: dict[str, torch.Tensor] = {}
    body_layers: list[int] = []
    states_sha = f"{base_sha}-int8" if args.int8 else base_sha
    if args.body_from is not None:
        body, body_layers, weights_sha = artefacts.with_body(base, args.body_from)
        states_sha = f"{base_sha}-body-{weights_sha[:16]}"
    states = cached_states(
        quantize_int8(base) if args.int8 else base,
        tokenizer,
        corpus.all_texts(),
        sorted({4, 5, start_layer, N_LAYERS}),
        base_sha256=states_sha,
        max_length=MAX_LENGTH,
        cache_dir=CACHE_DIR,
        groups=[
            *([e.text for e in corpus.train if e.source == source] for source in SOURCE_WEIGHTS),
            *([e.text for e in examples] for examples in corpus.val.values()),
        ],
    )
    started = time.monotonic()
    student, val_data = train(config, corpus, states, base, init_from=args.init_from)
    log.info("trained in %.0f s", time.monotonic() - started)
    calibration = calibrate(student, states, val_data, config)
    report = evaluate_cached(student, states, val_data, config, calibration)
    log.info("calibrated val: %s", json.dumps(report["headline"]))

    state = {**body, **export_state(student, start_layer)}
    kind = f"top{config.top_layers}" if config.top_layers else "frozen-mix456"
    if body_layers:
        kind = f"top{len(body_layers)}body-heads"
    kind += "-int8" if args.int8 else ""
    version = f"minilm-l6-{kind}-{dt.datetime.now(dt.UTC):%Y.%m.%d}"
    training = _training_summary(args, config, corpus, root)
    weights_sha = artefacts.save_weights(args.out, state, version)
    metadata = artefacts.Metadata(
        version=version,
        base_model_id=artefacts.BASE_MODEL_ID,
        base_model_sha256=base_sha,
        replaced_layers=body_layers or list(range(start_layer, N_LAYERS)),
        max_length=MAX_LENGTH,
        head_width=config.head_width,
        head_layers=config.head_layers,
        weights_sha256=weights_sha,
        tasks=calibration,
        quantized=args.int8,
        training=training,
    )
    artefacts.save_metadata(args.out, metadata)
    metrics = {"version": version, "cached_val": report}
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    card_path = args.out / "MODEL_CARD.md"
    notes = card.notes_of(card_path)
    card_path.write_text(card.render(metadata, report, notes), encoding="utf-8")
    log.info("wrote %s", ", ".join(sorted(p.name for p in args.out.iterdir())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
