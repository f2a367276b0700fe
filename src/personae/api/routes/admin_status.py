"""The operators' status API: incidents and maintenance (admins and moderators), and
the capacity plan (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas import statuspage as views
from personae.api.schemas.capacity import CapacityPlanPublic
from personae.api.schemas.models import ModelsPublic
from personae.api.schemas.status import (
    IncidentCreate,
    IncidentUpdateCreate,
    MaintenanceCreate,
    MaintenanceUpdate,
    WebhookCreate,
)
from personae.errors import Forbidden
from personae.services import capacity
from personae.services.models import models_view
from personae.storage.repos.accounts import UserRecord

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
Json = dict[str, Any]
_STAFF = frozenset({"admin", "moderator"})


async def _staff(user: CurrentUser) -> UserRecord:
    if user.role not in _STAFF:
        raise Forbidden("Only admins and moderators manage incidents and maintenance.")
    return user


Staff = Annotated[UserRecord, Depends(_staff)]


@router.post("/incidents", status_code=status.HTTP_201_CREATED)
async def open_incident(body: IncidentCreate, _user: Staff, container: ContainerDep) -> Json:
    view = await container.incidents.open(
        body.title, body.body, status=body.status, impact=body.impact, components=body.components
    )
    return views.incident(view, await container.status.overview())


@router.get("/incidents/{incident_id}")
async def get_incident(incident_id: str, _user: Staff, container: ContainerDep) -> Json:
    view = await container.incidents.get(incident_id)
    return views.incident(view, await container.status.overview())


@router.post("/incidents/{incident_id}/updates", status_code=status.HTTP_201_CREATED)
async def post_incident_update(
    incident_id: str, body: IncidentUpdateCreate, _user: Staff, container: ContainerDep
) -> Json:
    view = await container.incidents.post_update(
        incident_id, body.status, body.body, impact=body.impact
    )
    return views.incident(view, await container.status.overview())


@router.post("/maintenances", status_code=status.HTTP_201_CREATED)
async def schedule_maintenance(
    body: MaintenanceCreate, _user: Staff, container: ContainerDep
) -> Json:
    record = await container.incidents.schedule_maintenance(
        body.title,
        body.body,
        scheduled_for=body.scheduled_for,
        scheduled_until=body.scheduled_until,
        components=body.components,
        status=body.status,
    )
    return views.maintenance(record, await container.status.overview())


@router.patch("/maintenances/{maintenance_id}")
async def change_maintenance(
    maintenance_id: str, body: MaintenanceUpdate, _user: Staff, container: ContainerDep
) -> Json:
    record = await container.incidents.change_maintenance(
        maintenance_id, **body.model_dump(exclude_unset=True)
    )
    return views.maintenance(record, await container.status.overview())


@router.post("/webhooks", status_code=status.HTTP_201_CREATED)
async def subscribe_webhook(body: WebhookCreate, _user: Staff, container: ContainerDep) -> Json:
    """Post every incident change to `url` (retried with backoff while it fails)."""
    record = await container.webhooks.subscribe(body.url)
    return {"id": record.id, "url": record.url, "created_at": views.iso(record.created_at)}


@router.get("/webhooks")
async def list_webhooks(_user: Staff, container: ContainerDep) -> list[Json]:
    return [
        {"id": s.id, "url": s.url, "created_at": views.iso(s.created_at)}
        for s in await container.webhooks.subscriptions()
    ]


@router.delete("/webhooks/{subscription_id}", status_code=status.HTTP_204_NO_CONTENT)
async def unsubscribe_webhook(subscription_id: str, _user: Staff, container: ContainerDep) -> None:
    await container.webhooks.unsubscribe(subscription_id)


async def _admin(user: CurrentUser) -> UserRecord:
    if user.role != "admin":
        raise Forbidden("Only admins see the capacity plan and the models.")
    return user


Admin = Annotated[UserRecord, Depends(_admin)]


@router.get("/capacity")
async def capacity_plan(
    _user: Annotated[UserRecord, Depends(_admin)],
    container: ContainerDep,
    days: Annotated[float, Query(gt=0, le=90, description="the window read")] = 7.0,
    growth_percent: Annotated[float, Query(gt=-100, le=1000, description="a month")] = 0.0,
    months: Annotated[int, Query(ge=0, le=36)] = 6,
    target_wait_s: Annotated[float, Query(ge=0, le=3600, description="p95 wait")] = 10.0,
    slots: Annotated[int | None, Query(ge=1, le=100_000, description="not the fleet's")] = None,
) -> CapacityPlanPublic:
    """Backend slots the busiest hour needs now and each month ahead (M/M/c, Erlang C)."""
    plan = await capacity.plan_capacity(
        container.database,
        days=days,
        slots=slots or capacity.fleet_slots(container.router, container.settings),
        monthly_growth=growth_percent / 100.0,
        months=months,
        target_wait_s=target_wait_s,
    )
    return CapacityPlanPublic.model_validate(plan)


@router.get("/models")
async def models(_user: Admin, container: ContainerDep) -> ModelsPublic:
    """Which model answers on each backend, and what a bigger one from the catalogue
    would give (`personae models list`)."""
    return ModelsPublic.model_validate(models_view(container.router, container.settings))
