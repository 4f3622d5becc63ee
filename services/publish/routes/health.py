"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from services.common.http import task_states
from services.publish.deps import Runtime

router = APIRouter()


@router.get("/healthz", summary="Liveness: every consumer is running")
async def healthz(runtime: Runtime) -> JSONResponse:
    """200 while every consumer task runs; 503 when one has died (restart the process).

    Kafka or the database being down does not fail liveness (a restart would not
    bring them back): see ``/readyz``.
    """
    consumers = task_states(runtime.tasks)
    alive = all(state == "running" for state in consumers.values())
    body = {"status": "ok" if alive else "dead", "consumers": consumers}
    return JSONResponse(body, status_code=200 if alive else 503)


@router.get("/readyz", summary="Readiness: broker and ledger database reachable")
async def readyz(runtime: Runtime) -> JSONResponse:
    broker_error = await runtime.broker.check()
    database_error: str | None = None
    try:
        await runtime.ledger.ping()
    except (SQLAlchemyError, OSError) as exc:
        database_error = f"{type(exc).__name__}: {exc}"
    ready = broker_error is None and database_error is None
    body: dict[str, Any] = {
        "status": "ok" if ready else "degraded",
        "broker": {"connected": broker_error is None, "error": broker_error},
        "database": {"connected": database_error is None, "error": database_error},
        "consumers": task_states(runtime.tasks),
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
