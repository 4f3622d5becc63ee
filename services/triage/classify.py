"""``python -m services.triage.classify``: kept for the commands that name it; the
CLI is :mod:`services.triage.worker.classify` (``python -m services.triage.worker.classify``)."""

from __future__ import annotations

import sys

from services.common.logs import configure_logging
from services.triage.worker.classify import main

__all__ = ["main"]

if __name__ == "__main__":
    configure_logging("triage-classify")
    sys.exit(main())
