"""Logging setup for every service process: plain text or one JSON object per line.

``LOG_LEVEL`` (default INFO) and ``LOG_FORMAT`` (``text`` or ``json``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime
from typing import Any

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={...}`` fields (e.g. mention_id) are kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(service: str) -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    handler = logging.StreamHandler()
    if os.environ.get("LOG_FORMAT", "text").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka is chatty at INFO about every (re)connect; keep its warnings.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))


def log_if_died(task: asyncio.Task[Any]) -> None:
    """Done-callback for background tasks: an unexpected error is logged, loudly, with
    its traceback (a task that dies silently is a service that silently stops working)."""
    if not task.cancelled() and task.exception() is not None:
        logging.getLogger(__name__).error(
            "background task %s died", task.get_name(), exc_info=task.exception()
        )
