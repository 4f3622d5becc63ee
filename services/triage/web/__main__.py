"""``python -m services.triage.web`` (also ``python -m services.triage web``): the
moderator page, the team feeds, the JSON API, and the web's consumers on the
public port; metrics and the health details on the internal port, served while
the public app runs (after its start, stopped before its end)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI

from services.common.http import run_server
from services.common.logs import configure_logging
from services.triage.web.app import create_app, create_internal_app
from services.triage.web.config import WebSettings


class _InternalServer(uvicorn.Server):
    """The internal port's server: the public one handles the signals and stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def with_internal_port(app: FastAPI, host: str, port: int) -> FastAPI:
    """``app``, its lifespan also serving :func:`create_internal_app` on ``host:port``."""
    server = _InternalServer(
        uvicorn.Config(
            create_internal_app(app),
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    started = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(running: FastAPI) -> AsyncIterator[Any]:
        async with started(running) as state:
            task = asyncio.create_task(server.serve())
            try:
                yield state
            finally:
                server.should_exit = True
                await task

    app.router.lifespan_context = lifespan
    return app


def main(argv: Sequence[str]) -> int:
    """Serve the triage web until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m services.triage web")
    parser.parse_args(argv)
    configure_logging("triage-web")
    settings = WebSettings()
    app = with_internal_port(create_app(settings), settings.internal_host, settings.internal_port)
    run_server(app, settings.host, settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
