"""``python -m services.ingest [serve]`` runs the service;
``python -m services.ingest replay FILE.jsonl [--rate N/s]`` replays a file."""

from __future__ import annotations

import argparse
import sys

from services.common.http import run_server
from services.common.logs import configure_logging
from services.ingest.app import create_app
from services.ingest.config import IngestSettings
from services.ingest.replay_cli import main as replay_main


def serve() -> int:
    configure_logging("ingest")
    settings = IngestSettings()
    run_server(create_app(settings), settings.host, settings.port)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.ingest")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "replay"])
    args, rest = parser.parse_known_args(argv[:1])
    if args.command == "replay":
        return replay_main(argv[1:])
    if rest or argv[1:]:
        parser.error(f"unexpected arguments: {' '.join(argv[1:])}")
    return serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
