"""No user input can stall the server: hostile patterns, files and JSON get a clear
answer while the event loop stays free (/healthz, answered on the same loop as the
work in an in-process app, keeps answering within two seconds), and nothing is stored."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import struct
import time
import zipfile
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from conftest import POSTGRES_URL, Api, assert_problem, fleet, wait_for_reply
from personae.app import create_app
from personae.errors import JsonTooDeep
from personae.settings import Settings
from personae.storage.repos import accounts as account_repo
from personae.storage.repos import characters as character_repo

# A stalled loop answers in seconds: the catastrophic regex in `re` ran 14 s, and CPU
# work kept on the loop would hold it for its whole budget (cpu_budget_s, 5 s). Two
# seconds leaves room for a loaded machine: with the suite's workers at two per core,
# 0.5 s failed once (a 0.6 s answer), as 100 ms had failed before on PostgreSQL.
HEALTH_BOUND_S = 2.0
IMPORT = "/api/v1/characters/import"
ONE_BACKEND = {"sim": {"slots": 2}}


@asynccontextmanager
async def health_stays_fast(client: httpx.AsyncClient) -> AsyncIterator[list[float]]:
    """Poll /healthz while the block runs; on leaving, every answer came within the bound."""
    latencies: list[float] = []
    done = asyncio.Event()

    async def poll() -> None:
        while True:
            started = time.perf_counter()
            response = await client.get("/healthz")
            assert response.status_code == 200
            latencies.append(time.perf_counter() - started)
            if done.is_set():
                return
            await asyncio.sleep(0.01)

    poller = asyncio.create_task(poll())
    await asyncio.sleep(0)
    try:
        yield latencies
    finally:
        done.set()
        await poller
    assert latencies, "/healthz was never asked"
    assert max(latencies) < HEALTH_BOUND_S, sorted(latencies)[-5:]


async def _owned(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/characters", params={"owner": "me"})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _deep_json(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _card_text(extensions: str) -> str:
    return (
        '{"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Deep", '
        f'"first_mes": "Hello.", "extensions": {extensions}}}}}'
    )


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(card_text: str, *, empty_chunks: int = 0) -> bytes:
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    pixels = _chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00"))
    card = _chunk(b"tEXt", b"chara\x00" + base64.b64encode(card_text.encode()))
    filler = _chunk(b"prVt", b"") * empty_chunks
    return b"\x89PNG\r\n\x1a\n" + header + filler + pixels + card + _chunk(b"IEND", b"")


def _charx(card_text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("card.json", card_text)
    return buffer.getvalue()


# --- user regular expressions ---------------------------------------------------


def _book(*keys: str) -> dict[str, Any]:
    entries = [{"keys": [key], "content": f"Lore {i}.", "id": i} for i, key in enumerate(keys)]
    return {"name": "traps", "entries": entries}


async def test_a_catastrophic_lorebook_regex_and_a_4000_character_message_stall_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    # /(a+)+$/ backtracks for ever in Python's `re` (holding the GIL: no thread helps);
    # RE2 runs it in linear time. The backreference is beyond RE2: `regex` runs it,
    # cut off by its timeout.
    book = _book("/(a+)+$/", r"/(a+)+\1$/", "/(a|aa)+$/i")
    async with fleet(make_settings, ONE_BACKEND) as (api, _urls):
        alice = await api.user("alice")
        created = await alice.post(
            "/api/v1/characters",
            json={"name": "Trap", "first_message": "a" * 500, "character_book": book},
        )
        assert created.status_code == 201, created.text
        chat = await alice.post("/api/v1/chats", json={"character_id": created.json()["id"]})
        chat_id = chat.json()["id"]
        async with health_stays_fast(api.client()):
            sent = await alice.put(
                f"/api/v1/chats/{chat_id}/messages/trap-1", json={"content": "a" * 3999 + "!"}
            )
            assert sent.status_code == 202, sent.text
            reply = await wait_for_reply(alice, chat_id, sent.json()["reply"]["id"], timeout_s=60)
        assert reply["status"] == "complete", reply


# --- PNG chunks -------------------------------------------------------------------


async def test_a_png_of_700000_empty_chunks_is_refused_early_and_stores_nothing(
    make_settings: Callable[..., Settings],
) -> None:
    image = _png(_card_text("{}"), empty_chunks=700_000)
    app = create_app(make_settings(max_upload_bytes=16 * 1_048_576))
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        async with health_stays_fast(api.client()):
            response = await alice.post(IMPORT, files={"file": ("many.png", image)})
        body = assert_problem(response, 422, "png_too_many_chunks")
        assert "10000" in body["detail"]
        assert await _owned(alice) == []
        await api.aclose()


async def test_a_png_within_the_chunk_limit_still_imports(api: Api) -> None:
    alice = await api.user("alice")
    response = await alice.post(
        IMPORT, files={"file": ("few.png", _png(_card_text("{}"), empty_chunks=9_000))}
    )
    assert response.status_code == 201, response.text


# --- nesting depth ----------------------------------------------------------------


async def test_extensions_1000_deep_in_a_character_create_is_422_and_stores_nothing(
    api: Api,
) -> None:
    alice = await api.user("alice")
    body = '{"name": "Deep", "extensions": ' + _deep_json(1000) + "}"
    async with health_stays_fast(api.client()):
        created = await alice.post(
            "/api/v1/characters", content=body, headers={"Content-Type": "application/json"}
        )
        again = await alice.post(
            "/api/v1/characters", content=body, headers={"Content-Type": "application/json"}
        )
    assert "64" in assert_problem(created, 422, "json_too_deep")["detail"]
    assert_problem(again, 422, "json_too_deep")
    assert await _owned(alice) == []


@pytest.mark.parametrize("depth", [64, 65])
async def test_a_body_may_nest_64_levels_and_no_more(api: Api, depth: int) -> None:
    alice = await api.user("alice")
    ok = await alice.post("/api/v1/characters", json={"name": "Fine", "extensions": {}})
    path = f"/api/v1/characters/{ok.json()['id']}"
    # The body is one level, `extensions` the next: the deepest `{"a": 1}` is at `depth`.
    extensions = json.loads(_deep_json(depth - 1))
    created = await alice.post(
        "/api/v1/characters", json={"name": "Deep", "extensions": extensions}
    )
    book = {"entries": [], "extensions": json.loads(_deep_json(depth - 2))}
    changed = await alice.patch(path, json={"character_book": book})
    if depth <= 64:
        assert created.status_code == 201, created.text
        assert changed.status_code == 200, changed.text
        assert (await alice.get(path)).json()["character_book"]["extensions"] == book["extensions"]
        return
    assert_problem(created, 422, "json_too_deep")
    assert_problem(changed, 422, "json_too_deep")
    assert [c["name"] for c in await _owned(alice)] == ["Fine"]
    assert (await alice.get(path)).json()["character_book"] is None


async def test_the_service_checks_depth_before_any_write(api: Api) -> None:
    """Whatever the caller (not only the HTTP body reader), nothing too deep is stored."""
    alice = await api.user("alice")
    me = (await alice.get("/api/v1/me")).json()
    async with api.container.database.read() as tx:
        owner = await account_repo.get_user(tx, me["id"])
    assert owner is not None
    with pytest.raises(JsonTooDeep):
        await api.container.characters.create(
            owner, {"name": "Deep", "extensions": json.loads(_deep_json(65))}
        )
    assert await _owned(alice) == []


@pytest.mark.parametrize("container", ["json", "png", "charx"])
async def test_a_card_1000_deep_is_422_in_every_container_and_stores_nothing(
    api: Api, container: str
) -> None:
    alice = await api.user("alice")
    text = _card_text(_deep_json(1000))
    data = {"json": text.encode(), "png": _png(text), "charx": _charx(text)}[container]
    async with health_stays_fast(api.client()):
        response = await alice.post(IMPORT, files={"file": (f"deep.{container}", data)})
    assert_problem(response, 422, "json_too_deep")
    assert await _owned(alice) == []


async def test_a_lorebook_file_1000_deep_is_422(api: Api) -> None:
    alice = await api.user("alice")
    created = await alice.post("/api/v1/characters", json={"name": "Keeper"})
    path = f"/api/v1/characters/{created.json()['id']}/lorebook"
    book = '{"spec": "lorebook_v3", "data": {"entries": [], "extensions": ' + _deep_json(1000)
    response = await alice.put(path, files={"file": ("book.json", (book + "}}").encode())})
    assert_problem(response, 422, "json_too_deep")
    assert (await alice.get(f"/api/v1/characters/{created.json()['id']}")).json()[
        "character_book"
    ] is None


# --- NaN and Infinity -------------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_nan_or_infinity_in_extensions_is_422_and_stores_nothing(
    api: Api, number: str
) -> None:
    alice = await api.user("alice")
    body = '{"name": "Odd", "extensions": {"weight": ' + number + "}}"
    created = await alice.post(
        "/api/v1/characters", content=body, headers={"Content-Type": "application/json"}
    )
    assert_problem(created, 422, "json_not_finite")
    card = _card_text('{"weight": ' + number + "}").encode()
    imported = await alice.post(IMPORT, files={"file": ("odd.json", card)})
    assert_problem(imported, 422, "json_not_finite")
    assert await _owned(alice) == []


def _strict_loads(text: str | bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} in the output")

    return json.loads(text, parse_constant=refuse)


async def test_data_stored_before_the_limits_never_breaks_a_list_or_an_export(api: Api) -> None:
    """Rows written before the limits existed (too deep; NaN where the database kept it)
    are shown cut to null; exports stay valid JSON; the public list answers everybody."""
    alice = await api.user("alice")
    created = await alice.post("/api/v1/characters", json={"name": "Old", "tags": ["old"]})
    character_id = created.json()["id"]
    stored: dict[str, Any] = {"deep": json.loads(_deep_json(300)), "fine": [1, 2]}
    if not POSTGRES_URL:  # PostgreSQL's json type never took NaN: only SQLite kept it
        stored["weight"] = float("nan")
    async with api.container.database.write() as tx:
        await character_repo.update_character(tx, character_id, {"extensions": stored})

    listed = await api.client().get("/api/v1/characters")
    assert listed.status_code == 200, listed.text
    (shown,) = [c for c in listed.json()["items"] if c["id"] == character_id]
    assert shown["extensions"]["fine"] == [1, 2]
    assert shown["extensions"].get("weight") is None
    assert "deep" in json.dumps(shown["extensions"])

    for path in ("card.json", "card.json?spec=v2", "card.png"):
        download = await alice.get(f"/api/v1/characters/{character_id}/{path}")
        assert download.status_code == 200, (path, download.text)
    card = _strict_loads((await alice.get(f"/api/v1/characters/{character_id}/card.json")).content)
    assert card["data"]["extensions"]["fine"] == [1, 2]
    export = await alice.get("/api/v1/me/export")
    assert export.status_code == 200
    (exported,) = _strict_loads(export.content)["characters"]
    assert exported["card"]["data"]["extensions"]["fine"] == [1, 2]


# --- the event-loop watchdog ------------------------------------------------------


async def test_the_loop_lag_watchdog_shows_in_metrics_and_logs_a_blocked_loop(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="personae.loop")
    await asyncio.sleep(0.25)  # a few measurements of an idle loop
    time.sleep(0.4)  # noqa: ASYNC251 - the point: a loop held by blocking work
    await asyncio.sleep(0.25)
    warnings = [r for r in caplog.records if r.name == "personae.loop"]
    assert warnings, "a loop blocked for 400 ms was not logged"
    assert "blocked" in warnings[0].getMessage()
    assert warnings[0].lag_ms >= 100
    metrics = (await api.client().get("/metrics")).text
    assert "personae_event_loop_lag_seconds_bucket" in metrics
    (count,) = [
        line
        for line in metrics.splitlines()
        if line.startswith("personae_event_loop_lag_seconds_count")
    ]
    assert float(count.split()[-1]) >= 2
