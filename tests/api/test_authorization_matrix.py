"""Who may call what, checked for every route of the app's own route table.

Every API route (each method) × {anonymous, other, owner, moderator, admin}: the owner
has a private character, a chat with a message, a memory, a persona, a token and a
second session; the admin made an incident, a maintenance and a webhook. Each identity
calls each route on the owner's things and gets the outcome its row expects:

- `ok`: done, or a 4xx that is not a refusal of who is asking (not 401, 403 or 404);
- `401`: not signed in; `403`: signed in, not allowed; `404`: not yours, and we do not
  say whether it exists.

A route missing from ROUTES fails the test, naming it: a new route cannot slip by.

To add a route: one row in ROUTES, keyed `"METHOD /path/{param}"` as FastAPI has it,
with its access (PUBLIC, SIGNED_IN, OWNER, OWNER_OR_STAFF, STAFF, ADMIN, or a custom
`_access(...)`) and, when it takes a body, `json=` or `files=`. Path parameters are
filled from `Things` by name (`chat_id` is the owner's chat, ...): a new kind of
thing gets a field there and a line in `_make_things`. A row that destroys what it
acts on (DELETE, revoke) says `fresh=True`: each identity allowed to call it gets new
things first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from conftest import PASSWORD, Api, fleet, wait_for_reply
from personae.app import create_app
from personae.settings import Settings

IDENTITIES = ("anonymous", "other", "owner", "moderator", "admin")
REFUSALS = {401, 403, 404}


def _access(**outcomes: str) -> dict[str, str]:
    assert set(outcomes) == set(IDENTITIES), outcomes
    return outcomes


PUBLIC = _access(anonymous="ok", other="ok", owner="ok", moderator="ok", admin="ok")
SIGNED_IN = _access(anonymous="401", other="ok", owner="ok", moderator="ok", admin="ok")
# The owner's private things: nobody else learns they exist, staff included.
OWNER = _access(anonymous="401", other="404", owner="ok", moderator="404", admin="404")
# Taking a character down: staff find private ones too (reading them they may not).
OWNER_OR_STAFF = _access(anonymous="401", other="404", owner="ok", moderator="ok", admin="ok")
# Reading a private character: open to visitors when public, so anonymous gets 404 too.
READERS = _access(anonymous="404", other="404", owner="ok", moderator="404", admin="404")
STAFF = _access(anonymous="401", other="403", owner="403", moderator="ok", admin="ok")
ADMIN = _access(anonymous="401", other="403", owner="403", moderator="403", admin="ok")

LOREBOOK = b'{"entries": [{"keys": ["tea"], "content": "The shop sells tea."}]}'
CARD = (
    b'{"spec": "chara_card_v3", "spec_version": "3.0", '
    b'"data": {"name": "Imported", "description": "a card", "first_mes": "Hi"}}'
)


# A 1x1 PNG, for the private character's picture.
_TINY_PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4"
    "z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def _later(hours: int) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


@dataclasses.dataclass(frozen=True)
class Row:
    access: dict[str, str]
    json: Any = None
    files: dict[str, Any] | None = None
    fresh: bool = False
    # Called from a new session of the identity (logout would end the shared one).
    own_session: bool = False
    # Ends the identity's other sessions, the shared one too: the new session it was
    # called from (own_session) takes the shared one's place.
    replaces_session: bool = False
    # An answer that never ends (an event stream): only its status is read.
    stream: bool = False
    # Path parameters filled from another of `Things` than their own name.
    params: dict[str, str] = dataclasses.field(default_factory=dict)


ROUTES: dict[str, Row] = {
    # health, docs, status page: open to all
    "GET /healthz": Row(PUBLIC),
    "GET /readyz": Row(PUBLIC),
    "GET /metrics": Row(PUBLIC),  # PERSONAE_METRICS_TOKEN closes it (tests/status)
    "GET /openapi.json": Row(PUBLIC),
    "HEAD /openapi.json": Row(PUBLIC),
    "GET /docs": Row(PUBLIC),
    "GET /docs/start.js": Row(PUBLIC),
    "GET /api/v2/summary.json": Row(PUBLIC),
    "GET /api/v2/status.json": Row(PUBLIC),
    "GET /api/v2/components.json": Row(PUBLIC),
    "GET /api/v2/incidents.json": Row(PUBLIC),
    "GET /api/v2/incidents/unresolved.json": Row(PUBLIC),
    "GET /api/v2/scheduled-maintenances.json": Row(PUBLIC),
    "GET /api/v2/scheduled-maintenances/upcoming.json": Row(PUBLIC),
    "GET /api/v2/scheduled-maintenances/active.json": Row(PUBLIC),
    "GET /api/v1/notice": Row(PUBLIC),
    "GET /status": Row(PUBLIC),
    "GET /status/feed.atom": Row(PUBLIC),
    # accounts
    # (Invalid bodies: a real sign-up or sign-in would replace the caller's session.)
    "POST /api/v1/auth/register": Row(PUBLIC, json={"username": 5, "password": PASSWORD}),
    "POST /api/v1/auth/login": Row(PUBLIC, json={"username": 5, "password": PASSWORD}),
    "POST /api/v1/auth/logout": Row(SIGNED_IN, own_session=True),
    "GET /api/v1/me": Row(SIGNED_IN),
    "GET /api/v1/me/export": Row(SIGNED_IN),
    "PATCH /api/v1/me": Row(SIGNED_IN, json={"show_mature": False}),
    # A wrong password: the account (and the things of the other rows) stays.
    "DELETE /api/v1/me": Row(SIGNED_IN, json={"password": "not the password"}),
    "POST /api/v1/me/password": Row(
        SIGNED_IN, json={"current_password": "not the password", "new_password": "x"}
    ),
    # Logs out the identity's other sessions: called from a session of its own.
    "DELETE /api/v1/me/sessions": Row(
        SIGNED_IN, own_session=True, replaces_session=True, fresh=True
    ),
    # A date that is not one: declaring for real would stand for good.
    "POST /api/v1/me/age": Row(SIGNED_IN, json={"birth_date": "1990-02-30"}),
    "GET /api/v1/me/wellbeing": Row(SIGNED_IN),
    "POST /api/v1/me/wellbeing/dismiss": Row(SIGNED_IN),
    "GET /api/v1/me/sessions": Row(SIGNED_IN),
    "DELETE /api/v1/me/sessions/{session_id}": Row(OWNER, fresh=True),
    "POST /api/v1/tokens": Row(SIGNED_IN, json={"name": "matrix"}),
    "GET /api/v1/tokens": Row(SIGNED_IN),
    "DELETE /api/v1/tokens/{token_id}": Row(OWNER, fresh=True),
    # characters and cards
    "GET /api/v1/characters": Row(PUBLIC),
    "POST /api/v1/characters": Row(SIGNED_IN, json={"name": "New", "description": "x"}),
    "GET /api/v1/characters/{character_id}": Row(READERS),
    "PATCH /api/v1/characters/{character_id}": Row(OWNER, json={"tagline": "edited"}),
    "DELETE /api/v1/characters/{character_id}": Row(OWNER_OR_STAFF, fresh=True),
    "PUT /api/v1/characters/{character_id}/featured": Row(
        _access(anonymous="401", other="403", owner="403", moderator="ok", admin="ok")
    ),
    "DELETE /api/v1/characters/{character_id}/featured": Row(
        _access(anonymous="401", other="403", owner="403", moderator="ok", admin="ok")
    ),
    "POST /api/v1/characters/import": Row(
        SIGNED_IN, files={"file": ("card.json", CARD, "application/json")}
    ),
    "GET /api/v1/characters/{character_id}/card.json": Row(READERS),
    "GET /api/v1/characters/{character_id}/card.png": Row(READERS),
    "GET /api/v1/characters/{character_id}/card.charx": Row(READERS),
    # A private character's picture follows the character.
    "GET /api/v1/images/{image_id}": Row(READERS),
    "GET /api/v1/me/characters/stats": Row(SIGNED_IN),
    "PUT /api/v1/characters/{character_id}/lorebook": Row(
        OWNER, files={"file": ("lorebook.json", LOREBOOK, "application/json")}
    ),
    # chats and messages
    "POST /api/v1/chats": Row(
        OWNER,
        json={"character_id": "{character_id}"},
    ),
    "GET /api/v1/chats": Row(SIGNED_IN),
    "GET /api/v1/chats/{chat_id}": Row(OWNER),
    "PATCH /api/v1/chats/{chat_id}": Row(OWNER, json={"title": "Renamed"}),
    "DELETE /api/v1/chats/{chat_id}": Row(OWNER, fresh=True),
    "GET /api/v1/chats/{chat_id}/messages": Row(OWNER),
    "PUT /api/v1/chats/{chat_id}/messages/{client_id}": Row(OWNER, json={"content": "Hello"}),
    "GET /api/v1/chats/{chat_id}/events": Row(OWNER, stream=True),
    "POST /api/v1/messages/{message_id}/swipes": Row(OWNER),
    "POST /api/v1/messages/{message_id}/continue": Row(OWNER),
    "PATCH /api/v1/messages/{message_id}": Row(OWNER, json={"content": "Hello there"}),
    "DELETE /api/v1/messages/{message_id}": Row(OWNER, fresh=True),
    "PUT /api/v1/messages/{message_id}/rating": Row(OWNER, json={"stars": 3}),
    "POST /api/v1/messages/{message_id}/stop": Row(OWNER),
    # Read-aloud of the owner's message (not a reply: 409 not_a_reply, no synthesis).
    "POST /api/v1/messages/{message_id}/speech": Row(OWNER),
    "GET /api/v1/messages/{message_id}/speech": Row(OWNER),
    "GET /api/v1/messages/{message_id}/speech/{index}": Row(OWNER, params={"index": "zero"}),
    # voices: the list, and a sample refused for its text (nothing synthesised)
    "GET /api/v1/voices": Row(SIGNED_IN),
    "POST /api/v1/voices/sample": Row(
        SIGNED_IN, json={"voice": {"engine": "piper", "voice": "x"}, "text": "a" * 301}
    ),
    "POST /api/v1/messages/{message_id}/pin": Row(OWNER),
    "GET /api/v1/messages/{message_id}/prompt": Row(OWNER, params={"message_id": "reply_id"}),
    "GET /api/v1/queue": Row(PUBLIC),  # staff see more of it
    # voice: a recording's words (not stored; a file that is no audio is a 422 "ok")
    "POST /api/v1/speech/transcriptions": Row(
        SIGNED_IN, files={"file": ("r.webm", b"not audio", "audio/webm")}
    ),
    # group rooms: the owner's room of their private character (docs/rooms.md)
    "POST /api/v1/rooms": Row(OWNER, json={"title": "R", "character_ids": ["{character_id}"]}),
    "GET /api/v1/rooms/{room_id}": Row(OWNER),
    "PATCH /api/v1/rooms/{room_id}": Row(OWNER, json={"title": "Renamed room"}),
    "POST /api/v1/rooms/{room_id}/characters": Row(OWNER, json={"character_id": "{character_id}"}),
    "PATCH /api/v1/rooms/{room_id}/characters/{character_id}": Row(
        OWNER, json={"talkativeness": 0.7}
    ),
    # Its only character: 409 room_needs_a_character, the room unchanged.
    "DELETE /api/v1/rooms/{room_id}/characters/{character_id}": Row(OWNER),
    "POST /api/v1/rooms/{room_id}/invites": Row(OWNER, json={"role": "viewer"}),
    "GET /api/v1/rooms/{room_id}/invites": Row(OWNER),
    "DELETE /api/v1/rooms/{room_id}/invites/{invite_id}": Row(OWNER, fresh=True),
    # A revoked link: 410 for whoever is not a member yet (joining would change the
    # rows after this one), the room for its owner.
    "POST /api/v1/invites/{token}/accept": Row(SIGNED_IN, params={"token": "revoked_token"}),
    "PATCH /api/v1/rooms/{room_id}/members/me": Row(OWNER, json={"persona_name": "Me here"}),
    # The owner as the member: 409 (the owner keeps their role and place).
    "PATCH /api/v1/rooms/{room_id}/members/{member_id}": Row(OWNER, json={"role": "viewer"}),
    "DELETE /api/v1/rooms/{room_id}/members/{member_id}": Row(OWNER),
    "POST /api/v1/rooms/{room_id}/leave": Row(OWNER),
    "POST /api/v1/rooms/{room_id}/turns": Row(OWNER, json={"character_id": "{character_id}"}),
    "POST /api/v1/rooms/{room_id}/auto": Row(OWNER, json={"turns": 1}),
    "DELETE /api/v1/rooms/{room_id}/auto": Row(OWNER),
    "POST /api/v1/rooms/{room_id}/typing": Row(OWNER),
    # personas and memories
    "GET /api/v1/personas": Row(SIGNED_IN),
    "POST /api/v1/personas": Row(SIGNED_IN, json={"name": "Me"}),
    "GET /api/v1/personas/{persona_id}": Row(OWNER),
    "PATCH /api/v1/personas/{persona_id}": Row(OWNER, json={"description": "edited"}),
    "DELETE /api/v1/personas/{persona_id}": Row(OWNER, fresh=True),
    "GET /api/v1/chats/{chat_id}/memories": Row(OWNER),
    "POST /api/v1/chats/{chat_id}/memories": Row(OWNER, json={"content": "Likes tea"}),
    "PATCH /api/v1/memories/{memory_id}": Row(OWNER, json={"content": "Likes green tea"}),
    "DELETE /api/v1/memories/{memory_id}": Row(OWNER, fresh=True),
    # staff: incidents, maintenance, webhooks
    "POST /api/v1/admin/incidents": Row(STAFF, json={"title": "Slow", "body": "Looking"}),
    "GET /api/v1/admin/incidents/{incident_id}": Row(STAFF),
    "POST /api/v1/admin/incidents/{incident_id}/updates": Row(
        STAFF, json={"status": "identified", "body": "Found it"}
    ),
    "POST /api/v1/admin/maintenances": Row(
        STAFF,
        json={"title": "Upgrade", "scheduled_for": _later(1), "scheduled_until": _later(2)},
    ),
    "PATCH /api/v1/admin/maintenances/{maintenance_id}": Row(STAFF, json={"body": "Soon"}),
    "POST /api/v1/admin/webhooks": Row(STAFF, json={"url": "http://127.0.0.1:9/hook"}),
    "GET /api/v1/admin/webhooks": Row(STAFF),
    "DELETE /api/v1/admin/webhooks/{subscription_id}": Row(STAFF, fresh=True),
    # reports, appeals and the moderators' queue
    "POST /api/v1/reports": Row(
        SIGNED_IN, json={"target": "user", "target_id": "{user_id}", "reason": "spam"}
    ),
    "GET /api/v1/reports/mine": Row(SIGNED_IN),
    "POST /api/v1/appeals": Row(SIGNED_IN, json={"category": "violence", "content": "A duel."}),
    "GET /api/v1/moderation/queue": Row(STAFF),
    "GET /api/v1/moderation/audit": Row(STAFF),
    "POST /api/v1/moderation/reports/{report_id}/actions": Row(
        STAFF, json={"action": "dismiss", "note": "checked"}
    ),
    "POST /api/v1/moderation/appeals/{appeal_id}/actions": Row(
        STAFF, json={"action": "uphold", "note": "checked"}
    ),
    # admins only
    "GET /api/v1/admin/capacity": Row(ADMIN),
    "GET /api/v1/admin/models": Row(ADMIN),
    "GET /api/v1/admin/users": Row(ADMIN),
    "PATCH /api/v1/admin/users/{user_id}": Row(ADMIN, json={"role": "user"}),
    "DELETE /api/v1/admin/users/{user_id}/age": Row(ADMIN),
}


@dataclasses.dataclass
class Things:
    """The owner's things (and the admin's), one value per path parameter name."""

    character_id: str
    chat_id: str
    client_id: str
    message_id: str
    reply_id: str
    memory_id: str
    persona_id: str
    token_id: str
    session_id: str
    incident_id: str
    maintenance_id: str
    subscription_id: str
    user_id: str
    report_id: str
    appeal_id: str
    image_id: str
    room_id: str
    invite_id: str
    revoked_token: str
    member_id: str
    zero: str = "0"  # the first clip of a read-aloud


def _api_routes(app: Any) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, through FastAPI's included routers."""
    stack = list(app.routes)
    while stack:
        route = stack.pop(0)
        if hasattr(route, "effective_candidates"):  # an included router (FastAPI >= 0.16x)
            stack[:0] = route.effective_candidates()
            continue
        original = getattr(route, "original_route", route)
        for method in sorted(getattr(original, "methods", None) or ()):
            yield method, route.path


