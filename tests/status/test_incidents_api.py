"""Operators' incidents and maintenance through the admin API, read back as Statuspage JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

import pytest
from status_helpers import (
    INDICATORS,
    check_component,
    check_incident,
    check_page,
    staff,
)

from conftest import Api, assert_problem

NEW_INCIDENT = {
    "title": "Replies are slow",
    "body": "We are looking into slow replies.",
    "impact": "major",
    "components": ["inference"],
}


def _window(start_in_s: float, length_s: float = 3600) -> dict[str, str]:
    start = datetime.now(UTC) + timedelta(seconds=start_in_s)
    return {
        "scheduled_for": start.isoformat(),
        "scheduled_until": (start + timedelta(seconds=length_s)).isoformat(),
    }


async def test_every_statuspage_view_has_the_statuspage_fields(api: Api) -> None:
    admin = await staff(api)
    opened = await admin.post("/api/v1/admin/incidents", json=NEW_INCIDENT)
    assert opened.status_code == 201, opened.text
    maintenance = {"title": "Database upgrade", "body": "Read-only for an hour.", **_window(7200)}
    assert (await admin.post("/api/v1/admin/maintenances", json=maintenance)).status_code == 201
    public = api.client()

    summary = (await public.get("/api/v2/summary.json")).json()
    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    check_page(summary["page"])
    assert summary["status"]["indicator"] in INDICATORS
    assert summary["status"]["indicator"] == "major"  # the open incident's impact
    ids = [c["id"] for c in summary["components"]]
    assert ids[:4] == ["api", "database", "event_log", "inference"]
    for component in summary["components"]:
        check_component(component)
    [incident] = summary["incidents"]
    check_incident(incident)
    assert incident["name"] == "Replies are slow"
    assert [c["id"] for c in incident["components"]] == ["inference"]
    [planned] = summary["scheduled_maintenances"]
    check_incident(planned, maintenance=True)
    assert planned["status"] == "scheduled"

    status = (await public.get("/api/v2/status.json")).json()
    assert set(status) == {"page", "status"}
    assert set(status["status"]) == {"indicator", "description"}
    components = (await public.get("/api/v2/components.json")).json()
    assert [c["id"] for c in components["components"]] == ids
    for path in ("/api/v2/incidents.json", "/api/v2/incidents/unresolved.json"):
        [found] = (await public.get(path)).json()["incidents"]
        check_incident(found)
    for path, count in (
        ("/api/v2/scheduled-maintenances.json", 1),
        ("/api/v2/scheduled-maintenances/upcoming.json", 1),
        ("/api/v2/scheduled-maintenances/active.json", 0),
    ):
        found = (await public.get(path)).json()["scheduled_maintenances"]
        assert len(found) == count, path


async def test_an_incident_goes_through_its_states_and_leaves_the_unresolved_list(
    api: Api,
) -> None:
    admin = await staff(api, "moderator")
    incident = (await admin.post("/api/v1/admin/incidents", json=NEW_INCIDENT)).json()
    path = f"/api/v1/admin/incidents/{incident['id']}/updates"
    for status in ("identified", "monitoring", "resolved", "postmortem"):
        response = await admin.post(path, json={"status": status, "body": f"Now {status}."})
        assert response.status_code == 201, response.text
        assert response.json()["status"] == status
    final = response.json()
    check_incident(final)
    assert [u["status"] for u in final["incident_updates"]] == [
        "postmortem", "resolved", "monitoring", "identified", "investigating",
    ]  # fmt: skip
    assert final["monitoring_at"] is not None and final["resolved_at"] is not None
    public = api.client()
    assert (await public.get("/api/v2/incidents/unresolved.json")).json()["incidents"] == []
    assert len((await public.get("/api/v2/incidents.json")).json()["incidents"]) == 1
    assert (await public.get("/api/v2/status.json")).json()["status"]["indicator"] == "none"


@pytest.mark.parametrize(
    ("path_to", "update"),
    [
        (["resolved"], {"status": "investigating", "body": "It is back."}),
        (["resolved", "postmortem"], {"status": "postmortem", "body": "More words."}),
        (["resolved", "postmortem"], {"status": "resolved", "body": "Again."}),
    ],
)
async def test_invalid_incident_transitions_are_409(
    api: Api, path_to: list[str], update: dict[str, str]
) -> None:
    admin = await staff(api)
    incident = (await admin.post("/api/v1/admin/incidents", json=NEW_INCIDENT)).json()
    path = f"/api/v1/admin/incidents/{incident['id']}/updates"
    for status in path_to:
        assert (await admin.post(path, json={"status": status, "body": "ok"})).status_code == 201
    body = assert_problem(await admin.post(path, json=update), 409, "invalid_transition")
    assert path_to[-1] in body["detail"]


async def test_maintenance_moves_forward_only(api: Api) -> None:
    admin = await staff(api)
    created = await admin.post(
        "/api/v1/admin/maintenances", json={"title": "Upgrade", **_window(60)}
    )
    maintenance_id = created.json()["id"]
    path = f"/api/v1/admin/maintenances/{maintenance_id}"
    for status in ("in_progress", "verifying", "completed"):
        response = await admin.patch(path, json={"status": status})
        assert response.status_code == 200, response.text
        check_incident(response.json(), maintenance=True)
    assert_problem(
        await admin.patch(path, json={"status": "in_progress"}), 409, "invalid_transition"
    )
    second = await admin.post("/api/v1/admin/maintenances", json={"title": "B", **_window(60)})
    assert_problem(
        await admin.patch(f"/api/v1/admin/maintenances/{second.json()['id']}",
                          json={"status": "verifying"}),
        409,
        "invalid_transition",
    )  # fmt: skip


async def test_the_admin_api_refuses_users_and_visitors(api: Api) -> None:
    user = await api.user()
    for method, path in (
        ("POST", "/api/v1/admin/incidents"),
        ("POST", "/api/v1/admin/incidents/x/updates"),
        ("POST", "/api/v1/admin/maintenances"),
        ("PATCH", "/api/v1/admin/maintenances/x"),
    ):
        body = NEW_INCIDENT if path.endswith("incidents") else {"status": "resolved", "body": "x"}
        if "maintenances" in path:
            body = {"title": "x", **_window(60)} if method == "POST" else {"status": "completed"}
        assert_problem(await user.request(method, path, json=body), 403, "forbidden")
        assert_problem(
            await api.client().request(method, path, json=body), 401, "not_authenticated"
        )


async def test_unknown_ids_and_bad_bodies(api: Api) -> None:
    admin = await staff(api)
    update = {"status": "resolved", "body": "done"}
    assert_problem(
        await admin.post("/api/v1/admin/incidents/nope/updates", json=update), 404, "not_found"
    )
    assert_problem(
        await admin.patch("/api/v1/admin/maintenances/nope", json={"status": "completed"}),
        404,
        "not_found",
    )
    bad = {**NEW_INCIDENT, "impact": "apocalyptic"}
    assert_problem(await admin.post("/api/v1/admin/incidents", json=bad), 422, "validation_error")
    backwards = {"title": "x", **_window(60, -10)}
    assert_problem(
        await admin.post("/api/v1/admin/maintenances", json=backwards), 422, "validation_error"
    )


async def test_the_status_page_and_feed_escape_what_operators_write(api: Api) -> None:
    admin = await staff(api)
    hostile = {**NEW_INCIDENT, "title": "<script>alert(1)</script> & co", "body": "<b>x</b>"}
    assert (await admin.post("/api/v1/admin/incidents", json=hostile)).status_code == 201
    await admin.post("/api/v1/admin/maintenances", json={"title": "Soon <i>", **_window(600)})
    public = api.client()
    page = await public.get("/status")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert (
        "<script>" not in page.text
        and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page.text
    )
    assert "Soon &lt;i&gt;" in page.text
    assert page.text.count('class="bars"') == len(
        (await public.get("/api/v2/components.json")).json()["components"]
    )
    feed = await public.get("/status/feed.atom")
    assert feed.headers["content-type"].startswith("application/atom+xml")
    root = ElementTree.fromstring(feed.content)
    atom = "{http://www.w3.org/2005/Atom}"
    assert root.tag == f"{atom}feed"
    for required in ("id", "title", "updated"):
        assert root.find(f"{atom}{required}") is not None
    titles = [entry.findtext(f"{atom}title") for entry in root.iter(f"{atom}entry")]
    assert "<script>alert(1)</script> & co" in titles and "Soon <i>" in titles
    for entry in root.iter(f"{atom}entry"):
        assert entry.findtext(f"{atom}id") and entry.findtext(f"{atom}updated")


async def test_the_notice_names_the_open_incident_then_nothing(api: Api) -> None:
    public = api.client()
    assert (await public.get("/api/v1/notice")).json()["kind"] == "none"
    admin = await staff(api)
    incident = (await admin.post("/api/v1/admin/incidents", json=NEW_INCIDENT)).json()
    notice = (await public.get("/api/v1/notice")).json()
    assert notice["kind"] == "incident" and notice["level"] == "critical"
    assert notice["incident_id"] == incident["id"]
    assert notice["message"] == NEW_INCIDENT["body"]
    await admin.post(
        f"/api/v1/admin/incidents/{incident['id']}/updates",
        json={"status": "resolved", "body": "Fixed."},
    )
    await admin.post("/api/v1/admin/maintenances", json={"title": "Tonight", **_window(3600)})
    notice = (await public.get("/api/v1/notice")).json()
    assert (notice["kind"], notice["level"], notice["read_only"]) == (
        "upcoming_maintenance", "info", False,
    )  # fmt: skip
