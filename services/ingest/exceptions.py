"""Ingest's exceptions, mapped to HTTP in one place (``app.py``)."""

from __future__ import annotations


class IngestError(Exception):
    """Base of everything ingest raises on purpose."""


class BrokerUnavailable(IngestError):
    """Kafka did not take the mentions; nothing was lost, the caller may retry."""
