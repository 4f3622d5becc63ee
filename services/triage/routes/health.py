"""Liveness, readiness and metrics of the triage web."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from services.common.http import task_states
from services.triage.deps import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: every background task is running")
async def healthz(runtime: Runtime) -> JSONResponse:
    """200 while the consumers, the outbox relay and housekeeping run; 503 when one
    died (restart the process). Kafka or the database being down is ``/readyz``'s."""
    tasks = task_states(runtime.tasks)
    alive = all(state == "running" for state in tasks.values())
    return JSONResponse(
        {"status": "ok" if alive else "dead", "tasks": tasks}, status_code=200 if alive else 503
    )


@router.get("/readyz", summary="Readiness: database and broker reachable")
async def readyz(runtime: Runtime) -> JSONResponse:
    broker_error = await runtime.broker.check() if "outbox" in runtime.tasks else None
    database_error: str | None = None
    try:
        async with runtime.store.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        database_error = f"{type(exc).__name__}: {exc}"
    ready = broker_error is None and database_error is None
    body: dict[str, Any] = {
        "status": "ok" if ready else "degraded",
        "broker": {"connected": broker_error is None, "error": broker_error},
        "database": {"connected": database_error is None, "error": database_error},
        "tasks": task_states(runtime.tasks),
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
