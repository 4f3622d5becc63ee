"""A service's API reference at ``/docs``, served from this package: Swagger UI
(vendored, see ``VENDORED.md`` here) and a small start script, so the page works
offline and under a strict Content-Security-Policy (no CDN, no inline script).

FastAPI's own ``/docs`` loads Swagger UI from a CDN with an inline script; a
service turns it off (``docs_url=None``) and calls :func:`install_api_docs`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response

HERE = Path(__file__).resolve().parent
#: What ``/docs/assets/<name>`` may serve, with its media type.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "docs.js": "text/javascript",
    "docs.css": "text/css",
    "swagger-ui.LICENSE": "text/plain",
    "swagger-ui-bundle.js.LICENSE": "text/plain",
}
#: The page's own policy: everything from this origin, nothing inline, nothing evaluated.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} · API reference</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="stylesheet" href="/docs/assets/docs.css">
</head>
<body>
  <main id="swagger-ui" data-openapi="{openapi}" aria-label="API reference">
    <noscript>The API reference needs JavaScript; the raw description is at
      <a href="{openapi}">{openapi}</a>.</noscript>
  </main>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/docs/assets/docs.js"></script>
</body>
</html>
"""


def docs_page(title: str, openapi_url: str) -> str:
    from html import escape  # noqa: PLC0415 - only here

    return _PAGE.format(title=escape(title), openapi=escape(openapi_url))


def install_api_docs(app: FastAPI, *, path: str = "/docs") -> None:
    """Serve the API reference at ``path`` and its assets under ``path/assets``."""
    openapi_url = app.openapi_url or "/openapi.json"
    headers = {"Content-Security-Policy": CSP, "Cache-Control": "no-cache"}

    @app.get(path, include_in_schema=False)
    async def api_docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.title, openapi_url), headers=headers)

    @app.get(path + "/assets/{name}", include_in_schema=False)
    async def api_docs_asset(name: str) -> Response:
        media_type = ASSETS.get(name)
        if media_type is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(
            HERE / name,
            media_type=media_type,
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )
