"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from personae.api.deps import ContainerDep
from personae.api.problems import problem_response
from personae.errors import ServiceUnavailable

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