def _created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201, 202), response.text
    body: dict[str, Any] = response.json()
    return body


async def _make_things(api: Api, clients: dict[str, httpx.AsyncClient]) -> Things:
    owner, admin = clients["owner"], clients["admin"]
    character = _created(
        await owner.post(
            "/api/v1/characters",
            json={
                "name": "Bramble",
                "description": "a fox",
                "visibility": "private",
                "avatar": _TINY_PNG,
            },
        )
    )
    chat = _created(await owner.post("/api/v1/chats", json={"character_id": character["id"]}))
    sent = _created(
        await owner.put(f"/api/v1/chats/{chat['id']}/messages/m1", json={"content": "Hi"})
    )
    # Written (by the simulated backend): its prompt is recorded.
    await wait_for_reply(owner, chat["id"], sent["reply"]["id"], timeout_s=60)
    memory = _created(
        await owner.post(f"/api/v1/chats/{chat['id']}/memories", json={"content": "Tea"})
    )
    persona = _created(await owner.post("/api/v1/personas", json={"name": "Wanderer"}))
    token = _created(await owner.post("/api/v1/tokens", json={"name": "t"}))
    second = api.client()
    username = (await owner.get("/api/v1/me")).json()["username"]
    _created(
        await second.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    )
    sessions: list[dict[str, Any]] = (await owner.get("/api/v1/me/sessions")).json()
    other_session = next(item for item in sessions if not item["current"])
    incident = _created(
        await admin.post("/api/v1/admin/incidents", json={"title": "t", "body": "b"})
    )
    maintenance = _created(
        await admin.post(
            "/api/v1/admin/maintenances",
            json={"title": "m", "scheduled_for": _later(1), "scheduled_until": _later(2)},
        )
    )
    webhook = await api.container.webhooks.subscribe("http://127.0.0.1:9/hook")
    other = (await clients["other"].get("/api/v1/me")).json()
    # Filed by another user, so no staff member acts on their own case.
    reported = _created(await owner.post("/api/v1/characters", json={"name": "Loud"}))
    report = _created(
        await clients["other"].post(
            "/api/v1/reports",
            json={"target": "character", "target_id": reported["id"], "reason": "spam"},
        )
    )
    appeal = _created(
        await clients["other"].post(
            "/api/v1/appeals", json={"category": "violence", "content": "A duel at dawn."}
        )
    )
    room = _created(
        await owner.post("/api/v1/rooms", json={"title": "Den", "character_ids": [character["id"]]})
    )
    invite = _created(await owner.post(f"/api/v1/rooms/{room['id']}/invites", json={}))
    revoked = _created(await owner.post(f"/api/v1/rooms/{room['id']}/invites", json={}))
    gone = await owner.delete(f"/api/v1/rooms/{room['id']}/invites/{revoked['id']}")
    assert gone.status_code == 204, gone.text
    return Things(
        room_id=room["id"],
        invite_id=invite["id"],
        revoked_token=revoked["token"],
        member_id=room["owner_id"],
        character_id=character["id"],
        chat_id=chat["id"],
        client_id="m1",
        message_id=sent["message"]["id"],
        reply_id=sent["reply"]["id"],
        memory_id=memory["id"],
        persona_id=persona["id"],
        token_id=token["id"],
        session_id=other_session["id"],
        incident_id=incident["id"],
        maintenance_id=maintenance["id"],
        subscription_id=webhook.id,
        user_id=other["id"],
        report_id=report["id"],
        appeal_id=appeal["id"],
        image_id=character["avatar"].removeprefix("/api/v1/images/").partition("?")[0],
    )


