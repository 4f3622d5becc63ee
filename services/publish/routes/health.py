"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.db import database_problem
from services.common.http import liveness_response, readiness_response
from services.publish.deps import Runtime

router = APIRouter()


@router.get("/healthz", summary="Liveness: every consumer is running")
async def healthz(runtime: Runtime) -> JSONResponse:
    """200 while every consumer task runs; 503 when one has died (restart the process).

    Kafka or the database being down does not fail liveness (a restart would not
    bring them back): see ``/readyz``.
    """
    return liveness_response(runtime.tasks, key="consumers")


@router.get("/readyz", summary="Readiness: broker and ledger database reachable")
async def readyz(runtime: Runtime) -> JSONResponse:
    return readiness_response(
        broker_error=await runtime.broker.check(),
        database_error=await database_problem(runtime.ledger.engine),
        tasks=runtime.tasks,
        key="consumers",
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
