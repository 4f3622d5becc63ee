"""``make soak-spike``: a burst at 5x the sustained rate through the embedded stack.

Starts ``make run``'s supervisor on free ports (no demo), then replays generated
mentions into ingest in three phases over ``--duration`` seconds: the sustained
``--rate`` for the first 20 %, ``--factor`` times it for ``--burst`` seconds (the
spike; 20 % of the duration unless given), the sustained rate again for the rest;
then waits for the stack to drain. ``make soak-spike``: 180 s sustained, a
10-minute burst, 120 s sustained (``SPIKE_DURATION`` 900, ``SPIKE_BURST`` 600).
Meanwhile it samples every service's ``/metrics`` and times the triage web's
queue page (``GET /queue`` as the demo admin) twice a second.

Passes when nothing is lost (ingest accepted = produced; the worker's in =
decided + dead-lettered = what the web stored + its dead letters, and the
queue holds every stored question), the worker's consumer lag rose during the
spike and came back to 0, and the queue page's p95 stayed under
``--page-p95-ms`` (300) from the spike to the end of the drain. Prints one line
per sample and a summary; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from services.devstack import stack
from services.devstack.broker import free_port
from tests.bench.soak_stack import scrape, total

#: The sustained lead-in's share of the duration, and the burst's unless given.
LEAD_SHARE = 0.2


def phases(duration: float, burst: float | None, factor: float) -> list[tuple[float, float]]:
    """(seconds, multiple of the sustained rate) of the lead-in, the burst and the
    rest (none where the burst takes the whole remaining duration)."""
    lead = LEAD_SHARE * duration
    burst = LEAD_SHARE * duration if burst is None else burst
    rest = max(0.0, duration - lead - burst)
    return [(lead, 1.0), (burst, factor)] + ([(rest, 1.0)] if rest > 0 else [])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class PageTimer(threading.Thread):
    """Times ``GET /queue`` every ``every_s`` while running; (started_at, seconds, status)."""

    def __init__(self, url: str, headers: dict[str, str], every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.url, self.headers, self.every_s = url, headers, every_s
        self.samples: list[tuple[float, float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get(self.url, headers=self.headers).status_code
                except httpx.HTTPError:
                    status = 0
                self.samples.append((started, time.monotonic() - started, status))
                self.stop.wait(max(0.0, self.every_s - (time.monotonic() - started)))


def split(path: Path, counts: list[int], work: Path) -> list[Path]:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    parts, start = [], 0
    for n, count in enumerate(counts):
        part = work / f"phase{n}.jsonl"
        part.write_text("".join(lines[start : start + count]), encoding="utf-8")
        parts.append(part)
        start += count
    return parts


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0912 - one scenario, in order
    parser = argparse.ArgumentParser(prog="python -m tests.bench.soak_spike")
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of replay")
    parser.add_argument("--rate", type=float, default=20.0, help="sustained mentions/s")
    parser.add_argument("--factor", type=float, default=5.0, help="the spike's multiple")
    parser.add_argument(
        "--burst", type=float, default=None, help="seconds of the spike (default: 20 %% of it)"
    )
    parser.add_argument("--page-p95-ms", type=float, default=300.0)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    plan = phases(args.duration, args.burst, args.factor)
    counts = [max(1, round(seconds * args.rate * mult)) for seconds, mult in plan]
    work = Path(tempfile.mkdtemp(prefix="takeaction-spike-"))
    demo = work / "mentions.jsonl"
    subprocess.run(
        [sys.executable, "-m", "services.devstack.demo.generate", "--count", str(sum(counts)),
         "--seed", "20261204", "--out", str(demo)],
        check=True,
    )  # fmt: skip
    parts = split(demo, counts, work)
    ports = {
        name: free_port()
        for name in ("broker", "ingest", "worker", "web", "internal", "publish", "sandbox")
    }
    var = work / "var"
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.devstack.stack", "run", "--var", str(var), "--no-demo",
         "--broker-port", str(ports["broker"]),
         "--ingest-port", str(ports["ingest"]), "--triage-worker-port", str(ports["worker"]),
         "--triage-port", str(ports["web"]),
         "--triage-internal-port", str(ports["internal"]), "--publish-port", str(ports["publish"]),
         "--sandbox-port", str(ports["sandbox"])],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=stack.ROOT, env=env,
    )  # fmt: skip
    web = f"http://127.0.0.1:{ports['web']}"
    started = time.monotonic()
    lags: list[tuple[float, float]] = []
    samples: dict[str, dict[str, float]] = {}
    timer: PageTimer | None = None
    spike_at = spike_end = replay_end = 0.0
    try:
        while True:  # every service up
            if time.monotonic() - started > 300 or proc.poll() is not None:
                print("the stack did not come up", file=sys.stderr)
                return 1
            try:
                for name in ("ingest", "worker", "internal"):
                    scrape(ports[name])
                break
            except OSError:
                time.sleep(2)
        credentials = stack.load_env_file(var / "credentials.env")
        token = httpx.post(
            f"{web}/api/token",
            data={
                "username": credentials["TRIAGE_ADMIN_USER"],
                "password": credentials["TRIAGE_ADMIN_PASSWORD"],
            },
        ).json()["access_token"]
        timer = PageTimer(f"{web}/queue", {"Authorization": f"Bearer {token}"})
        timer.start()
        replay_env = {
            **env,
            "INGEST_URL": f"http://127.0.0.1:{ports['ingest']}",
            "INGEST_API_KEY": credentials["INGEST_API_KEY"],
        }
        replay: subprocess.Popen[bytes] | None = None
        phase = -1
        replay_start = time.monotonic()
        stable = 0
        last: tuple[float, ...] = ()
        replay_s = sum(seconds for seconds, _ in plan)
        while time.monotonic() - replay_start < replay_s + args.drain_timeout:
            if phase < len(parts) and (replay is None or replay.poll() is not None):
                if replay is not None and replay.returncode != 0:
                    print(f"replay of phase {phase} exited {replay.returncode}", file=sys.stderr)
                phase += 1
                now = time.monotonic() - started
                if phase == 1:
                    spike_at = now
                if phase == 2:
                    spike_end = now
                if phase == len(parts):
                    replay_end = now
                if phase < len(parts):
                    rate = args.rate * plan[phase][1]
                    replay = subprocess.Popen(
                        [sys.executable, "-m", "services.ingest", "replay", str(parts[phase]),
                         "--rate", f"{rate}/s", "--no-progress", "--batch", "20"],
                        env=replay_env, cwd=stack.ROOT, stdout=subprocess.DEVNULL,
                    )  # fmt: skip
                    print(f"phase {phase}: {counts[phase]} mentions at {rate:.0f}/s", flush=True)
            time.sleep(2)
            try:
                ingest, worker, web_m = (scrape(ports[n]) for n in ("ingest", "worker", "internal"))
            except OSError:
                continue
            samples = {"ingest": ingest, "worker": worker, "web": web_m}
            lag = total(worker, "triage_consumer_lag")
            elapsed = time.monotonic() - started
            lags.append((elapsed, lag))
            consumed = total(worker, "triage_messages_in_total", topic="mentions.raw")
            stored = total(web_m, "triage_web_messages_in_total")
            recent = [s for _, s, _ in timer.samples[-10:]]
            print(
                f"{elapsed:7.1f}s  phase {phase}  accepted "
                f"{total(ingest, 'ingest_mentions_total', outcome='accepted'):7.0f}  worker in "
                f"{consumed:7.0f}  lag {lag:6.0f}  web in {stored:7.0f}  queue page "
                f"{max(recent, default=0) * 1000:5.0f} ms (max of last 10)",
                flush=True,
            )
            now_t = (consumed, stored, total(ingest, "ingest_mentions_total"))
            stable = stable + 1 if now_t == last and phase >= len(parts) else 0
            last = now_t
            if stable >= 10:  # drained: 20 s unchanged after the last phase
                break
    finally:
        if timer is not None:
            timer.stop.set()
        proc.send_signal(signal.SIGINT)
        proc.wait(60)

    ingest, worker, web_m = samples.get("ingest", {}), samples.get("worker", {}), samples["web"]
    accepted = total(ingest, "ingest_mentions_total", outcome="accepted")
    produced = total(ingest, "kafka_messages_out_total", topic="mentions.raw")
    consumed = total(worker, "triage_messages_in_total", topic="mentions.raw")
    decided = total(worker, "triage_decisions_total")
    dead = total(worker, "triage_dead_letters_total")
    classified_out = total(worker, "triage_messages_out_total", topic="mentions.classified")
    web_in = total(web_m, "triage_web_messages_in_total")
    web_dead = total(web_m, "triage_web_dead_letters_total")
    queued = total(web_m, "triage_queue_depth")
    during = [
        s for t, s, _ in (timer.samples if timer else []) if spike_at <= t - started <= lags[-1][0]
    ]
    errors = [code for _, _, code in (timer.samples if timer else []) if code != 200]
    p95 = percentile(during, 0.95) * 1000
    spike_lag = max((lag for t, lag in lags if spike_at <= t), default=0.0)
    checks = {
        "ingest: every line of the file counted (accepted, duplicate or rejected)": total(
            ingest, "ingest_mentions_total"
        )
        == sum(counts),
        "ingest: accepted = produced to mentions.raw": accepted == produced,
        "worker: in = accepted (none lost on the way)": consumed == accepted,
        "worker: in = decided + dead-lettered": consumed == decided + dead,
        "web: in = classified out": web_in == classified_out,
        "web: queue holds every stored question": queued == web_in - web_dead,
        "lag rose in the spike and came back to 0": spike_lag > 0 and lags[-1][1] == 0,
        f"queue page p95 < {args.page_p95_ms:.0f} ms from the spike to the drain": bool(during)
        and p95 < args.page_p95_ms,
        "queue page always answered 200": not errors,
    }
    print()
    print(f"phases                        {counts} at {args.rate:.0f}/s, x{args.factor:g}, ...")
    print(
        f"ingest lines / accepted / produced  {total(ingest, 'ingest_mentions_total'):.0f} / "
        f"{accepted:.0f} / {produced:.0f}"
    )
    print(f"worker in / decided / dead    {consumed:.0f} / {decided:.0f} / {dead:.0f}")
    print(f"web in / dead / queue         {web_in:.0f} / {web_dead:.0f} / {queued:.0f}")
    print(f"lag max in spike / last       {spike_lag:.0f} / {lags[-1][1] if lags else 0:.0f}")
    print(
        f"spike {spike_at:.0f}-{spike_end:.0f} s, replay done {replay_end:.0f} s, drained "
        f"{lags[-1][0] if lags else 0:.0f} s"
    )
    if during:
        print(
            f"queue page during spike+drain: {len(during)} requests, p50 "
            f"{statistics.median(during) * 1000:.0f} ms, p95 {p95:.0f} ms, "
            f"max {max(during) * 1000:.0f} ms; non-200: {len(errors)}"
        )
    for name, ok in checks.items():
        print(f"{'OK  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