async def _identities(api: Api) -> dict[str, httpx.AsyncClient]:
    clients = {"anonymous": api.client()}
    for name in IDENTITIES[1:]:
        clients[name] = await api.user(f"{name}{id(api) % 10_000}")
    for role in ("moderator", "admin"):
        await api.container.accounts.set_role(f"{role}{id(api) % 10_000}", role)
    return clients


async def _session_of(
    api: Api, clients: dict[str, httpx.AsyncClient], who: str
) -> httpx.AsyncClient:
    """A new signed-in client for `who` (a new client for anonymous)."""
    client = api.client()
    if who == "anonymous":
        return client
    username = (await clients[who].get("/api/v1/me")).json()["username"]
    signed_in = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert signed_in.status_code == 200, signed_in.text
    client.headers["X-CSRF-Token"] = signed_in.json()["csrf_token"]
    return client


def _fill(value: Any, things: Things, params: dict[str, str] | None = None) -> Any:
    """`value` with each `{name}` replaced by the thing of that name (or of params[name])."""
    params = params or {}

    def thing(match: re.Match[str]) -> str:
        return str(getattr(things, params.get(match[1], match[1])))

    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", thing, value)
    if isinstance(value, dict):
        return {key: _fill(item, things, params) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, things, params) for item in value]
    return value


def _outcome(status: int) -> str:
    assert status < 500, status
    return str(status) if status in REFUSALS else "ok"


async def _call(client: httpx.AsyncClient, method: str, path: str, row: Row, things: Things) -> int:
    path = _fill(path, things, row.params)
    if row.stream:
        return await _stream_status(client, method, path)
    options: dict[str, Any] = {}
    if row.json is not None:
        options["json"] = _fill(row.json, things)
    if row.files is not None:
        options["files"] = row.files
    response = await client.request(method, path, **options)
    return response.status_code


async def _stream_status(client: httpx.AsyncClient, method: str, path: str) -> int:
    """The status of an answer that never ends, then a disconnect (httpx's ASGI
    transport waits for the whole answer)."""
    app = client._transport.app  # type: ignore[attr-defined]
    cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    headers = [(b"host", b"testserver"), (b"cookie", cookies.encode())]
    started = asyncio.Event()
    status: list[int] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await started.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            started.set()

    async with asyncio.timeout(60):
        await app(scope, receive, send)
    return status[0]


async def test_every_route_is_in_the_table(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings())
    routes = {f"{method} {path}" for method, path in _api_routes(app)}
    assert len(routes) > 50
    missing = sorted(routes - ROUTES.keys())
    assert not missing, f"routes missing from ROUTES in {__name__}: {missing}"
    stale = sorted(ROUTES.keys() - routes)
    assert not stale, f"rows of ROUTES that match no route: {stale}"


