"""Measure the committed classifier on the validation sets, end to end.

    python -m services.triage.classifier.evaluate [--data-dir DIR] [--artefacts DIR]
        [--min-offensive F] [--min-hate F] [--min-question F] [--min-davidson-hate F]
        [--throughput N] [--precision auto|fp32|bf16|int8] [--json PATH]

Loads the artefacts through :class:`TransformerClassifier` (exactly what the
worker runs, fp16 weights included), prints per-set reports and exits 1 when
a headline metric is below its floor. ``--throughput N`` also times
``classify`` on N validation tweets against the plain base model's batched
forward pass on the same batches.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from services.triage.classifier import artefacts
from services.triage.classifier.base import PRECISIONS
from services.triage.classifier.data import MISSING, Example, data_dir, load_corpus
from services.triage.classifier.metrics import binary_report
from services.triage.classifier.model import TASKS
from services.triage.classifier.transformer import (
    TransformerClassifier,
    default_base_path,
    precision_context,
    with_precision,
)

log = logging.getLogger(__name__)

#: (headline name, val set, task, metric) -> metric is "macro" or "positive".
HEADLINES = {
    "offensive": ("olid", "offensive", "macro"),
    "hate": ("hateval", "hate", "macro"),
    "question": ("dailydialog", "question", "positive"),
    "davidson_hate": ("davidson", "hate", "macro"),
    "davidson_offensive": ("davidson", "offensive", "macro"),
}


def evaluate(classifier: TransformerClassifier, val: dict[str, list[Example]]) -> dict[str, Any]:
    thresholds = classifier.thresholds
    sets: dict[str, Any] = {}
    for name, examples in val.items():
        started = time.monotonic()
        preds = classifier.classify([e.text for e in examples])
        log.info("%s: %d texts in %.1f s", name, len(examples), time.monotonic() - started)
        for task in TASKS:
            pairs = [
                (getattr(e, task), getattr(p, task))
                for e, p in zip(examples, preds, strict=True)
                if getattr(e, task) != MISSING
            ]
            if not pairs or (name == "olid" and task == "hate"):
                continue
            y = np.array([a for a, _ in pairs], dtype=np.int64)
            prob = np.array([b for _, b in pairs], dtype=np.float64)
            sets[f"{name}/{task}"] = binary_report(y, prob, thresholds[task]).as_dict()
    headline = {}
    for key, (name, task, kind) in HEADLINES.items():
        r = sets[f"{name}/{task}"]
        headline[key] = r["macro_f1"] if kind == "macro" else r["positive"]["f1"]
    return {"version": classifier.version, "headline": headline, "sets": sets}


def throughput(
    classifier: TransformerClassifier, texts: Sequence[str], batch_size: int
) -> dict[str, float]:
    """tweets/s of ``classify`` vs the plain base model's forward on the same batches,
    in the classifier's precision.

    The two alternate batch by batch, so load from other processes on a shared
    machine hits both alike. The plain side includes tokenisation (padded to
    the batch's longest text, as a plain batched ``model(**tokenizer(...))``).
    """
    path = default_base_path()
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    model = with_precision(AutoModel.from_pretrained(str(path)).eval(), classifier.precision)
    batches = [list(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]

    def plain(batch: list[str]) -> None:
        enc = tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with precision_context(classifier.precision):
            model(**enc)

    spent = {"plain": 0.0, "classify": 0.0}
    with torch.inference_mode():
        plain(batches[0])  # warm-up
        classifier.classify(batches[0])
        for batch in batches:
            started = time.perf_counter()
            plain(batch)
            spent["plain"] += time.perf_counter() - started
            started = time.perf_counter()
            classifier.classify(batch)
            spent["classify"] += time.perf_counter() - started
    return {
        "texts": float(len(texts)),
        "plain_forward_per_s": len(texts) / spent["plain"],
        "classify_per_s": len(texts) / spent["classify"],
        "ratio": spent["plain"] / spent["classify"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validation metrics of the committed classifier")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: TRIAGE_DATA_DIR")
    parser.add_argument("--artefacts", type=Path, default=artefacts.ARTEFACT_DIR)
    parser.add_argument("--seed", type=int, default=13, help="the training seed (data splits)")
    parser.add_argument("--min-offensive", type=float, default=0.0, help="OLID val macro-F1")
    parser.add_argument("--min-hate", type=float, default=0.0, help="HatEval val macro-F1")
    parser.add_argument("--min-question", type=float, default=0.0, help="DailyDialog F1")
    parser.add_argument("--min-davidson-hate", type=float, default=0.0, help="Davidson macro-F1")
    parser.add_argument("--throughput", type=int, default=0, help="also time N tweets")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        default="auto",
        help="as TRIAGE_PRECISION (default auto)",
    )
    parser.add_argument(
        "--runtime",
        choices=("auto", "onnx", "torch"),
        default="auto",
        help="as TRIAGE_RUNTIME (default auto, what the worker runs)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    corpus = load_corpus(data_dir(args.data_dir), seed=args.seed)
    classifier = TransformerClassifier(
        artefacts_dir=args.artefacts,
        batch_size=args.batch_size,
        precision=args.precision,
        runtime=args.runtime,
    )
    report = evaluate(classifier, corpus.val)
    if args.throughput:
        tweets = [e.text for e in [*corpus.val["olid"], *corpus.val["hateval"]]]
        tweets = (tweets * (1 + args.throughput // len(tweets)))[: args.throughput]
        report["throughput"] = throughput(classifier, tweets, args.batch_size)
        # ru_maxrss is in KiB on Linux; includes the plain model loaded for comparison.
        report["throughput"]["max_rss_mib"] = (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        )
    for key, r in report["sets"].items():
        print(
            f"{key:24s} n={r['n']:5d} thr={r['threshold']:.2f} macro-F1={r['macro_f1']:.4f} "
            f"F1+={r['positive']['f1']:.4f} P+={r['positive']['precision']:.4f} "
            f"R+={r['positive']['recall']:.4f} ECE={r['ece']:.4f}"
        )
    print(
        json.dumps(
            {
                "version": report["version"],
                "headline": report["headline"],
                **({"throughput": report["throughput"]} if "throughput" in report else {}),
            },
            indent=2,
        )
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    floors = {
        "offensive": args.min_offensive,
        "hate": args.min_hate,
        "question": args.min_question,
        "davidson_hate": args.min_davidson_hate,
    }
    failed = {k: (report["headline"][k], v) for k, v in floors.items() if report["headline"][k] < v}
    for key, (got, floor) in failed.items():
        log.error("%s = %.4f is below the floor %.4f", key, got, floor)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
