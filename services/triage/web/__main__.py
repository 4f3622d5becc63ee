"""``python -m services.triage.web`` (also ``python -m services.triage web``): the
moderator page, the team feeds, the JSON API, and the web's consumers."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from services.common.http import run_server
from services.common.logs import configure_logging
from services.triage.web.app import create_app
from services.triage.web.config import WebSettings


def main(argv: Sequence[str]) -> int:
    """Serve the triage web until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m services.triage web")
    parser.parse_args(argv)
    configure_logging("triage-web")
    settings = WebSettings()
    run_server(create_app(settings), settings.host, settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
