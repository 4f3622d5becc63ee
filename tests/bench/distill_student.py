"""What a shallower encoder would lose: distil the committed classifier into fewer layers.

    python -m tests.bench.distill_student [--keep-base 2] [--epochs 6] [--data-dir DIR]

Issue 22's ratio targets need about 1.2x (unique text) and 1.6-2x (with repeats)
the classifier's speed, and the packed path with layers cut runs 1.19x / 1.40x /
1.73x at 5 / 4 / 3 layers (``services/triage/README.md``). This measures the
other side: the quality such a student keeps.

The student is the base model's embeddings and first ``--keep-base`` layers
(frozen, as in the committed model), then copies of the committed model's two
fine-tuned layers (4 and 5), trained to give the committed model's final token
states (masked MSE) and its head logits (MSE, through the committed heads, which
stay frozen: the calibration and thresholds are the committed ones). No labels
are used: the texts are the training corpus's (``train.training_corpus``) and the
Davidson rows of its train part that training leaves out, never a validation set.

Prints the headline metrics of the teacher and the student on the validation
sets through the same cached path, their differences (issue 22 allows 0.005),
the share of decisions that differ per task, and the embedding cosine, for the
student as initialised (layers cut, nothing trained) and after each epoch.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer

from services.triage.classifier import artefacts
from services.triage.classifier.data import MISSING, data_dir, load_davidson
from services.triage.classifier.features import HiddenStates, cached_states
from services.triage.classifier.metrics import binary_report, headline, sigmoid
from services.triage.classifier.model import (
    TASKS,
    Heads,
    attention_mask_4d,
    file_sha256,
    mean_pool,
)
from services.triage.classifier.train import (
    CACHE_DIR,
    MAX_LENGTH,
    N_LAYERS,
    Batches,
    _parse_args,
    length_batches,
    padded,
    resolve,
    training_corpus,
)

log = logging.getLogger(__name__)

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class Student(nn.Module):
    """The trained top layers on the frozen base's states after ``keep_base`` layers."""

    def __init__(self, top: nn.ModuleList) -> None:
        super().__init__()
        self.top = top

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn = attention_mask_4d(mask)
        for layer in self.top:
            out = layer(hidden, attention_mask=attn)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden


def committed_heads(directory: Path) -> Heads:
    meta = artefacts.load_metadata(directory)
    if meta.head_layers != [N_LAYERS]:
        raise SystemExit(f"{directory}: heads read layers {meta.head_layers}, not the last one")
    heads = Heads(width=meta.head_width, n_layers=1)
    prefix = artefacts.HEADS_PREFIX
    weights = artefacts.load_weights(directory)
    heads.load_state_dict({k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)})
    heads.eval()
    for p in heads.parameters():
        p.requires_grad_(False)
    return heads


def outputs(
    student: Student | None,
    heads: Heads,
    *,
    states: HiddenStates,
    data: Batches,
    keep_base: int,
    batch_size: int = 128,
) -> tuple[FloatArray, torch.Tensor]:
    """(logits [n, tasks], mean-pooled final states [n, hidden]) of ``data`` in order:
    the teacher's from the cache when ``student`` is None."""
    lengths = states.lengths()[data.rows]
    order = torch.argsort(lengths)
    logits = torch.zeros(len(data.rows), len(TASKS))
    pooled = torch.zeros(len(data.rows), heads.attention.in_features)
    if student is not None:
        student.eval()
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            sel = order[b : b + batch_size]
            if student is None:
                final, mask = padded(states, N_LAYERS, data.rows[sel])
            else:
                hidden, mask = padded(states, keep_base, data.rows[sel])
                final = student(hidden, mask)
            logits[sel] = heads([final], mask, data.features[sel])
            pooled[sel] = mean_pool(final, mask)
    return logits.double().numpy(), pooled


def compare(
    student: Student | None,
    heads: Heads,
    *,
    states: HiddenStates,
    val: dict[str, Batches],
    calibration: dict[str, artefacts.TaskCalibration],
    keep_base: int,
    teacher: dict[str, tuple[FloatArray, torch.Tensor]],
) -> dict[str, Any]:
    """Headlines of ``student`` (the teacher's if None), decision flips against the
    teacher's per task, and the embedding cosine to the teacher's."""
    sets: dict[str, Any] = {}
    flips = {task: [0, 0] for task in TASKS}
    cosines = []
    for name, data in val.items():
        logits, pooled = outputs(student, heads, states=states, data=data, keep_base=keep_base)
        t_logits, t_pooled = teacher[name]
        cosines.append(nn.functional.cosine_similarity(pooled, t_pooled, dim=-1))
        for k, task in enumerate(TASKS):
            cal = calibration[task]

            def prob(x: FloatArray, cal: artefacts.TaskCalibration = cal) -> FloatArray:
                return sigmoid(x / cal.temperature - cal.shift)

            pred = prob(logits[:, k]) >= cal.threshold
            t_pred = prob(t_logits[:, k]) >= cal.threshold
            flips[task][0] += int((pred != t_pred).sum())
            flips[task][1] += len(pred)
            has = data.labels[:, k].numpy() != MISSING
            if has.sum() == 0 or (name == "olid" and task == "hate"):
                continue
            y = data.labels[has, k].numpy().astype(np.int64)
            report = binary_report(y, prob(logits[has, k]), cal.threshold)
            sets[f"{name}/{task}"] = report.as_dict()
    cos = torch.cat(cosines)
    return {
        "headline": headline(sets),
        "flips": {t: round(n / max(1, total), 4) for t, (n, total) in flips.items()},
        "cosine": {"mean": float(cos.mean()), "p05": float(torch.quantile(cos, 0.05))},
    }


