"""``python -m services.publish [serve]`` runs the publisher (consumers, health and
metrics on port 8002); ``python -m services.publish migrate`` only migrates the ledger."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.common.http import run_server
from services.common.logs import configure_logging
from services.publish.app import create_app
from services.publish.config import PublishSettings
from services.publish.db import make_engine, migrate


async def _migrate(settings: PublishSettings) -> None:
    engine = make_engine(settings.database_url, schema=settings.database_schema)
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.publish")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args(argv)
    configure_logging("publish")
    settings = PublishSettings()
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        return 0
    run_server(create_app(settings), settings.host, settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
