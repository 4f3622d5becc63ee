"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.ingest.deps import Runtime

router = APIRouter()


async def _status(runtime: Runtime) -> tuple[bool, dict[str, Any]]:
    broker_error = await runtime.broker.check()
    dedupe_ready = await runtime.ready.wait(0)
    ready = broker_error is None and dedupe_ready
    body: dict[str, Any] = {
        "status": "ok" if ready else "degraded",
        "broker": {"connected": broker_error is None, "error": broker_error},
        "dedupe": {"ready": dedupe_ready},
    }
    return ready, body


@router.get("/healthz", summary="Liveness, with broker connectivity")
async def healthz(runtime: Runtime) -> dict[str, Any]:
    """Always 200 while the process serves; ``broker.connected`` says if Kafka answers.

    A liveness probe must not fail because Kafka is down: restarting ingest
    would not bring Kafka back. Use ``/readyz`` to route traffic.
    """
    _, body = await _status(runtime)
    return body


@router.get("/readyz", summary="Readiness: broker reachable and dedupe memory rebuilt")
async def readyz(runtime: Runtime) -> JSONResponse:
    ready, body = await _status(runtime)
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