def report(label: str, result: dict[str, Any], reference: dict[str, Any]) -> None:
    print(f"\n{label}")
    for name, value in result["headline"].items():
        delta = value - reference["headline"][name]
        mark = "" if abs(delta) <= 0.005 else "   OUTSIDE 0.005"
        print(f"  {name:32s} {value:.4f}  ({delta:+.4f}){mark}")
    print(f"  decisions differing from the teacher's: {json.dumps(result['flips'])}")
    print(f"  embedding cosine to the teacher's: {json.dumps(result['cosine'])}")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--keep-base", type=int, default=2, choices=range(1, 4))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--logit-weight", type=float, default=0.1)
    parser.add_argument(
        "--cosine-weight",
        type=float,
        default=0.0,
        help="weight of 1 - cos(mean-pooled student, teacher): the served embedding",
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)

    from services.triage.classifier.transformer import default_base_path  # noqa: PLC0415

    base_path = default_base_path()
    base_sha = file_sha256(base_path / "model.safetensors")
    root = data_dir(args.data_dir)
    corpus = training_corpus(_parse_args([]), root, args.seed)
    extra, _ = load_davidson(root, seed=args.seed, train_per_class=(10**6, 10**6, 10**6))
    seen = {e.text for e in corpus.train}
    train_examples = [*corpus.train, *(e for e in extra if e.text not in seen)]
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    teacher_model = AutoModel.from_pretrained(str(base_path)).eval()
    _, body_layers, weights_sha = artefacts.with_body(teacher_model, artefacts.ARTEFACT_DIR)
    if body_layers != [4, 5]:
        raise SystemExit(f"the committed model replaces layers {body_layers}, not [4, 5]")
    states = cached_states(
        teacher_model,
        tokenizer,
        [*dict.fromkeys([e.text for e in train_examples] + corpus.all_texts())],
        sorted({args.keep_base, N_LAYERS}),
        base_sha256=f"{base_sha}-body-{weights_sha[:16]}",
        max_length=MAX_LENGTH,
        cache_dir=CACHE_DIR,
    )
    heads = committed_heads(artefacts.ARTEFACT_DIR)
    calibration = artefacts.load_metadata(artefacts.ARTEFACT_DIR).tasks
    layers: Any = teacher_model.encoder.layer
    student = Student(nn.ModuleList(copy.deepcopy(layers[i]) for i in (4, 5)))
    val = {name: resolve(examples, states) for name, examples in corpus.val.items()}
    teacher = {
        name: outputs(None, heads, states=states, data=data, keep_base=args.keep_base)
        for name, data in val.items()
    }
    common: dict[str, Any] = {
        "states": states,
        "val": val,
        "calibration": calibration,
        "keep_base": args.keep_base,
        "teacher": teacher,
    }
    reference = compare(None, heads, **common)
    depth = args.keep_base + 2
    print(f"teacher (committed, {N_LAYERS} layers) {json.dumps(reference['headline'])}")
    result = compare(student, heads, **common)
    report(
        f"student, {depth} layers, untrained (layers 4-5 on layer {args.keep_base})",
        result,
        reference,
    )

    train_data = resolve(
        train_examples, states, {e.source: (1.0, 1.0, 1.0) for e in train_examples}
    )
    lengths = states.lengths()[train_data.rows]
    optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr, weight_decay=0.01)
    steps = args.epochs * ((len(train_data.rows) + args.batch_size - 1) // args.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / (steps // 20 + 1), max(0.0, (steps - s) / steps))
    )
    log.info("distilling on %d texts, %d steps", len(train_data.rows), steps)
    for epoch in range(args.epochs):
        student.train()
        started = time.monotonic()
        for batch in length_batches(lengths, args.batch_size, rng):
            sel = torch.tensor(batch)
            rows = train_data.rows[sel]
            hidden, mask = padded(states, args.keep_base, rows)
            target, _ = padded(states, N_LAYERS, rows)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                final = student(hidden, mask)
            final = final.float()
            m = mask.unsqueeze(-1).float()
            state_loss = (((final - target) ** 2) * m).sum() / (m.sum() * final.shape[-1])
            features = train_data.features[sel]
            with torch.no_grad():
                t_logits = heads([target], mask, features)
            logit_loss = ((heads([final], mask, features) - t_logits) ** 2).mean()
            cos = nn.functional.cosine_similarity(
                mean_pool(final, mask), mean_pool(target.float(), mask), dim=-1
            )
            loss = (
                state_loss
                + args.logit_weight * logit_loss
                + args.cosine_weight * (1.0 - cos).mean()
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
        log.info(
            "epoch %d in %.0f s (last loss: states %.4f, logits %.4f)",
            epoch + 1,
            time.monotonic() - started,
            state_loss.item(),
            logit_loss.item(),
        )
        result = compare(student, heads, **common)
        report(f"student, {depth} layers, epoch {epoch + 1}", result, reference)
    return 0


if __name__ == "__main__":
    sys.exit(main())
