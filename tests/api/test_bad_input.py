"""Bad requests get a clear problem+json with a stable code, and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from conftest import Api, assert_problem
from personae.app import create_app
from personae.settings import Settings


@pytest.fixture
async def small_body_api(make_settings: Callable[..., Settings]) -> AsyncIterator[Api]:
    app = create_app(make_settings(max_body_bytes=2048))
    async with app.router.lifespan_context(app):
        helper = Api(app)
        yield helper
        await helper.aclose()


async def _character(client: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    response = await client.post("/api/v1/characters", json={"name": "Ilsa", "tags": ["a"]})
    assert response.status_code == 201, response.text
    character: dict[str, Any] = response.json()
    return f"/api/v1/characters/{character['id']}", character


async def _chunks(body: bytes, size: int = 512) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def test_an_oversized_body_is_413_and_stores_nothing(small_body_api: Api) -> None:
    alice = await small_body_api.user("alice")
    path, character = await _character(alice)
    big = {"name": "x", "description": "y" * 4096}

    created = await alice.post("/api/v1/characters", json=big)
    body = assert_problem(created, 413, "payload_too_large")
    assert "2048" in body["detail"]
    assert_problem(await alice.patch(path, json=big), 413, "payload_too_large")

    assert (await alice.get(path)).json() == character
    mine = await alice.get("/api/v1/characters", params={"owner": "me"})
    assert [c["id"] for c in mine.json()["items"]] == [character["id"]]


async def test_an_oversized_chunked_body_without_length_is_413(small_body_api: Api) -> None:
    alice = await small_body_api.user("alice")
    path, character = await _character(alice)
    payload = b'{"name": "x", "description": "' + b"y" * 4096 + b'"}'
    response = await alice.patch(
        path, content=_chunks(payload), headers={"Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
    assert (await alice.get(path)).json() == character


async def test_a_small_chunked_body_still_works(small_body_api: Api) -> None:
    alice = await small_body_api.user("alice")
    path, _ = await _character(alice)
    response = await alice.patch(
        path,
        content=_chunks(b'{"tagline": "chunked"}', 4),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["tagline"] == "chunked"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": 42}, "name"),
        ({"tags": "fantasy"}, "tags"),
        ({"tags": ["x" * 33]}, "tags.0"),
        ({"visibility": "secret"}, "visibility"),
        ({"extensions": ["not", "an", "object"]}, "extensions"),
        ({"alternate_greetings": [1, 2]}, "alternate_greetings.0"),
        ({"name": ""}, "name"),
        ({"colour": "blue"}, "colour"),
        ({"owner_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, "owner_id"),
        ({"chat_count": 1000}, "chat_count"),
    ],
)
async def test_wrong_types_and_unknown_fields_name_the_field(
    api: Api, change: dict[str, Any], field: str
) -> None:
    alice = await api.user("alice")
    path, character = await _character(alice)
    for response in (
        await alice.patch(path, json=change),
        await alice.post("/api/v1/characters", json={"name": "Other", **change}),
    ):
        body = assert_problem(response, 422, "validation_error")
        assert field in [error["field"] for error in body["errors"]], body
        assert field in body["detail"]
    assert (await alice.get(path)).json() == character
    mine = await alice.get("/api/v1/characters", params={"owner": "me"})
    assert len(mine.json()["items"]) == 1


@pytest.mark.parametrize(
    "content", [b'{"name": "Ilsa",', b"not json", b"", b"[1, 2]", b"null", b'"a string"']
)
async def test_a_body_that_is_not_a_json_object_is_refused(api: Api, content: bytes) -> None:
    alice = await api.user("alice")
    path, character = await _character(alice)
    headers = {"Content-Type": "application/json"}
    for response in (
        await alice.patch(path, content=content, headers=headers),
        await alice.post("/api/v1/characters", content=content, headers=headers),
    ):
        assert_problem(response, 422, "validation_error")
    assert (await alice.get(path)).json() == character


async def test_malformed_json_is_reported_as_such(api: Api) -> None:
    response = await api.client().post(
        "/api/v1/auth/login", content=b'{"username": ', headers={"Content-Type": "application/json"}
    )
    body = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["body"]
    assert "JSON" in body["detail"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "many"}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort": "oldest"}, "sort"),
        ({"q": "x" * 201}, "q"),
    ],
)
async def test_bad_query_parameters_name_the_parameter(
    client: httpx.AsyncClient, params: dict[str, Any], field: str
) -> None:
    body = assert_problem(
        await client.get("/api/v1/characters", params=params), 422, "validation_error"
    )
    assert body["errors"][0]["field"] == field
    assert body["errors"][0]["location"] == "query"


async def test_unknown_ids_are_404(api: Api) -> None:
    alice = await api.user("alice")
    for path in ("/api/v1/characters/01ARZ3NDEKTSV4RRFFQ69G5FAV", "/api/v1/characters/x"):
        assert_problem(await alice.get(path), 404, "not_found")
        assert_problem(await alice.patch(path, json={"name": "n"}), 404, "not_found")
        assert_problem(await alice.delete(path), 404, "not_found")
    assert_problem(await alice.delete("/api/v1/tokens/nope"), 404, "not_found")
    assert_problem(await alice.delete("/api/v1/me/sessions/nope"), 404, "not_found")


async def test_unknown_routes_and_wrong_methods_are_problems(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/nothing-here"), 404, "not_found")
    response = await client.put("/api/v1/characters")
    assert_problem(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert_problem(await client.post("/healthz"), 405, "method_not_allowed")


async def test_a_client_request_id_is_echoed_and_a_bad_one_replaced(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/v1/nothing", headers={"X-Request-ID": "trace-abc-12345"})
    assert assert_problem(response, 404, "not_found")["request_id"] == "trace-abc-12345"
    response = await client.get("/healthz", headers={"X-Request-ID": "bad id\x7f"})
    assert response.headers["x-request-id"] != "bad id\x7f"
    assert len(response.headers["x-request-id"]) >= 8


async def test_nul_characters_are_refused_on_every_database(api: Api) -> None:
    alice = await api.user("alice")
    path, character = await _character(alice)
    for response, field in (
        (await alice.post("/api/v1/characters", json={"name": "a\x00b"}), "name"),
        (await alice.patch(path, json={"tags": ["ok", "b\x00"]}), "tags"),
        (await alice.post("/api/v1/tokens", json={"name": "\x00"}), "name"),
        (await alice.get("/api/v1/characters", params={"q": "a\x00"}), "q"),
        (
            await api.client().post(
                "/api/v1/auth/login", json={"username": "alice\x00", "password": "whatever!!"}
            ),
            "username",
        ),
    ):
        body = assert_problem(response, 422, "validation_error")
        assert field in [error["field"] for error in body["errors"]]
    assert_problem(await alice.get("/api/v1/characters/a%00b"), 404, "not_found")
    assert_problem(await alice.delete("/api/v1/tokens/%00"), 404, "not_found")
    assert (await alice.get(path)).json() == character


async def test_nul_inside_extensions_is_kept_verbatim(api: Api) -> None:
    alice = await api.user("alice")
    extensions = {"note\x00key": "a\x00b", "nested": ["\x00"]}
    response = await alice.post("/api/v1/characters", json={"name": "n", "extensions": extensions})
    assert response.status_code == 201, response.text
    assert (await alice.get(f"/api/v1/characters/{response.json()['id']}")).json()[
        "extensions"
    ] == extensions
