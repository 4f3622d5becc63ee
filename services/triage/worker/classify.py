"""Classify mentions from the command line, for anyone to evaluate triage.

``python -m services.triage.worker.classify [--batch N] [--rules PATH] [--no-progress]``
(JSON Lines in on stdin, out on stdout).

Input: JSON Lines on stdin, one object per line with at least ``text``; ``id``
is echoed back (any JSON value; lines without one get ``"id": null``). Used
when present: ``platform`` (``x`` / ``mastodon``), ``lang``, ``created_at``
(ISO 8601 with a timezone), ``author`` (``{"id", "handle", "followers"}``)
or a top-level ``followers``. Other fields are ignored. Missing fields are
made up: platform ``x``, author ``cli``, created now — so freshness is full.

Output: exactly one JSON line on stdout per input line, in input order::

    {"line": 1, "id": ..., "offensive": 0.01, "hate": 0.0, "question": 0.97,
     "relevance": 0.81, "spam": null, "priority": 78, "decision": "auto_assign",
     "rule": "auto_assign", "team": "kakuma-a", "cluster_id": "c-…",
     "reasons": [{"factor": "question", "points": 33.95, "detail": "…"}, …],
     "model_version": "…", "rules_version": "…"}

The scores are those the decision used: ``question`` is the question head's,
raised to the rules' question threshold when a question cue of the mention's
language decided (``services/triage/worker/questions.py``; the head's own
score is then in the ``question_cue`` reason), so ``question >= 0.5`` and the
decision agree.

A line that cannot be classified (not UTF-8, not JSON, not an object, no
usable ``text``, longer than :data:`MAX_LINE_BYTES`) gets
``{"line": n, "id": <id or null>, "error": "…"}`` instead — never skipped.
The exit status is 0 when every line got its output line (bad input lines
included), 2 for an unusable rules file, 1 when the classifier fails.

Memory stays bounded whatever the input size: lines are read, classified
(``--batch`` texts per classifier call, identical texts once) and written
one batch at a time, and the cluster index is bounded by the rules. A
progress bar goes to stderr (``--no-progress`` to hide it), with a summary
at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from itertools import islice
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from tqdm import tqdm

from services.common.codec import describe_validation_error
from services.common.langid import with_language
from services.common.lines import TooLong, read_lines
from services.common.logs import configure_logging
from services.common.messages import (
    MAX_TEXT_CHARS,
    Author,
    Decision,
    MentionClassified,
    MentionReceived,
    Platform,
    Source,
    mention_id,
    utcnow,
)
from services.triage.classifier import load_classifier
from services.triage.classifier.base import Classifier, Prediction
from services.triage.classifier.textbits import language
from services.triage.rules import RulesError, RulesFile
from services.triage.worker.batch import Decider
from services.triage.worker.config import WorkerSettings
from services.triage.worker.domain import Triage

log = logging.getLogger(__name__)

#: Longest input line accepted (bytes); longer lines get an error line.
MAX_LINE_BYTES = 1 << 20
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.\-@]")
_LANG = re.compile(r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{1,8})*$")
_CLI_AUTHOR = Author(id="cli", handle="cli")


@dataclass(frozen=True, slots=True)
class _Parsed:
    number: int
    raw_id: Any
    mention: MentionReceived | None = None
    error: str | None = None


# --- reading --------------------------------------------------------------------


def safe_native_id(raw_id: Any, number: int) -> str:
    """A platform-native id from the input's ``id`` (kept when already safe,
    else cleaned and suffixed with a hash so different ids stay different)."""
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
        return f"line-{number}"
    text = str(raw_id)
    cleaned = _SAFE_ID.sub("_", text)
    if cleaned == text and len(text) <= 128:
        return text
    return f"{cleaned[:119]}-{sha256(text.encode('utf-8')).hexdigest()[:8]}"


def _platform(value: Any) -> Platform:
    return Platform(value) if value in ("x", "mastodon") else Platform.X


def _created_at(value: Any, now: datetime) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return now
        if parsed.tzinfo is not None:
            return parsed
    return now


def _author(item: dict[str, Any]) -> Author:
    raw = item.get("author")
    followers = item.get("followers")
    fields: dict[str, Any] = {"id": "cli", "handle": "cli"}
    if isinstance(raw, dict):
        if raw.get("id") is not None:
            fields["id"] = str(raw["id"])
        if isinstance(raw.get("handle"), str):
            fields["handle"] = raw["handle"]
        followers = raw.get("followers", followers)
    if isinstance(followers, int) and not isinstance(followers, bool) and followers >= 0:
        fields["followers"] = followers
    if fields == {"id": "cli", "handle": "cli"}:
        return _CLI_AUTHOR
    try:
        return Author(**fields)
    except ValidationError:
        return _CLI_AUTHOR


class BadLine(ValueError):
    """An input line that cannot become a mention; the message says why."""


def _object_of(raw: bytes | str | TooLong) -> dict[str, Any]:
    if isinstance(raw, TooLong):
        raise BadLine(f"line of {raw.size} bytes exceeds {MAX_LINE_BYTES}")
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadLine(f"not valid UTF-8 at byte {exc.start}") from exc
    if not raw.strip():
        raise BadLine("empty line")
    try:
        item = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadLine(f"not valid JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(item, dict):
        raise BadLine(f"expected a JSON object, got {type(item).__name__}")
    return item


def _text_of(item: dict[str, Any]) -> str:
    text = item.get("text")
    if not isinstance(text, str):
        why = "missing" if text is None else f"a {type(text).__name__}, not a string"
        raise BadLine(f"text is {why}")
    if not text.strip():
        raise BadLine("text is empty")
    if len(text) > MAX_TEXT_CHARS:
        raise BadLine(f"text longer than {MAX_TEXT_CHARS} characters")
    return text


def mention_of(item: dict[str, Any], number: int, *, now: datetime) -> MentionReceived:
    """A mention from one input object, missing fields made up (see the module docstring)."""
    text = _text_of(item)
    platform = _platform(item.get("platform"))
    native_id = safe_native_id(item.get("id"), number)
    lang = item.get("lang")
    try:
        return MentionReceived(
            id=mention_id(platform, native_id),
            platform=platform,
            native_id=native_id,
            author=_author(item),
            text=text,
            lang=lang if isinstance(lang, str) and _LANG.match(lang) else None,
            created_at=_created_at(item.get("created_at"), now),
            received_at=now,
            source=Source.REPLAY,
        )
    except ValidationError as exc:
        raise BadLine(describe_validation_error(exc)) from exc


def parse_line(raw: bytes | str | TooLong, number: int, *, now: datetime) -> _Parsed:
    """One input line -> a mention, or the reason it cannot be one."""
    try:
        item = _object_of(raw)
    except BadLine as exc:
        return _Parsed(number, None, error=str(exc))
    try:
        mention = with_language(mention_of(item, number, now=now))
        return _Parsed(number, item.get("id"), mention=mention)
    except BadLine as exc:
        return _Parsed(number, item.get("id"), error=str(exc))


# --- classifying ----------------------------------------------------------------


def record_of(
    result: MentionClassified, *, number: int, raw_id: Any, rules_version: str
) -> dict[str, Any]:
    """The output line for one classified mention (``rules_version`` when the result has none)."""
    scores = result.scores
    return {
        "line": number,
        "id": raw_id,
        "offensive": round(scores.offensive, 4),
        "hate": round(scores.hate, 4),
        "question": round(scores.question, 4),
        "relevance": round(scores.relevance, 4),
        "spam": scores.spam,
        "priority": result.priority,
        "decision": result.decision.value,
        "rule": result.rule,
        "team": result.team if result.decision in (Decision.REVIEW, Decision.AUTO_ASSIGN) else None,
        "cluster_id": result.cluster_id,
        "reasons": [
            {"factor": r.factor, "points": r.points, "detail": r.detail} for r in result.reasons
        ],
        "model_version": result.model_version,
        "model_path": result.model_path.value if result.model_path else None,
        "model_language": result.model_language,
        "rules_version": result.rules_version or rules_version,
    }


def _predict(
    classifier: Classifier, texts: Sequence[str], languages: Sequence[str | None]
) -> list[Prediction]:
    """One classifier call for the distinct (text, language) pairs (a multilingual
    classifier routes by the language); predictions for all, in order."""
    pairs = list(zip(texts, languages, strict=True))
    distinct = list(dict.fromkeys(pairs))
    predictions = classifier.classify([t for t, _ in distinct], [lang for _, lang in distinct])
    if len(predictions) != len(distinct):
        raise RuntimeError(
            f"classifier returned {len(predictions)} predictions for {len(distinct)} texts"
        )
    by_pair = dict(zip(distinct, predictions, strict=True))
    return [by_pair[p] for p in pairs]


def classify_lines(
    lines: Iterable[bytes | str | TooLong],
    *,
    triage: Decider,
    classifier: Classifier,
    rules: RulesFile,
    batch_size: int = 64,
    clock: Callable[[], datetime] = utcnow,
) -> Iterator[list[dict[str, Any]]]:
    """Classify input lines ``batch_size`` at a time; yield each batch's output
    records (one per line, in order) before reading the next batch."""
    iterator = iter(lines)
    number = 0
    while batch := list(islice(iterator, batch_size)):
        now = clock()
        parsed = []
        for raw in batch:
            number += 1
            parsed.append(parse_line(raw, number, now=now))
        records: list[dict[str, Any] | None] = [None] * len(parsed)
        waiting: list[int] = []
        for i, item in enumerate(parsed):
            if item.mention is None:
                records[i] = {"line": item.number, "id": item.raw_id, "error": item.error}
                continue
            early = triage.prejudge(item.mention, now=now)
            if early is None:
                waiting.append(i)
            else:
                records[i] = _record(rules, item, early)
        if waiting:
            texts = [triage.text_for_model(_mention(parsed[i])) for i in waiting]
            languages = [language(_mention(parsed[i]).lang) or None for i in waiting]
            predictions = _predict(classifier, texts, languages)
            for i, prediction in zip(waiting, predictions, strict=True):
                item = parsed[i]
                try:
                    result = triage.decide(_mention(item), prediction, now=now)
                except (
                    ValueError
                ) as exc:  # a prediction the contract refuses (e.g. ValidationError)
                    records[i] = {"line": item.number, "id": item.raw_id, "error": str(exc)[:500]}
                else:
                    records[i] = _record(rules, item, result)
        yield [r for r in records if r is not None]


def _mention(item: _Parsed) -> MentionReceived:
    assert item.mention is not None  # only parsed mentions are waiting for the model
    return item.mention


def _record(rules: RulesFile, item: _Parsed, result: MentionClassified) -> dict[str, Any]:
    return record_of(
        result,
        number=item.number,
        raw_id=item.raw_id,
        rules_version=rules.version,
    )


def run(
    stdin: IO[bytes],
    stdout: IO[str],
    *,
    triage: Decider,
    classifier: Classifier,
    rules: RulesFile,
    batch_size: int,
    progress: IO[str] | None,
) -> Counter[str]:
    """Stream ``stdin`` to ``stdout``; returns the count of each decision (and ``error``)."""
    counts: Counter[str] = Counter()
    with tqdm(
        unit=" lines",
        file=progress,
        disable=progress is None,
        mininterval=0.5,
        dynamic_ncols=True,
    ) as bar:
        for records in classify_lines(
            read_lines(stdin, MAX_LINE_BYTES),
            triage=triage,
            classifier=classifier,
            rules=rules,
            batch_size=batch_size,
        ):
            for record in records:
                counts[record.get("decision", "error")] += 1
                stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
            stdout.flush()
            bar.update(len(records))
    return counts


# --- composition root -------------------------------------------------------------


def parse_args(argv: Sequence[str] | None, settings: WorkerSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m services.triage.worker.classify",
        description="Classify JSON Lines mentions ({'id', 'text', ...} per line) from stdin; "
        "one JSON line per input on stdout, in order.",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=settings.batch_size,
        help="texts per classifier call (default %(default)s, TRIAGE_BATCH_SIZE)",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        default=settings.rules_path,
        help="rules file (default %(default)s, TRIAGE_RULES_PATH)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    if not 1 <= args.batch <= 4096:
        parser.error("--batch must be between 1 and 4096")
    return args


def main(
    argv: Sequence[str] | None = None,
    *,
    classifier: Classifier | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """The CLI; ``classifier`` and the streams may be injected (tests)."""
    settings = WorkerSettings()
    args = parse_args(argv, settings)
    err = stderr if stderr is not None else sys.stderr
    try:
        rules = RulesFile(args.rules, check_every_s=settings.rules_check_every_s)
    except RulesError as exc:
        log.error("%s", exc)  # noqa: TRY400 - the message is the whole story
        return 2
    if classifier is None:
        classifier = load_classifier(settings, rules.current().campaign_examples)
    triage = Triage(rules, classifier.version)
    started = time.monotonic()
    out = stdout if stdout is not None else sys.stdout
    try:
        counts = run(
            stdin if stdin is not None else sys.stdin.buffer,
            out,
            triage=triage,
            classifier=classifier,
            rules=rules,
            batch_size=args.batch,
            progress=None if args.no_progress else err,
        )
    except BrokenPipeError:  # e.g. `| head`: the reader has gone, nothing more to say
        _silence_stdout()
        return 1
    except Exception:
        log.exception("classification failed")
        return 1
    total = sum(counts.values())
    elapsed = max(time.monotonic() - started, 1e-9)
    log.info(
        "%d lines in %.1f s (%.0f lines/s): %s; model %s, rules %s",
        total,
        elapsed,
        total / elapsed,
        ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no input",
        classifier.version,
        rules.version,
    )
    return 0


def _silence_stdout() -> None:
    # Python flushes stdout at exit; after EPIPE that raises again (see the signal docs).
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    configure_logging("triage-classify")
    sys.exit(main())
