"""Train the multilingual heads (``make train`` runs it after the English path).

    python -m services.triage.classifier.multitrain [--data-dir DIR] [--seed N]
        [--out DIR] [--cache PATH] [--threads 1] [--version V]

Embeds every training and validation text once with multilingual-e5-small
(:class:`~.encoders.E5Encoder`, ``query:`` prefix) through the on-disk cache
(:mod:`.embedcache`, ``var/multilingual/e5-cache.sqlite``), fits one small MLP
head per task (``offensive``, ``hate``, ``question``; class-balanced,
labels that a source does not give are left out) on the e5 embedding plus four
question features (two question marks, two grammar cues:
:func:`.multilingual.question_features`; the grammar cues for the question head
only), chooses each task's decision point on validation data and folds it into
the score (per language where a language has its own validation data), and
writes ``services/triage/model-multilingual``
(``heads.safetensors``, ``metadata.json``; then ``metrics.json`` from
:mod:`.multieval`). Data: :mod:`.multidata`. The English artefacts in
``services/triage/model`` are not touched.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from services.triage.classifier import multidata as md
from services.triage.classifier.augment import augmented_validation, campaign_texts
from services.triage.classifier.data import MISSING, VAL, Example, data_dir
from services.triage.classifier.embedcache import EmbeddingCache
from services.triage.classifier.encoders import E5Encoder, TextEncoder
from services.triage.classifier.metrics import best_threshold, binary_report, sigmoid
from services.triage.classifier.multilingual import (
    MULTI_DIR,
    N_FEATURES,
    TASKS,
    Heads,
    MultiCalibration,
    MultiMetadata,
    question_features,
    save,
)

log = logging.getLogger(__name__)

CACHE = Path(__file__).resolve().parents[3] / "var" / "multilingual" / "e5-cache.sqlite"
#: The heads: hidden width, epochs, dropout, AdamW weight decay, batch size — chosen
#: on the validation sets (GermEval own split, DailyDialog stripped, the held-out
#: templates); against logistic heads on the same inputs +0.5-1 point macro-F1 on
#: GermEval and +10 on the templates' hate.
HIDDEN = 128
EPOCHS = 20
DROPOUT = 0.3
WEIGHT_DECAY = 1e-3
BATCH = 128
#: Weight of the project's own multilingual texts against one public example.
OWN_WEIGHT = 3.0
#: Weight of a German GermEval tweet (German offensive is the path's main job).
GERMEVAL_WEIGHT = 2.0
#: The last input features (an opening interrogative, yes/no grammar) only the
#: question head reads.
GRAMMAR_FEATURES = 2
#: Decision points are searched on this grid (folded into the scores).
GRID = np.arange(0.20, 0.8001, 0.05)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Matrix:
    """Texts, their inputs (e5 embedding + features), languages and labels [n, tasks]."""

    texts: list[str]
    inputs: npt.NDArray[np.float32]
    langs: list[str]
    labels: npt.NDArray[np.int64]
    weights: FloatArray


def as_matrix(
    examples: Sequence[md.LangExample], embed: EmbeddingCache, *, own_weight: float = OWN_WEIGHT
) -> Matrix:
    texts = [le.example.text for le in examples]
    rows = embed.embed(texts) if texts else np.zeros((0, E5Encoder.dim), dtype=np.float32)
    inputs = np.concatenate(
        [rows, question_features(texts, [le.lang for le in examples])], axis=1
    ).astype(np.float32)
    labels = np.array(
        [[getattr(le.example, t) for t in TASKS] for le in examples], dtype=np.int64
    ).reshape(len(examples), len(TASKS))
    weights = np.array(
        [
            own_weight
            if le.example.source.startswith("own-")
            else GERMEVAL_WEIGHT
            if le.example.source == "germeval"
            else 1.0
            for le in examples
        ],
        dtype=np.float64,
    )
    return Matrix(texts, inputs, [le.lang for le in examples], labels, weights)


def fit_mlp(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    weights: FloatArray,
    *,
    seed: int,
) -> tuple[FloatArray, FloatArray, FloatArray, float]:
    """One class-balanced, weighted MLP head (AdamW, dropout; torch, one thread):
    ``(w1 [H, D], b1 [H], w2 [H], b2)`` on the inputs as given."""
    import torch  # noqa: PLC0415 - training only

    torch.manual_seed(seed)
    pos = float((weights * (y == 1)).sum())
    neg = float((weights * (y == 0)).sum())
    balanced = np.where(y == 1, weights / max(pos, 1e-9), weights / max(neg, 1e-9))
    balanced = balanced / balanced.mean()
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    wt = torch.tensor(balanced, dtype=torch.float32)
    first = torch.nn.Linear(x.shape[1], HIDDEN)
    last = torch.nn.Linear(HIDDEN, 1)
    net = torch.nn.Sequential(
        torch.nn.Dropout(DROPOUT),
        first,
        torch.nn.GELU(approximate="tanh"),
        torch.nn.Dropout(DROPOUT),
        last,
    )
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=WEIGHT_DECAY)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(EPOCHS):
        order = torch.randperm(len(xt), generator=generator)
        for start in range(0, len(xt), BATCH):
            i = order[start : start + BATCH]
            logits = net(xt[i]).squeeze(-1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt[i], weight=wt[i])
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    return (
        first.weight.detach().double().numpy(),
        first.bias.detach().double().numpy(),
        last.weight.detach().double().numpy()[0],
        float(last.bias.detach()[0]),
    )


def train_heads(train: Matrix, *, seed: int = 0) -> Heads:
    """One MLP head per task on the rows that task has a label for (the question
    head alone reads the :data:`GRAMMAR_FEATURES`). The e5 part of
    the input is standardised (training rows' mean and spread: e5's embeddings all
    share a large common direction) and the standardisation folded into ``w1``."""
    dim = train.inputs.shape[1] - N_FEATURES
    x_width = train.inputs.shape[1]
    mean = np.zeros(train.inputs.shape[1])
    scale = np.ones(train.inputs.shape[1])
    mean[:dim] = train.inputs[:, :dim].mean(axis=0)
    scale[:dim] = train.inputs[:, :dim].std(axis=0) + 1e-6
    # The grammar features on the e5 part's scale: left 0/1 (spread ~0.3) beside
    # ~400 unit-spread inputs, the head hardly used them.
    grammar = slice(x_width - GRAMMAR_FEATURES, x_width)
    mean[grammar] = train.inputs[:, grammar].mean(axis=0)
    scale[grammar] = train.inputs[:, grammar].std(axis=0) + 1e-6
    x = ((train.inputs - mean) / scale).astype(np.float32)
    t = len(TASKS)
    w1 = np.zeros((t, HIDDEN, x.shape[1]), dtype=np.float32)
    b1 = np.zeros((t, HIDDEN), dtype=np.float32)
    w2 = np.zeros((t, HIDDEN), dtype=np.float32)
    b2 = np.zeros(t, dtype=np.float32)
    for k, task in enumerate(TASKS):
        has = train.labels[:, k] != MISSING
        if len(set(train.labels[has, k].tolist())) < 2:
            raise ValueError(f"{task}: training data needs both classes")
        # The grammar features are the question head's alone: the other heads are
        # fitted without them (their weights there stay 0), as before they existed.
        width = x.shape[1] if task == "question" else x.shape[1] - GRAMMAR_FEATURES
        a = np.zeros((HIDDEN, x.shape[1]))
        a[:, :width], c, w, d = fit_mlp(
            x[has, :width], train.labels[has, k], train.weights[has], seed=seed + k
        )
        w1[k] = a / scale  # (x - mean) / scale @ a.T == x @ (a / scale).T - (a / scale) @ mean
        b1[k] = c - (a / scale) @ mean
        w2[k], b2[k] = w, d
    return Heads(w1, b1, w2, b2)


def logits_of(heads: Heads, m: Matrix) -> FloatArray:
    n = heads.input_dim - N_FEATURES
    return heads.logits(m.inputs[:, :n], m.inputs[:, n:])


def shift_for(y: npt.NDArray[np.int64], logits: FloatArray) -> float:
    """``logit(threshold)`` of the macro-F1-best threshold on the coarse grid."""
    threshold = best_threshold(y, sigmoid(logits), macro=True, grid=GRID)
    return float(np.log(threshold / (1.0 - threshold)))


def labelled(m: Matrix, task: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    k = TASKS.index(task)
    has = m.labels[:, k] != MISSING
    return m.labels[has, k], has


def calibrate(heads: Heads, val: dict[str, Matrix]) -> dict[str, MultiCalibration]:
    """Decision points (temperature 1):

    - offensive: German on the own GermEval validation split (also the default
      for every other language of the path: the only non-English offensive
      validation data), English on OLID val (used only if English is routed here);
    - hate: the held-out counterfactual templates of :mod:`.augment`;
    - question: DailyDialog held-out dialogues with the end punctuation stripped.
    """
    out: dict[str, MultiCalibration] = {}
    k = TASKS.index("offensive")
    y, has = labelled(val["germeval"], "offensive")
    de = shift_for(y, logits_of(heads, val["germeval"])[has, k])
    y, has = labelled(val["olid"], "offensive")
    en = shift_for(y, logits_of(heads, val["olid"])[has, k])
    out["offensive"] = MultiCalibration(shift=de, shifts={"de": de, "en": en})
    k = TASKS.index("hate")
    y, has = labelled(val["augment"], "hate")
    out["hate"] = MultiCalibration(shift=shift_for(y, logits_of(heads, val["augment"])[has, k]))
    k = TASKS.index("question")
    y, has = labelled(val["dailydialog-stripped"], "question")
    out["question"] = MultiCalibration(
        shift=shift_for(y, logits_of(heads, val["dailydialog-stripped"])[has, k])
    )
    return out


def validation_examples(root: Path, seed: int) -> dict[str, list[md.LangExample]]:
    _, en_val = md.english(root, seed=seed)
    _, de_val = md.load_germeval(root, seed=seed)
    stripped = [
        md.LangExample(
            Example(
                md.strip_end_punctuation(le.example.text),
                "dailydialog",
                VAL,
                question=le.example.question,
            ),
            "en",
        )
        for le in en_val["dailydialog"]
    ]
    return {
        "germeval": de_val,
        "olid": en_val["olid"],
        "augment": [md.LangExample(e, "en") for e in augmented_validation()],
        "dailydialog-stripped": [le for le in stripped if le.example.text],
    }


def training_examples(root: Path, seed: int) -> list[md.LangExample]:
    en_train, _ = md.english(root, seed=seed)
    de_train, _ = md.load_germeval(root, seed=seed)
    return md.with_stripped_questions([*en_train, *de_train, *md.own_training()], seed=seed)


def relevance_curve(embed: EmbeddingCache, val: dict[str, Matrix]) -> tuple[float, float]:
    """Centre and scale of the relevance curve in e5 space, through two anchors:
    the median best cosine to the campaign's texts of the project's own questions
    about camp life (``multilingual_train.yaml``, nine languages) scores 0.75,
    that of ordinary tweets (GermEval and OLID validation) 0.10. e5 puts every
    text at cosine 0.78-0.88 to every other, so the curve is steep; measured
    here: own questions' median 0.839, tweets' median 0.810 (95th pct 0.834)."""
    campaign = embed.embed([t for t in campaign_texts() if t.strip()])
    own = [le.example.text for le in md.own_training() if le.example.question == 1]
    on_topic = float(np.median((embed.embed(own) @ campaign.T).max(axis=1)))
    dim = campaign.shape[1]
    tweets = np.concatenate([val["germeval"].inputs[:, :dim], val["olid"].inputs[:, :dim]])
    off_topic = float(np.median((tweets @ campaign.T).max(axis=1)))
    high, low = np.log(0.75 / 0.25), np.log(0.10 / 0.90)  # logits of the two anchors
    scale = max((on_topic - off_topic) / (high - low), 0.002)
    centre = on_topic - high * scale
    return round(centre, 4), round(scale, 4)


def train_and_save(
    root: Path,
    out: Path,
    *,
    seed: int,
    cache: Path,
    encoder: TextEncoder | None = None,
    threads: int = 1,
    version: str | None = None,
) -> MultiMetadata:
    def make_encoder() -> TextEncoder:
        return encoder if encoder is not None else E5Encoder(num_threads=threads)

    name = encoder.name if encoder is not None else E5Encoder.name
    embed = EmbeddingCache(cache, name, make_encoder)
    train_examples = training_examples(root, seed)
    train = as_matrix(train_examples, embed)
    val = {
        k: as_matrix(v, embed, own_weight=1.0) for k, v in validation_examples(root, seed).items()
    }
    heads = train_heads(train, seed=seed)
    tasks = calibrate(heads, val)
    centre, scale = relevance_curve(embed, val)
    summary: dict[str, Any] = {
        "seed": seed,
        "head": {
            "hidden": HIDDEN,
            "epochs": EPOCHS,
            "dropout": DROPOUT,
            "weight_decay": WEIGHT_DECAY,
        },
        "germeval_weight": GERMEVAL_WEIGHT,
        "own_weight": OWN_WEIGHT,
        "strip_share": md.STRIP_SHARE,
        "train_examples": len(train_examples),
        "train_by_source": _count([le.example.source for le in train_examples]),
        "train_by_language": _count([le.lang for le in train_examples]),
        "validation": {k: len(v.texts) for k, v in val.items()},
        "germeval_held_out": md.GERMEVAL_HELD_OUT,
    }
    for name_, m in val.items():
        for task in TASKS:
            y, has = labelled(m, task)
            if len(set(y.tolist())) == 2:
                k = TASKS.index(task)
                cal = tasks[task]
                z = logits_of(heads, m)[has, k] / cal.temperature
                shifts = np.array([cal.shift_for(m.langs[i]) for i in np.flatnonzero(has)])
                report = binary_report(y, sigmoid(z - shifts))
                summary[f"val/{name_}/{task}/macro_f1"] = round(report.macro_f1, 4)
    stamp = datetime.now(UTC).strftime("%Y.%m.%d")
    metadata = MultiMetadata(
        version=version or f"e5-small-q4-mlp-{stamp}",
        encoder=name,
        weights_sha256="",
        tasks=tasks,
        relevance_center=centre,
        relevance_scale=scale,
        training=summary,
    )
    final = save(out, heads, metadata)
    embed.close()
    log.info("wrote %s (%s)", out, final.version)
    return final


def _count(values: Sequence[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=MULTI_DIR)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--version", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    import torch  # noqa: PLC0415

    torch.set_num_threads(1)
    meta = train_and_save(
        data_dir(args.data_dir),
        args.out,
        seed=args.seed,
        cache=args.cache,
        threads=args.threads,
        version=args.version,
    )
    for key, value in sorted(meta.training.items()):
        if key.startswith("val/"):
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
