"""Liveness, readiness and metrics of the triage web.

The public port answers only whether the web is alive and ready (for the
compose and Kubernetes probes), with no error text. The details (each task's
state, what failed) and the Prometheus metrics are on the internal port
(``TRIAGE_INTERNAL_PORT``), which nothing outside the deployment reaches."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.common.db import database_problem
from services.common.http import liveness_response, readiness_response
from services.triage.web.deps import TriageRuntime

#: The public port's: status only.
router = APIRouter(tags=["health"])
#: The internal port's: the details and the metrics.
internal = APIRouter()


def _runtime(request: Request) -> TriageRuntime | None:
    """The public app's running pieces (None until its lifespan has started them)."""
    return getattr(request.app.state, "runtime", None)


async def _liveness(runtime: TriageRuntime | None) -> JSONResponse:
    if runtime is None:
        return JSONResponse({"status": "starting", "tasks": {}}, status_code=503)
    return liveness_response(runtime.tasks, key="tasks")


async def _readiness(runtime: TriageRuntime | None) -> JSONResponse:
    if runtime is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    return readiness_response(
        broker_error=await runtime.broker.check() if "outbox" in runtime.tasks else None,
        database_error=await database_problem(runtime.store.engine),
        tasks=runtime.tasks,
        key="tasks",
    )


def _status_only(response: JSONResponse) -> JSONResponse:
    """The answer without its details: ``ok``, ``degraded``, ``dead`` or ``starting``."""
    status = json.loads(bytes(response.body))["status"]
    return JSONResponse({"status": status}, status_code=response.status_code)


@router.get("/healthz", summary="Liveness: every background task is running")
async def healthz(request: Request) -> JSONResponse:
    """200 while the consumers, the outbox relay and housekeeping run; 503 when one
    died (restart the process). Kafka or the database being down is ``/readyz``'s."""
    return _status_only(await _liveness(_runtime(request)))


@router.get("/readyz", summary="Readiness: database and broker reachable")
async def readyz(request: Request) -> JSONResponse:
    return _status_only(await _readiness(_runtime(request)))


@internal.get("/healthz")
async def internal_healthz(request: Request) -> JSONResponse:
    return await _liveness(_runtime(request))


@internal.get("/readyz")
async def internal_readyz(request: Request) -> JSONResponse:
    return await _readiness(_runtime(request))


@internal.get("/metrics")
async def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
