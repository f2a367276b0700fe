"""Liveness and readiness probes for load balancers and orchestrators, and Prometheus
metrics: what every role serves (a worker serves nothing else)."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response

from personae.api.deps import ContainerDep
from personae.api.problems import problem_response
from personae.errors import NotAuthenticated, ServiceUnavailable
from personae.services.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
async def readyz(container: ContainerDep) -> JSONResponse | dict[str, str]:
    readiness = await container.health.readiness()
    checks = {"database": readiness.database, "migrations": readiness.migrations}
    if readiness.ready:
        return {"status": "ok", **checks}
    # Not ready is an error like any other: problem+json, with each check spelled out.
    hint = " Run `personae migrate`." if readiness.database == "ok" else ""
    detail = f"Not ready: database {readiness.database}; migrations {readiness.migrations}.{hint}"
    return problem_response(ServiceUnavailable(detail, extra={"ready": False, **checks}))


@router.get("/metrics", include_in_schema=False)
async def metrics(container: ContainerDep, authorization: str | None = Header(None)) -> Response:
    token = container.settings.metrics_token
    if token is not None and not hmac.compare_digest(
        (authorization or "").encode(), f"Bearer {token}".encode()
    ):
        raise NotAuthenticated("/metrics needs the metrics token (PERSONAE_METRICS_TOKEN).")
    await container.queue.export_gauges()
    return Response(await container.status.metrics_text(), media_type=CONTENT_TYPE)
