"""Measure the committed multilingual heads per language (``make eval``).

    python -m services.triage.classifier.multieval [--dir DIR] [--data-dir DIR]
        [--seed N] [--cache PATH] [--no-english] [--json PATH]

Every head, per language, on what the shared data and the project's own sets allow:

- ``de``: offensive on the own GermEval validation split (never trained on);
- ``en``: offensive on (a seeded subsample of) OLID val for the e5 heads *and*
  the English path (fine-tuned MiniLM) on the same tweets — the measurement
  behind routing English to MiniLM; question on DailyDialog held-out dialogues
  with the end punctuation stripped;
- every language of ``questions_multilingual.yaml`` (16): question macro-F1 with
  the end punctuation stripped;
- ``ar``, ``de``, ``es``, ``fr``: the multilingual functional suite — hateful
  cases flagged, non-hateful quarantined — where the model's quarantine is
  ``hate >= rules' hate`` or ``offensive >= rules' offensive`` (without the
  rules' exemptions for on-topic or untargeted offence, which only lower the
  quarantined share: an upper bound).

Scores are the router's for each text's language (folded per-language
decision points). Embeddings come through the training cache
(:mod:`.embedcache`): a rerun embeds nothing. Writes ``metrics.json`` beside
the heads. Exit 1 when a functional target is missed (≥ 70 % flagged, ≤ 15 %
quarantined per language).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml  # type: ignore[import-untyped, unused-ignore]

from services.triage.classifier import multidata as md
from services.triage.classifier.data import VAL, Example, data_dir
from services.triage.classifier.embedcache import EmbeddingCache
from services.triage.classifier.encoders import E5Encoder
from services.triage.classifier.metrics import binary_report
from services.triage.classifier.multilingual import (
    MULTI_DIR,
    TASKS,
    Heads,
    MultiMetadata,
    calibrated,
    load_metadata,
    question_features,
)
from services.triage.classifier.multitrain import CACHE

log = logging.getLogger(__name__)

RULES = Path(__file__).resolve().parents[1] / "rules.yaml"
MIN_FLAGGED = 0.70
MAX_QUARANTINED = 0.15


def quarantine_thresholds(rules: Path = RULES) -> tuple[float, float]:
    """(hate, offensive) quarantine thresholds of the rules file."""
    q = yaml.safe_load(rules.read_text(encoding="utf-8"))["decisions"]["quarantine"]
    return float(q["hate"]), float(q["offensive"])


class Scorer:
    """The committed heads over cached e5 embeddings: [n, tasks] scores."""

    def __init__(self, directory: Path, cache: Path) -> None:
        self.metadata: MultiMetadata = load_metadata(directory)
        self.heads = Heads.load(directory)
        self.cache = EmbeddingCache(cache, self.metadata.encoder, lambda: E5Encoder(num_threads=1))

    def scores(self, texts: Sequence[str], langs: Sequence[str | None]) -> npt.NDArray[np.float64]:
        rows = self.cache.embed(list(texts))
        logits = self.heads.logits(rows, question_features(texts, langs))
        return calibrated(logits, self.metadata.tasks, list(langs))


def _macro(y: Sequence[int], scores: npt.NDArray[np.float64]) -> dict[str, Any]:
    r = binary_report(np.asarray(y, dtype=np.int64), scores)
    return {
        "n": r.n,
        "macro_f1": round(r.macro_f1, 4),
        "positive_f1": round(r.positive.f1, 4),
        "negative_f1": round(r.negative.f1, 4),
    }


def task_report(scorer: Scorer, examples: Sequence[md.LangExample], task: str) -> dict[str, Any]:
    k = TASKS.index(task)
    kept = [le for le in examples if getattr(le.example, task) in (0, 1)]
    s = scorer.scores([le.example.text for le in kept], [le.lang for le in kept])
    return _macro([getattr(le.example, task) for le in kept], s[:, k])


def suite_report(scorer: Scorer, cases: Sequence[md.SuiteCase]) -> dict[str, Any]:
    hate_at, offensive_at = quarantine_thresholds()
    out: dict[str, Any] = {}
    for lang in sorted({c.lang for c in cases}):
        mine = [c for c in cases if c.lang == lang]
        s = scorer.scores([c.text for c in mine], [lang] * len(mine))
        flagged = (s[:, TASKS.index("hate")] >= hate_at) | (
            s[:, TASKS.index("offensive")] >= offensive_at
        )
        hateful = np.array([c.hateful for c in mine])
        by_functionality: dict[str, float] = {}
        for name in sorted({c.functionality for c in mine}):
            sel = np.array([c.functionality == name for c in mine])
            by_functionality[name] = round(float(flagged[sel].mean()), 3)
        out[lang] = {
            "hateful_flagged": round(float(flagged[hateful].mean()), 3),
            "non_hateful_quarantined": round(float(flagged[~hateful].mean()), 3),
            "n_hateful": int(hateful.sum()),
            "n_non_hateful": int((~hateful).sum()),
            "hate": _macro(hateful.astype(int).tolist(), s[:, TASKS.index("hate")]),
            "flagged_by_functionality": by_functionality,
        }
    return out


def english_path_olid(examples: Sequence[md.LangExample]) -> dict[str, Any]:
    """The English path (fine-tuned MiniLM, committed heads) on the same OLID tweets."""
    from services.triage.classifier.transformer import load_classifier  # noqa: PLC0415

    classifier = load_classifier(precision="fp32")
    kept = [le for le in examples if le.example.offensive in (0, 1)]
    predictions = classifier.classify([le.example.text for le in kept])
    scores = np.array([p.offensive for p in predictions])
    return _macro([le.example.offensive for le in kept], scores)


def evaluate(
    directory: Path = MULTI_DIR,
    *,
    root: Path | None = None,
    seed: int = 13,
    cache: Path = CACHE,
    english: bool = True,
) -> dict[str, Any]:
    scorer = Scorer(directory, cache)
    root = data_dir(root)
    _, en_val = md.english(root, seed=seed)
    _, de_val = md.load_germeval(root, seed=seed)
    stripped = [
        md.LangExample(
            Example(md.strip_end_punctuation(le.example.text), "dailydialog", VAL, question=q),
            "en",
        )
        for le in en_val["dailydialog"]
        if (q := le.example.question) in (0, 1)
    ]
    questions = md.load_questions()
    # Only the end punctuation removed, as the issue words it: differs where a
    # language opens its questions with a mark (Spanish "¿").
    opened = md.load_questions(opening=False)
    opening_langs = sorted(
        {o.lang for q, o in zip(questions, opened, strict=True) if q.example.text != o.example.text}
    )
    report: dict[str, Any] = {
        "version": scorer.metadata.version,
        "de": {"germeval_val/offensive": task_report(scorer, de_val, "offensive")},
        "en": {
            "olid_val_sample/offensive (e5 heads)": task_report(
                scorer, en_val["olid"], "offensive"
            ),
            "dailydialog_val_no_end_punctuation/question": task_report(
                scorer, [le for le in stripped if le.example.text], "question"
            ),
        },
        "questions_no_end_punctuation": {
            lang: task_report(scorer, [q for q in questions if q.lang == lang], "question")
            for lang in sorted({q.lang for q in questions})
        },
        "questions_end_punctuation_only": {
            lang: task_report(scorer, [q for q in opened if q.lang == lang], "question")
            for lang in opening_langs
        },
        "functional": suite_report(scorer, md.load_suite()),
    }
    if english:
        report["en"]["olid_val_sample/offensive (English path, MiniLM)"] = english_path_olid(
            en_val["olid"]
        )
    scorer.cache.close()
    return report


def failures(report: dict[str, Any]) -> list[str]:
    out = []
    for lang, r in report["functional"].items():
        if r["hateful_flagged"] < MIN_FLAGGED:
            out.append(f"{lang}: hateful flagged {r['hateful_flagged']:.1%} < {MIN_FLAGGED:.0%}")
        if r["non_hateful_quarantined"] > MAX_QUARANTINED:
            out.append(
                f"{lang}: non-hateful quarantined {r['non_hateful_quarantined']:.1%}"
                f" > {MAX_QUARANTINED:.0%}"
            )
    return out


def table(report: dict[str, Any]) -> str:
    lines = [f"multilingual heads {report['version']}"]
    for lang in ("de", "en"):
        for name, r in report[lang].items():
            lines.append(f"  {lang}  {name:<52} macro-F1 {r['macro_f1']:.3f}  (n={r['n']})")
    for lang, r in report["questions_no_end_punctuation"].items():
        lines.append(
            f"  {lang}  {'questions, no end punctuation':<52} macro-F1 {r['macro_f1']:.3f}"
        )
    for lang, r in report["questions_end_punctuation_only"].items():
        lines.append(
            f"  {lang}  {'questions, only the end punctuation removed':<52}"
            f" macro-F1 {r['macro_f1']:.3f}"
        )
    for lang, r in report["functional"].items():
        lines.append(
            f"  {lang}  functional suite: hateful flagged {r['hateful_flagged']:.1%}"
            f" ({r['n_hateful']}), non-hateful quarantined {r['non_hateful_quarantined']:.1%}"
            f" ({r['n_non_hateful']}), hate macro-F1 {r['hate']['macro_f1']:.3f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=MULTI_DIR)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--no-english", action="store_true", help="skip the MiniLM comparison")
    parser.add_argument("--json", type=Path, default=None, help="default: DIR/metrics.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    report = evaluate(
        args.dir, root=args.data_dir, seed=args.seed, cache=args.cache, english=not args.no_english
    )
    target = args.json or args.dir / "metrics.json"
    target.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(report))
    missed = failures(report)
    for line in missed:
        print(f"MISSED {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
