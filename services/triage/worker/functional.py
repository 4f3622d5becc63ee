"""The functional suite, end to end through the classify CLI and the rules.

    python -m services.triage.worker.functional [--rules PATH] [--json PATH]
        [--max-non-hateful-quarantined F] [--max-immigrant-quarantined F]
        [--min-hateful-flagged F]

Expands ``services/triage/classifier/functional_suite.yaml`` (templates x
target groups), runs every case through :func:`services.triage.worker.classify.main`
(the CLI: the committed artefacts, the rules file, the decisions), and reports
per category and per target group:

- hateful cases: share *flagged* (decision quarantine, or hate >= 0.5);
- non-hateful cases: share *quarantined*.

Exits 1 when a floor is missed (the defaults are the issue's targets).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped, unused-ignore]

from services.common.logs import configure_logging
from services.triage.classifier import load_classifier
from services.triage.classifier.base import Classifier
from services.triage.rules import load_rules
from services.triage.worker import classify
from services.triage.worker.config import WorkerSettings

log = logging.getLogger(__name__)

SUITE = Path(__file__).resolve().parents[1] / "classifier" / "functional_suite.yaml"
#: A hateful case counts as flagged at this hate score even when not quarantined.
FLAG_AT = 0.5
#: The suite's group that the campaign's own subject is measured on.
IMMIGRANT_GROUPS = ("immigrants", "refugees", "migrants", "asylum seekers")


@dataclass(frozen=True, slots=True)
class Case:
    """One text of the suite: its category, whether it is hateful, the group it targets."""

    text: str
    category: str
    hateful: bool
    target: str

    @property
    def measure(self) -> str:
        """What counts for it: a hateful case must be flagged, another not quarantined."""
        return "flagged" if self.hateful else "quarantined"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the classify CLI made of a case: its decision, the rule that made it, the scores."""

    case: Case
    decision: str
    rule: str
    offensive: float
    hate: float

    @property
    def quarantined(self) -> bool:
        return self.decision == "quarantine"

    @property
    def flagged(self) -> bool:
        return self.quarantined or self.hate >= FLAG_AT

    @property
    def counted(self) -> bool:
        """What its case's :attr:`~Case.measure` counts happened."""
        return self.flagged if self.case.hateful else self.quarantined


