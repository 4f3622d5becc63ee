"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.http import task_states
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
        "tasks": task_states(runtime.tasks),
    }
    return ready, body


@router.get("/healthz", summary="Liveness: every source and the dedupe tail run")
async def healthz(runtime: Runtime) -> JSONResponse:
    """200 while every background task (the sources, the dedupe tail) runs, with
    ``broker.connected`` saying if Kafka answers; 503 when one has ended, named in
    ``tasks`` (restart the process).

    Kafka being down does not fail liveness: restarting ingest would not bring
    Kafka back. Use ``/readyz`` to route traffic.
    """
    _, body = await _status(runtime)
    alive = all(state == "running" for state in body["tasks"].values())
    if not alive:
        body["status"] = "dead"
    return JSONResponse(body, status_code=200 if alive else 503)


@router.get("/readyz", summary="Readiness: broker reachable and dedupe memory rebuilt")
async def readyz(runtime: Runtime) -> JSONResponse:
    ready, body = await _status(runtime)
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
