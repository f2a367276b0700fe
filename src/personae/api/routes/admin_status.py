"""The operators' status API: incidents and maintenance (admins and moderators)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status

from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas import statuspage as views
from personae.api.schemas.status import (
    IncidentCreate,
    IncidentUpdateCreate,
    MaintenanceCreate,
    MaintenanceUpdate,
    WebhookCreate,
)
from personae.errors import Forbidden
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