def load_suite(path: Path = SUITE) -> list[Case]:
    """Every case of the suite, templates filled with every group."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    groups: dict[str, list[str]] = doc["groups"]
    cases: list[Case] = []
    for category, spec in doc["categories"].items():
        hateful = bool(spec["hateful"])
        for template in spec.get("templates", []):
            for target, (plural, one) in groups.items():
                text = str(template).format(G=plural, one=one)
                cases.append(Case(text[0].upper() + text[1:], category, hateful, target))
        for text in spec.get("cases", []):
            cases.append(Case(str(text), category, hateful, str(spec.get("target", "refugees"))))
    return cases


def run_suite(cases: Sequence[Case], classifier: Classifier, rules: Path) -> list[Outcome]:
    """Each case through the classify CLI (one JSON line in, one out)."""
    lines = "".join(json.dumps({"id": i, "text": c.text}) + "\n" for i, c in enumerate(cases))
    out = io.StringIO()
    status = classify.main(
        ["--rules", str(rules), "--no-progress"],
        classifier=classifier,
        stdin=io.BytesIO(lines.encode("utf-8")),
        stdout=out,
        stderr=io.StringIO(),
    )
    if status != 0:
        raise RuntimeError(f"classify CLI exited {status}")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    outcomes = []
    for case, record in zip(cases, records, strict=True):
        if "error" in record:
            raise RuntimeError(f"classify CLI refused {case.text!r}: {record['error']}")
        outcomes.append(
            Outcome(
                case,
                record["decision"],
                record["rule"],
                float(record["offensive"]),
                float(record["hate"]),
            )
        )
    return outcomes


def _rate(outcomes: Sequence[Outcome]) -> float:
    """The share of ``outcomes`` (all hateful, or none) whose measure counts."""
    return sum(o.counted for o in outcomes) / len(outcomes) if outcomes else 0.0


def summarise(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """Rates per category and per target group, and the headline numbers."""
    by_category: dict[str, list[Outcome]] = defaultdict(list)
    by_target: dict[tuple[bool, str], list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_category[o.case.category].append(o)
        by_target[(o.case.hateful, o.case.target)].append(o)
    hateful = [o for o in outcomes if o.case.hateful]
    benign = [o for o in outcomes if not o.case.hateful]
    immigrant = [o for o in benign if o.case.target in IMMIGRANT_GROUPS]
    return {
        "headline": {
            "hateful_flagged": _rate(hateful),
            "non_hateful_quarantined": _rate(benign),
            "immigrant_non_hateful_quarantined": _rate(immigrant),
            "n_hateful": len(hateful),
            "n_non_hateful": len(benign),
        },
        "categories": {
            name: {
                "hateful": group[0].case.hateful,
                "n": len(group),
                "measure": group[0].case.measure,
                "rate": _rate(group),
            }
            for name, group in by_category.items()
        },
        "targets": {
            f"{'hateful' if h else 'non-hateful'}/{target}": {"n": len(g), "rate": _rate(g)}
            for (h, target), g in sorted(by_target.items())
        },
    }


def table(summary: dict[str, Any]) -> str:
    """The per-category and per-target report as plain text (``make eval``)."""
    lines = ["functional suite (hateful: share flagged; non-hateful: share quarantined)"]
    for name, r in summary["categories"].items():
        kind = "hateful" if r["hateful"] else "non-hateful"
        lines.append(f"  {name:22s} {kind:12s} n={r['n']:4d} {r['measure']:11s} {r['rate']:6.1%}")
    lines.append("per target group")
    for name, r in summary["targets"].items():
        lines.append(f"  {name:32s} n={r['n']:4d} {r['rate']:6.1%}")
    h = summary["headline"]
    lines.append(
        f"hateful flagged {h['hateful_flagged']:.1%} (n={h['n_hateful']}); non-hateful "
        f"quarantined {h['non_hateful_quarantined']:.1%} (n={h['n_non_hateful']}); "
        f"non-hateful about immigrants/refugees quarantined "
        f"{h['immigrant_non_hateful_quarantined']:.1%}"
    )
    return "\n".join(lines)


def failures(summary: dict[str, Any], floors: dict[str, float]) -> list[str]:
    """The headline numbers that miss their floor (``min_*``) or ceiling (``max_*``)."""
    h = summary["headline"]
    checks = [
        ("hateful_flagged", h["hateful_flagged"], floors["min_hateful_flagged"], True),
        (
            "non_hateful_quarantined",
            h["non_hateful_quarantined"],
            floors["max_non_hateful_quarantined"],
            False,
        ),
        (
            "immigrant_non_hateful_quarantined",
            h["immigrant_non_hateful_quarantined"],
            floors["max_immigrant_quarantined"],
            False,
        ),
    ]
    return [
        f"{name} = {got:.3f} {'<' if is_min else '>'} {bound:.3f}"
        for name, got, bound, is_min in checks
        if (got < bound if is_min else got > bound)
    ]


def main(argv: Sequence[str] | None = None, *, classifier: Classifier | None = None) -> int:
    settings = WorkerSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--suite", type=Path, default=SUITE)
    parser.add_argument("--rules", type=Path, default=settings.rules_path)
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument(
        "--artefacts", type=Path, default=None, help="candidate artefacts (default: committed)"
    )
    parser.add_argument("--min-hateful-flagged", type=float, default=0.85)
    parser.add_argument("--max-non-hateful-quarantined", type=float, default=0.10)
    parser.add_argument("--max-immigrant-quarantined", type=float, default=0.05)
    args = parser.parse_args(argv)
    campaign = load_rules(args.rules).campaign_examples
    if classifier is None and args.artefacts is not None:
        from services.triage.classifier.transformer import (  # noqa: PLC0415 - torch
            TransformerClassifier,
        )

        classifier = TransformerClassifier(campaign, artefacts_dir=args.artefacts)
    if classifier is None:
        classifier = load_classifier(settings, campaign)
    outcomes = run_suite(load_suite(args.suite), classifier, args.rules)
    summary = summarise(outcomes)
    summary["version"] = classifier.version
    print(table(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    failed = failures(summary, vars(args))
    for line in failed:
        log.error("functional suite: %s", line)
    return 1 if failed else 0


if __name__ == "__main__":
    configure_logging("triage-functional")
    sys.exit(main())
