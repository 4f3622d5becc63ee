"""A linear bridge from MiniLM's embedding space to multilingual-e5's, for English text.

The worker clusters questions across languages in e5's space, but English is
scored on MiniLM and has no e5 embedding; an e5 pass for every English question
costs the worker more than half its throughput on a mixed stream. A ridge
regression fitted on English texts embedded by both encoders maps a MiniLM
embedding to where e5 would put it, for the cost of one 384 by 384 product:
English questions join the French (or Arabic...) asking the same thing without
an e5 pass. The fit and its quality on held-out text and on a handmade
cross-language set are in the triage README ("Every language").

    python -m services.triage.classifier.bridge [--texts 1400] [--out DIR]

fits it on the training data (``TRIAGE_DATA_DIR``: TweetEval offensive train
texts and DailyDialog utterances), both embeddings cached under ``var/`` by the
texts' content hash, one thread.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import load_file, save_file

log = logging.getLogger(__name__)

#: Where the committed bridge lives.
BRIDGE_DIR = Path(__file__).resolve().parents[1] / "model-bridge"
WEIGHTS_FILE = "bridge.safetensors"
METADATA_FILE = "metadata.json"
#: Ridge penalty (chosen on held-out English text; the README has the sweep).
RIDGE = 1.0


@dataclass(frozen=True, slots=True)
class BridgeMetadata:
    version: str
    #: The English model whose embeddings it maps (its version): another model's
    #: embeddings lie elsewhere, so the bridge is used only with this one.
    english_version: str
    target: str
    texts: int
    ridge: float
    #: Mean and 10th percentile of cos(bridged, e5) on held-out English texts.
    heldout_cosine_mean: float
    heldout_cosine_p10: float


class Bridge:
    """``project(minilm rows) -> e5-space rows`` (L2-normalised)."""

    def __init__(self, weight: npt.NDArray[np.float32], metadata: BridgeMetadata) -> None:
        self.weight = weight.astype(np.float32)  # (source dim + 1, target dim): bias last
        self.metadata = metadata

    def project(self, embeddings: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        rows = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        mapped = rows @ self.weight[:-1] + self.weight[-1]
        norms = np.linalg.norm(mapped, axis=1, keepdims=True)
        out: npt.NDArray[np.float32] = np.divide(
            mapped, norms, out=np.zeros_like(mapped), where=norms > 0
        )
        return out

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"weight": self.weight.astype(np.float16)}, str(directory / WEIGHTS_FILE))
        (directory / METADATA_FILE).write_text(
            json.dumps(asdict(self.metadata), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path = BRIDGE_DIR) -> Bridge:
        weight = load_file(str(directory / WEIGHTS_FILE))["weight"].astype(np.float32)
        raw = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
        return cls(weight, BridgeMetadata(**raw))


def available(directory: Path = BRIDGE_DIR) -> bool:
    return (directory / WEIGHTS_FILE).is_file() and (directory / METADATA_FILE).is_file()


def bridge_for(classifier: object, directory: Path = BRIDGE_DIR) -> Bridge | None:
    """The committed bridge when it was fitted on ``classifier``'s English model (a
    language router's ``english`` path), else ``None`` (English questions then pay
    an e5 pass to be clustered across languages)."""
    english = getattr(classifier, "english", classifier)
    if not available(directory):
        return None
    try:
        bridge = Bridge.load(directory)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        log.warning("the MiniLM -> e5 bridge in %s cannot be read (%s): not used", directory, exc)
        return None
    # The artefacts' version, whatever precision they run in ("…+bf16" on a CPU with
    # a bf16 unit): bf16 states stay within the clusters' margins of the fp32 ones.
    running = str(getattr(english, "version", "")).split("+", 1)[0]
    if running != bridge.metadata.english_version:
        log.warning(
            "the MiniLM -> e5 bridge was fitted on %s, not %s: not used",
            bridge.metadata.english_version,
            getattr(english, "version", "?"),
        )
        return None
    return bridge


def fit(
    source: npt.NDArray[np.float32], target: npt.NDArray[np.float32], ridge: float = RIDGE
) -> npt.NDArray[np.float32]:
    """Ridge regression with a bias (not penalised): the bridge's weight."""
    x = np.hstack([source.astype(np.float64), np.ones((len(source), 1))])
    gram = x.T @ x + ridge * np.eye(x.shape[1])
    gram[-1, -1] -= ridge
    weight: npt.NDArray[np.float32] = np.linalg.solve(gram, x.T @ target.astype(np.float64)).astype(
        np.float32
    )
    return weight


