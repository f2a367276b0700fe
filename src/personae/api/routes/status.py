"""Status: the Statuspage v2 JSON, the banner's notice, the status page and its feed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from personae.api.deps import ContainerDep
from personae.api.schemas import statuspage as views
from personae.api.schemas.status import NoticePublic
from personae.api.status_render import render_feed, render_page

router = APIRouter(tags=["status"])
v2 = "/api/v2"
Json = dict[str, Any]


@router.get(f"{v2}/summary.json")
async def summary(container: ContainerDep) -> Json:
    return views.summary(await container.status.overview())


@router.get(f"{v2}/status.json")
async def page_status(container: ContainerDep) -> Json:
    overview = await container.status.overview()
    return {"page": views.page(overview), "status": views.status(overview)}


@router.get(f"{v2}/components.json")
async def components(container: ContainerDep) -> Json:
    overview = await container.status.overview()
    items = [views.component(c, overview.page_id) for c in overview.components]
    return {"page": views.page(overview), "components": items}


@router.get(f"{v2}/incidents.json")
async def incidents(container: ContainerDep) -> Json:
    overview = await container.status.overview()
    items = [views.incident(v, overview) for v in overview.incidents]
    return {"page": views.page(overview), "incidents": items}


@router.get(f"{v2}/incidents/unresolved.json")
async def unresolved_incidents(container: ContainerDep) -> Json:
    overview = await container.status.overview()
    items = [views.incident(v, overview) for v in overview.unresolved]
    return {"page": views.page(overview), "incidents": items}


@router.get(f"{v2}/scheduled-maintenances.json")
async def scheduled_maintenances(container: ContainerDep) -> Json:
    overview = await container.status.overview()
    return {"page": views.page(overview), "scheduled_maintenances": views.maintenances(overview)}


@router.get(f"{v2}/scheduled-maintenances/upcoming.json")
async def upcoming_maintenances(container: ContainerDep) -> Json:
    overview = await container.status.overview()
    items = views.maintenances(overview, ("scheduled",))
    return {"page": views.page(overview), "scheduled_maintenances": items}


@router.get(f"{v2}/scheduled-maintenances/active.json")
async def active_maintenances(container: ContainerDep) -> Json:
    overview = await container.status.overview()
    items = views.maintenances(overview, ("in_progress", "verifying"))
    return {"page": views.page(overview), "scheduled_maintenances": items}


@router.get("/api/v1/notice")
async def notice(container: ContainerDep) -> NoticePublic:
    """What the web app's banner should show now (incident, maintenance, slow replies)."""
    return NoticePublic.model_validate(await container.status.notice())


@router.get("/status", response_class=HTMLResponse, include_in_schema=False)
async def status_page(container: ContainerDep) -> HTMLResponse:
    """The status page: component states, 90 days of uptime, incidents, maintenance."""
    overview = await container.status.overview()
    return HTMLResponse(render_page(overview, await container.status.uptime()))


@router.get("/status/feed.atom", include_in_schema=False)
async def status_feed(container: ContainerDep) -> Response:
    feed = render_feed(await container.status.overview())
    return Response(feed, media_type="application/atom+xml")
