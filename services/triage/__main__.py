"""``python -m services.triage worker`` runs the stream worker
(:mod:`services.triage.worker`); ``python -m services.triage web`` runs the
moderator page, the team feeds and the JSON API (:mod:`services.triage.web`).

Each process's module is imported only when it is the one asked for: the web
never loads the worker's faust and torch, nor the worker the web's stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Command -> the module whose ``main(argv)`` runs it.
COMMANDS = {"worker": "services.triage.worker.__main__", "web": "services.triage.web.__main__"}


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.triage")
    parser.add_argument("command", choices=sorted(COMMANDS))
    args = parser.parse_args(argv[:1])
    module = importlib.import_module(COMMANDS[args.command])
    status: int = module.main(argv[1:])
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
