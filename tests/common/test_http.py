from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from services.common.http import ApiError, BodySizeLimit, bearer_matches, install_error_handlers


def _app(limit: int) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=limit)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.get("/teapot")
    async def teapot() -> None:
        raise ApiError(409, "already claimed", details={"by": "mod2"})

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(1000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_small_body_passes(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", content=b"x" * 1000)
    assert response.status_code == 200
    assert response.json() == {"size": 1000}


async def test_declared_oversize_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", content=b"x" * 1001)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_streamed_oversize_without_length_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 300

    response = await client.post("/echo", content=chunks())
    assert response.status_code == 413


async def test_bad_content_length_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", content=b"{}", headers={"content-length": "abc"})
    assert response.status_code == 400


async def test_api_error_body_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/teapot")
    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "conflict", "message": "already claimed", "details": {"by": "mod2"}}
    }


async def test_unknown_route_uses_the_same_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret-token", True),
        ("bearer s3cret-token", True),
        ("Bearer wrong", False),
        ("Basic s3cret-token", False),
        ("Bearer ", False),
        (None, False),
    ],
)
def test_bearer_matches(header: str | None, ok: bool) -> None:
    assert bearer_matches(header, "s3cret-token") is ok


def test_empty_expected_token_never_matches() -> None:
    assert not bearer_matches("Bearer ", "")
    assert not bearer_matches("Bearer x", "")
