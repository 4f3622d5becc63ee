"""Liveness, readiness and metrics of the triage web."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.db import database_problem
from services.common.http import liveness_response, readiness_response
from services.triage.web.deps import Runtime

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: every background task is running")
async def healthz(runtime: Runtime) -> JSONResponse:
    """200 while the consumers, the outbox relay and housekeeping run; 503 when one
    died (restart the process). Kafka or the database being down is ``/readyz``'s."""
    return liveness_response(runtime.tasks, key="tasks")


@router.get("/readyz", summary="Readiness: database and broker reachable")
async def readyz(runtime: Runtime) -> JSONResponse:
    return readiness_response(
        broker_error=await runtime.broker.check() if "outbox" in runtime.tasks else None,
        database_error=await database_problem(runtime.store.engine),
        tasks=runtime.tasks,
        key="tasks",
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
