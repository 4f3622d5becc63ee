"""``python -m services.ingest replay FILE [--rate N/s] [--batch N] [--json]``: the
command line of :mod:`.replay` — its arguments, the HTTP client, a progress bar
and the summary."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import stat
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
from tqdm import tqdm

from services.common.lines import read_lines
from services.common.logs import configure_logging
from services.ingest.replay import (
    DEFAULT_BATCH,
    DEFAULT_URL,
    EXIT_ABORTED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    MAX_BATCH,
    MAX_LINE_BYTES,
    Clock,
    ReplaySummary,
    RetryPolicy,
    Sleep,
    count_lines,
    parse_rate,
    replay,
)

log = logging.getLogger(__name__)


# --- the command line -------------------------------------------------------------


def _rate_arg(value: str) -> float:
    try:
        return parse_rate(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _batch_arg(value: str) -> int:
    try:
        batch = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= batch <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"batch must be 1 to {MAX_BATCH}, got {batch}")
    return batch


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {value!r}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.ingest replay",
        description="Replay a JSON Lines file of mentions (webhook items or raw X API v2 "
        "stream lines) into ingest's POST /v1/mentions.",
    )
    parser.add_argument("file", help="the .jsonl file to replay ('-' reads stdin)")
    parser.add_argument(
        "--url",
        default=os.environ.get("INGEST_URL") or DEFAULT_URL,
        help="ingest base URL (default: $INGEST_URL or %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="bearer token for ingest (default: $INGEST_API_KEY; prefer the variable, "
        "command lines are visible to other users)",
    )
    parser.add_argument(
        "--rate",
        type=_rate_arg,
        default=0.0,
        metavar="N[/s]",
        help="mentions per second, e.g. 50 or 50/s (default: 0, as fast as possible)",
    )
    parser.add_argument(
        "--batch",
        type=_batch_arg,
        default=DEFAULT_BATCH,
        help=f"mentions per request, 1 to {MAX_BATCH} (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        default=30.0,
        help="seconds to wait for ingest to answer one request (default: %(default)s)",
    )
    parser.add_argument(
        "--give-up-after",
        type=_positive_float,
        default=RetryPolicy.give_up_after_s,
        metavar="SECONDS",
        help="stop retrying a batch after this long and abort (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    return parser


def make_client(
    url: str,
    api_key: str,
    *,
    timeout: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The one pooled client a replay uses."""
    return httpx.AsyncClient(
        base_url=url,
        headers={"Authorization": f"Bearer {api_key}", "User-Agent": "takeaction-replay"},
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        transport=transport,
    )


class _TqdmProgress:
    def __init__(self, bar: tqdm[Any]) -> None:
        self.bar = bar

    def __call__(self, lines: int, summary: ReplaySummary) -> None:
        if lines:
            self.bar.update(lines)
        else:
            self.bar.set_postfix_str(
                f"accepted={summary.accepted} dup={summary.duplicates} rejected={summary.rejected}",
                refresh=False,
            )


async def _run(
    args: argparse.Namespace,
    api_key: str,
    stream: IO[bytes],
    total: int | None,
    summary: ReplaySummary,
    *,
    transport: httpx.AsyncBaseTransport | None,
    sleep: Sleep,
    clock: Clock,
) -> None:
    disable = True if args.no_progress else None  # None: off when stderr is not a terminal
    retry = RetryPolicy(give_up_after_s=args.give_up_after)
    with tqdm(total=total, unit=" lines", file=sys.stderr, disable=disable, mininterval=0.5) as bar:
        async with make_client(
            args.url, api_key, timeout=args.timeout, transport=transport
        ) as client:
            await replay(
                read_lines(stream, MAX_LINE_BYTES),
                client,
                rate=args.rate,
                batch=args.batch,
                retry=retry,
                sleep=sleep,
                clock=clock,
                progress=_TqdmProgress(bar),
                summary=summary,
            )


def _report(summary: ReplaySummary, *, as_json: bool) -> None:
    if as_json:
        sys.stderr.write(summary.render() + "\n")
        sys.stdout.write(json.dumps(summary.to_json(), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(summary.render() + "\n")


def main(
    argv: list[str],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
) -> int:
    """``python -m services.ingest replay FILE.jsonl [options]``; returns the exit status.

    Tests pass ``transport`` (e.g. ``httpx.MockTransport``) and a fake ``sleep``/``clock``.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not logging.getLogger().handlers:  # a test or an embedding program configured it
        configure_logging("replay")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise

    api_key = args.api_key if args.api_key is not None else os.environ.get("INGEST_API_KEY", "")
    if not api_key:
        sys.stderr.write("replay: no API key; set INGEST_API_KEY or pass --api-key\n")
        return EXIT_USAGE
    if not args.url.startswith(("http://", "https://")):
        sys.stderr.write(f"replay: --url must start with http:// or https://, got {args.url!r}\n")
        return EXIT_USAGE

    summary = ReplaySummary(source=args.file, url=args.url)
    try:
        if args.file == "-":
            stream, total = sys.stdin.buffer, None
        else:
            path = Path(args.file)
            stream = path.open("rb")
            is_file = stat.S_ISREG(os.fstat(stream.fileno()).st_mode)
            total = count_lines(path) if is_file and not args.no_progress else None
    except OSError as exc:
        sys.stderr.write(f"replay: cannot read {args.file}: {exc.strerror or exc}\n")
        return EXIT_USAGE

    try:
        with stream:
            asyncio.run(
                _run(
                    args,
                    api_key,
                    stream,
                    total,
                    summary,
                    transport=transport,
                    sleep=sleep,
                    clock=clock,
                )
            )
    except KeyboardInterrupt:
        summary.interrupted = True
        _report(summary, as_json=args.json)
        return EXIT_INTERRUPTED
    _report(summary, as_json=args.json)
    return EXIT_OK if summary.completed else EXIT_ABORTED
