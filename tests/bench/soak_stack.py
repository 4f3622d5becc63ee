"""``make soak``: the embedded stack under a 10,000-mention replay.

Starts ``make run``'s supervisor on free ports with a generated file of
``--count`` mentions, samples every service's ``/metrics`` while the replay
and the classification run, and checks that the counters add up:

- ingest: every line accepted, a duplicate, or rejected; accepted = produced;
- triage worker: consumed from ``mentions.raw`` = decided + dead-lettered,
  and decided = classified out (quarantined ones are also on their own topic);
- triage web: consumed from ``mentions.classified`` = stored + duplicates +
  dead-lettered, and the queue (questions by status) holds every one;
- the worker's consumer lag rose while the replay ran and fell back to 0.

Prints one line per sample and a summary; exits 1 when a sum does not hold.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

from services.devstack import stack
from services.devstack.broker import free_port

SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$")


def scrape(port: int) -> dict[str, float]:
    """``name{labels}`` → value (summed over nothing: one key per sample)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def total(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of ``name``'s samples whose labels include ``labels``."""
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(
        value
        for key, value in samples.items()
        if key.split("{")[0] == name and all(w in key for w in wanted)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.soak_stack")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="takeaction-soak-"))
    demo = work / "mentions.jsonl"
    subprocess.run(
        [sys.executable, "-m", "services.devstack.demo.generate", "--count", str(args.count),
         "--seed", "20261124", "--out", str(demo)],
        check=True,
    )  # fmt: skip
    ports = {
        name: free_port()
        for name in ("broker", "ingest", "worker", "web", "internal", "publish", "sandbox")
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.devstack.stack", "run", "--var", str(work / "var"),
         "--demo-file", str(demo), "--broker-port", str(ports["broker"]),
         "--ingest-port", str(ports["ingest"]), "--triage-worker-port", str(ports["worker"]),
         "--triage-port", str(ports["web"]),
         "--triage-internal-port", str(ports["internal"]), "--publish-port", str(ports["publish"]),
         "--sandbox-port", str(ports["sandbox"])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=stack.ROOT,
        env={k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
    )  # fmt: skip
    started = time.monotonic()
    lags: list[float] = []
    stable = 0
    last: tuple[float, ...] = ()
    worker: dict[str, float] = {}
    web: dict[str, float] = {}
    ingest: dict[str, float] = {}
    try:
        while time.monotonic() - started < args.timeout:
            time.sleep(2)
            try:
                ingest, worker, web = (scrape(ports[n]) for n in ("ingest", "worker", "internal"))
            except OSError:
                continue  # not up yet
            lag = total(worker, "triage_consumer_lag")
            lags.append(lag)
            consumed = total(worker, "triage_messages_in_total", topic="mentions.raw")
            stored = total(web, "triage_web_messages_in_total")
            print(
                f"{time.monotonic() - started:7.1f}s  ingest accepted "
                f"{total(ingest, 'ingest_mentions_total', outcome='accepted'):7.0f}  worker in "
                f"{consumed:7.0f}  lag {lag:6.0f}  web in {stored:7.0f}",
                flush=True,
            )
            now = (consumed, stored, total(ingest, "ingest_mentions_total"))
            stable = stable + 1 if now == last and consumed > 0 else 0
            last = now
            if stable >= 10:  # 20 s unchanged (the queue gauges refresh every 15 s)
                break
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)

    accepted = total(ingest, "ingest_mentions_total", outcome="accepted")
    produced = total(ingest, "kafka_messages_out_total", topic="mentions.raw")
    consumed = total(worker, "triage_messages_in_total", topic="mentions.raw")
    decided = total(worker, "triage_decisions_total")
    by_decision: dict[str, float] = defaultdict(float)
    for key, value in worker.items():
        if key.startswith("triage_decisions_total{"):
            by_decision[re.search(r'decision="([a-z_]+)"', key).group(1)] += value  # type: ignore[union-attr]
    dead = total(worker, "triage_dead_letters_total")
    classified_out = total(worker, "triage_messages_out_total", topic="mentions.classified")
    web_in = total(web, "triage_web_messages_in_total")
    web_dead = total(web, "triage_web_dead_letters_total")
    queued = total(web, "triage_queue_depth")
    checks = {
        "ingest: accepted = produced to mentions.raw": accepted == produced,
        "worker: in = decided + dead-lettered": consumed == decided + dead,
        "worker: decided = classified out": decided == classified_out,
        "web: in = classified out": web_in == classified_out,
        "web: queue holds every stored question": queued == web_in - web_dead,
        "lag rose above 0 and came back to 0": bool(lags) and max(lags) > 0 and lags[-1] == 0,
    }
    print()
    print(f"mentions in the file          {args.count}")
    print(f"ingest accepted / produced    {accepted:.0f} / {produced:.0f}")
    print(f"worker in                     {consumed:.0f}")
    print(
        "worker decided                "
        + ", ".join(f"{k} {v:.0f}" for k, v in sorted(by_decision.items()))
    )
    print(f"worker dead-lettered          {dead:.0f}")
    print(f"web in / dead-lettered        {web_in:.0f} / {web_dead:.0f}")
    print(f"queue depth (all statuses)    {queued:.0f}")
    print(
        f"worker lag max / last         {max(lags, default=0):.0f} / {lags[-1] if lags else 0:.0f}"
    )
    print(f"wall                          {time.monotonic() - started:.0f} s")
    for name, ok in checks.items():
        print(f"{'OK  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
