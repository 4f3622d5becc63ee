"""Measure the identity-term shortcut in the training data.

    python -m services.triage.classifier.shortcut [--data-dir DIR] [--no-augment]

For each group term (immigrants, refugees, women, ...) and each source: how
many training examples name it, and the share labelled offensive / hate,
against the base rate over all examples with that label. A term whose share
is far above the base rate in every source that names it is a shortcut the
model can learn instead of the attack ("names immigrants => offensive").
The numbers go into the model card (``make train`` records them).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from services.triage.classifier.data import MISSING, Example, data_dir, load_corpus

#: Group terms measured (regular expressions on the normalised, lower-cased text).
TERMS: dict[str, str] = {
    "immigrants/migrants": r"\b(?:im)?migrants?\b|\bimmigration\b",
    "refugees": r"\brefugees?\b",
    "illegals/aliens": r"\billegals?\b|\baliens?\b",
    "muslims/islam": r"\bmuslims?\b|\bislam\w*",
    "women": r"\bwom[ae]n\b|\bgirls?\b",
    "black": r"\bblacks?\b",
    "gay": r"\bgays?\b|\blesbians?\b",
    "jews": r"\bjews?\b|\bjewish\b",
}


def _share(examples: Sequence[Example], task: str) -> dict[str, Any]:
    labelled = [getattr(e, task) for e in examples if getattr(e, task) != MISSING]
    n = len(labelled)
    return {"n": n, "positive": (sum(labelled) / n) if n else None}


def measure(train: Sequence[Example]) -> dict[str, Any]:
    """Base rates and per-term, per-source label shares for ``offensive`` and ``hate``."""
    sources = sorted({e.source for e in train})
    out: dict[str, Any] = {
        "base": {task: _share(train, task) for task in ("offensive", "hate")},
        "terms": {},
    }
    for name, pattern in TERMS.items():
        rx = re.compile(pattern, re.IGNORECASE)
        named = [e for e in train if rx.search(e.text)]
        out["terms"][name] = {
            "all": {task: _share(named, task) for task in ("offensive", "hate")},
            "sources": {
                source: {
                    task: _share([e for e in named if e.source == source], task)
                    for task in ("offensive", "hate")
                }
                for source in sources
                if any(e.source == source for e in named)
            },
        }
    return out


def table(measured: dict[str, Any], task: str = "offensive") -> str:
    """A Markdown table: share labelled ``task`` among examples naming each term."""

    def cell(share: dict[str, Any]) -> str:
        if not share["n"]:
            return "—"
        return f"{share['positive']:.1%} of {share['n']}"

    base = measured["base"][task]
    sources = sorted({s for t in measured["terms"].values() for s in t["sources"]})
    lines = [
        f"| term | all sources ({task} base rate {cell(base)}) | " + " | ".join(sources) + " |",
        "|---|---|" + "---|" * len(sources),
    ]
    for name, t in measured["terms"].items():
        per = [cell(t["sources"][s][task]) if s in t["sources"] else "—" for s in sources]
        lines.append(f"| {name} | {cell(t['all'][task])} | " + " | ".join(per) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--no-civil-negatives", action="store_true", help="the old HatEval labels")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    corpus = load_corpus(
        data_dir(args.data_dir), seed=args.seed, civil_negatives=not args.no_civil_negatives
    )
    train = list(corpus.train)
    if not args.no_augment:
        from services.triage.classifier.augment import augmented_examples  # noqa: PLC0415

        train += augmented_examples()
    measured = measure(train)
    if args.json:
        print(json.dumps(measured, indent=2))
    else:
        print(table(measured, "offensive"))
        print()
        print(table(measured, "hate"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
