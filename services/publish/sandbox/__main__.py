"""``python -m services.publish.sandbox``: serve the sandbox platform (port 8003)."""

from __future__ import annotations

import logging

import uvicorn

from services.publish.sandbox import SandboxSettings, create_app

log = logging.getLogger(__name__)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = SandboxSettings()
    log.info(
        "SANDBOX platform (not X, not Mastodon) on http://%s:%d, media under %s",
        settings.host,
        settings.port,
        settings.media_dir,
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


if __name__ == "__main__":
    main()
