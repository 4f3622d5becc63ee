"""``python -m services.sandbox``: serve the sandbox platform (port 8003)."""

from __future__ import annotations

import logging

from services.common.http import run_server
from services.common.logs import configure_logging
from services.sandbox import SandboxSettings, create_app

log = logging.getLogger(__name__)


def main() -> None:
    configure_logging("sandbox")
    settings = SandboxSettings()
    log.info(
        "SANDBOX platform (not X, not Mastodon) on http://%s:%d, media under %s",
        settings.host,
        settings.port,
        settings.media_dir,
    )
    run_server(create_app(settings), settings.host, settings.port)


if __name__ == "__main__":
    main()
