"""The issue-24 measurement: does the classifier learn this campaign, safely?

    python -m tests.bench.campaign_retrain [--tweets 3000] [--data-dir ../shared/data]

Synthetic campaign tweets with hate / not-hate labels (``tests/helpers/campaign.py``:
written for this project, never a public test set): ``--tweets / 2`` labelled from half
the templates, as many later ones from all of them (about half worded in ways never
labelled; reported apart). In one process, with no restart:

1. the live (committed) model scores the second half: macro-F1 (hate) **before**;
2. the first half is ingested into the triage web (SQLite) and labelled through
   ``POST /api/questions/{id}/labels``;
3. ``POST /api/model/retrain`` starts a job in its own process on the shared
   public data plus those labels; the gate promotes it or not (``GET /api/model``);
4. the worker's :class:`LiveModel` takes the new version up at its next refresh and
   scores the second half again: macro-F1 (hate) **after**;
5. a retrain on the same labels shuffled is refused by the gate, with its reason
   (``--control-first``: before the real one, against the committed model).

Prints ``BEFORE``, ``AFTER``, ``GAIN`` and the gate's decisions.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from services.common.messages import Author, MentionReceived, Platform, Source, mention_id
from services.triage.classifier.base import Classifier
from services.triage.classifier.factory import load_classifier
from services.triage.classifier.metrics import binary_report
from services.triage.classifier.registry import Registry
from services.triage.config import ClassifierSettings
from services.triage.worker.live_model import LiveModel
from tests.helpers.campaign import LabelledTweet, campaign_tweets
from tests.triage.learning.helpers import finished_job
from tests.triage.web.helpers.api import serve_api

_COUNTER = itertools.count(1)


def make_mention(**overrides: Any) -> MentionReceived:
    """A webhook mention on X with a fresh id (``text`` and anything else overridden)."""
    n = next(_COUNTER)
    native_id = f"{1_900_000_000_000 + n}"
    fields: dict[str, Any] = {
        "id": mention_id(Platform.X, native_id),
        "platform": Platform.X,
        "native_id": native_id,
        "author": Author(id=f"{n}", handle=f"user{n}"),
        "text": "",
        "lang": "en",
        "created_at": datetime(2026, 12, 1, tzinfo=UTC),
        "received_at": datetime(2026, 12, 1, tzinfo=UTC),
        "source": Source.WEBHOOK,
    }
    return MentionReceived(**{**fields, **overrides})


def hate_macro_f1(classifier: Classifier, tweets: Sequence[LabelledTweet]) -> float:
    """Macro-F1 of the hate score at 0.5 (the rules' quarantine point: thresholds folded)."""
    scores = []
    for start in range(0, len(tweets), 128):
        batch = tweets[start : start + 128]
        scores += [p.hate for p in classifier.classify([t.text for t in batch])]
    y = np.array([int(t.hate) for t in tweets])
    return float(binary_report(y, np.array(scores), 0.5).macro_f1)


async def shuffled_retrain(web: Any) -> dict[str, Any]:
    """A retrain on the labels shuffled among themselves, to its end."""
    wrong = await web.call("admin", "POST", "/api/model/retrain", json={"shuffle_labels": True})
    refused = await finished_job(web, wrong.json()["job"]["id"], timeout_s=3600)
    print(f"SHUFFLED {refused['job']['state']}: {refused['job']['reason']}", flush=True)
    return dict(refused["job"])


async def measure(tweets: int, root: Path, *, control_first: bool = False) -> dict[str, Any]:
    # Labelled: half the campaign's wordings (the even templates). Later: the same source,
    # every wording, so about half of it is worded in ways no moderator ever labelled.
    labelled = campaign_tweets(tweets // 2, seed=24, templates="even")
    seen = {t.text for t in labelled}
    later = [t for t in campaign_tweets(tweets, seed=25) if t.text not in seen][: tweets // 2]
    taught = {t.template for t in labelled}
    unseen = [t for t in later if t.template not in taught]
    settings = ClassifierSettings(models_dir=root / "models", torch_threads=1)
    registry = Registry(settings.models_dir)
    live = LiveModel(
        registry, lambda d: load_classifier(settings, [], d), load_classifier(settings, [])
    )
    torch.set_num_threads(1)
    before = hate_macro_f1(live.classifier, later)
    before_unseen = hate_macro_f1(live.classifier, unseen)
    print(
        f"BEFORE {live.classifier.version} macro-F1 hate {before:.3f} "
        f"(unseen wordings, n={len(unseen)}: {before_unseen:.3f})",
        flush=True,
    )
    async with serve_api("sqlite", root, make_mention, models_dir=root / "models") as web:
        for tweet in labelled:
            question = await web.ingest(mention={"text": tweet.text})
            given = {"offensive": tweet.hate, "hate": tweet.hate}
            response = await web.call(
                "mod1", "POST", f"/api/questions/{question}/labels", json=given
            )
            response.raise_for_status()
        first = await shuffled_retrain(web) if control_first else None
        job = (await web.call("admin", "POST", "/api/model/retrain")).json()["job"]
        done = await finished_job(web, job["id"], timeout_s=3600)
        print(f"RETRAIN {done['job']['state']}: {done['job']['reason']}", flush=True)
        swapped = await live.refresh()
        after = hate_macro_f1(live.classifier, later)
        after_unseen = hate_macro_f1(live.classifier, unseen)
        print(
            f"AFTER {live.classifier.version} macro-F1 hate {after:.3f} "
            f"(unseen wordings: {after_unseen:.3f})",
            flush=True,
        )
        print(f"GAIN {after - before:+.3f} (swapped without restart: {swapped is not None})")
        refused = first or await shuffled_retrain(web)
        return {
            "before": before,
            "after": after,
            "unseen": {"n": len(unseen), "before": before_unseen, "after": after_unseen},
            "retrain": done["job"],
            "shuffled": refused,
            "live": (await web.call("mod1", "GET", "/api/model")).json()["live"]["version"],
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tweets", type=int, default=3000)
    parser.add_argument(
        "--control-first",
        action="store_true",
        help="the shuffled retrain first, against the committed model (else after, against "
        "the promoted one)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(measure(args.tweets, Path(tmp), control_first=args.control_first))
    print(json.dumps(result, indent=2, default=str))
    return 0 if result["after"] - result["before"] >= 0.05 else 1


if __name__ == "__main__":
    raise SystemExit(main())