def training_texts(data_dir: Path, count: int, seed: int = 7) -> list[str]:
    """English tweets (TweetEval offensive, train split) and dialogue utterances
    (DailyDialog), half each, shuffled."""
    tweets = (data_dir / "tweeteval" / "offensive" / "train_text.txt").read_text("utf-8")
    dialogues = (data_dir / "dailydialog" / "dialogues_validation.txt").read_text("utf-8")
    utterances = [u.strip() for line in dialogues.splitlines() for u in line.split("__eou__")]
    half = count // 2
    texts = [t.strip() for t in tweets.splitlines() if t.strip()][:half]
    texts += [u for u in utterances if u][: count - half]
    random.Random(seed).shuffle(texts)  # noqa: S311 - a reproducible order, not a secret
    return texts


def _cached(
    name: str,
    texts: Sequence[str],
    cache: Path,
    encode: Callable[[Sequence[str]], npt.NDArray[np.float32]],
) -> npt.NDArray[np.float32]:
    digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
    path = cache / f"bridge-{name}-{digest}.npy"
    if path.exists():
        cached: npt.NDArray[np.float32] = np.load(path).astype(np.float32)
        return cached
    rows = np.asarray(encode(list(texts)), dtype=np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, rows)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fit the MiniLM -> e5 bridge.")
    parser.add_argument("--texts", type=int, default=1400)
    parser.add_argument("--out", type=Path, default=BRIDGE_DIR)
    parser.add_argument("--cache", type=Path, default=Path("var") / "cache")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from services.triage.classifier import transformer  # noqa: PLC0415 - imports torch
    from services.triage.classifier.data import normalise_text  # noqa: PLC0415
    from services.triage.classifier.encoders import E5Encoder  # noqa: PLC0415

    e5_encoder = E5Encoder(num_threads=1)  # before torch starts its OpenMP threads
    classifier = transformer.load_classifier([])
    import torch  # noqa: PLC0415 - already loaded by the classifier

    torch.set_num_threads(1)
    data_dir = Path(os.environ.get("TRIAGE_DATA_DIR", Path.cwd().parent / "shared" / "data"))
    texts = training_texts(data_dir, args.texts)

    def classifier_embeddings(batch: Sequence[str]) -> npt.NDArray[np.float32]:
        # What the worker's English path gives: the fine-tuned MiniLM's embedding.
        return np.stack([p.embedding for p in classifier.classify(batch)])

    def e5_embeddings(batch: Sequence[str]) -> npt.NDArray[np.float32]:
        # What the multilingual path would give (it normalises the text the same way).
        return e5_encoder.encode([normalise_text(t) for t in batch])

    minilm = _cached("minilm", texts, args.cache, classifier_embeddings)
    e5 = _cached("e5", texts, args.cache, e5_embeddings)
    split = int(len(texts) * 0.8)
    weight = fit(minilm[:split], e5[:split])
    probe = Bridge(weight, BridgeMetadata("", "", "", 0, RIDGE, 0.0, 0.0))
    cosine = (probe.project(minilm[split:]) * e5[split:]).sum(axis=1)
    metadata = BridgeMetadata(
        version=f"minilm-to-e5-{hashlib.sha256(weight.tobytes()).hexdigest()[:8]}",
        english_version=classifier.version,
        target="multilingual-e5-small-q4",
        texts=len(texts),
        ridge=RIDGE,
        heldout_cosine_mean=round(float(cosine.mean()), 4),
        heldout_cosine_p10=round(float(np.percentile(cosine, 10)), 4),
    )
    # The committed bridge is fitted on every text (the held-out figures are the 80/20 fit's).
    Bridge(fit(minilm, e5), metadata).save(args.out)
    log.info(
        "bridge %s: held-out cosine mean %.3f, p10 %.3f -> %s",
        metadata.version,
        metadata.heldout_cosine_mean,
        metadata.heldout_cosine_p10,
        args.out,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