async def test_each_identity_gets_what_its_row_says(make_settings: Callable[..., Settings]) -> None:
    async with fleet(
        make_settings,
        {"sim": {"tokens_per_second": 1000.0, "slots": 4}},
        register_rate_per_ip="1000/hour",
        login_rate_per_ip="1000/minute",
        webhook_allow_private=True,
        queue_max_per_user=1000,
        send_rate_per_user="1000/minute",
        report_rate_per_user="1000/hour",
    ) as (api, _urls):
        app = api.app
        clients = await _identities(api)
        things = await _make_things(api, clients)
        wrong: list[str] = []
        checked = 0
        for method, path in _api_routes(app):
            row = ROUTES[f"{method} {path}"]
            # Refusals first: they must change nothing the callers after them rely on.
            for who in sorted(IDENTITIES, key=lambda name: row.access[name] == "ok"):
                expected = row.access[who]
                if row.fresh and expected == "ok":
                    things = await _make_things(api, clients)  # the last call's are gone
                client = await _session_of(api, clients, who) if row.own_session else clients[who]
                status = await _call(client, method, path, row, things)
                if row.replaces_session and who != "anonymous":
                    clients[who] = client
                checked += 1
                if _outcome(status) != expected:
                    wrong.append(f"{method} {path} as {who}: {status}, expected {expected}")
            if row.fresh:
                things = await _make_things(api, clients)
        assert not wrong, "\n".join(wrong)
        assert checked >= 5 * len(ROUTES)
