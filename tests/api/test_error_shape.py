"""Every error of every route has the one problem+json shape; nothing is ever a bare 500."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from conftest import Api
from personae.app import create_app
from personae.logs import JsonFormatter
from personae.settings import Settings

PROBLEM_FIELDS = ("type", "title", "status", "detail", "code", "request_id", "retryable")
JUNK_BODIES: list[dict[str, Any]] = [
    {},
    {"content": b"{not json", "headers": {"Content-Type": "application/json"}},
    {"json": [1, 2, 3]},
    {"json": {"name": None, "username": 7, "password": [], "tags": {"a": 1}, "zzz": True}},
    {"json": {"name": "x" * 5000, "visibility": "everyone", "limit": -1}},
    {"json": {"name": "a\x00", "username": "a\x00b", "password": "p\x00" * 8, "q": "\x00"}},
    {
        "content": "\udcff".encode("utf-8", "surrogatepass"),
        "headers": {"Content-Type": "text/plain"},
    },
]
PATH_VALUES = ["01ARZ3NDEKTSV4RRFFQ69G5FAV", "nope", "%00", "a%00b?q=%00", "x" * 300]


def _check_problem(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    assert response.status_code < 500, where
    assert response.headers["x-request-id"], where
    if response.status_code < 400:
        return
    assert response.headers["content-type"].startswith("application/problem+json"), where
    body = response.json()
    for field in PROBLEM_FIELDS:
        assert field in body, (where, field, body)
    assert body["status"] == response.status_code, where
    assert body["request_id"] == response.headers["x-request-id"], where
    assert re.fullmatch(r"[a-z_]+", body["code"]), where
    assert isinstance(body["retryable"], bool), where
    assert body["detail"] and body["title"], where
    assert "Traceback" not in response.text, where


def _concrete_paths(app: Any) -> list[tuple[str, str]]:
    requests: list[tuple[str, str]] = []
    for template, operations in app.openapi()["paths"].items():
        for method in operations:
            for value in PATH_VALUES:
                requests.append((method.upper(), re.sub(r"\{[^}]+\}", value, template)))
    return sorted(set(requests))


async def _walk(client: httpx.AsyncClient, app: Any) -> int:
    seen = 0
    for method, path in _concrete_paths(app):
        for junk in JUNK_BODIES:
            if method in {"GET", "DELETE"} and junk:
                continue
            _check_problem(await client.request(method, path, **junk))
            seen += 1
    return seen


async def test_every_route_answers_junk_with_a_problem_never_a_500(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(register_rate_per_ip="1000/hour"))
    async with app.router.lifespan_context(app):
        api = Api(app)
        assert len(app.openapi()["paths"]) >= 10
        anonymous = api.client()
        alice = await api.user("alice")
        token = (await alice.post("/api/v1/tokens", json={"name": "t"})).json()["token"]
        seen = 0
        for client in (anonymous, api.bearer(token), alice):
            seen += await _walk(client, app)
        assert seen > 300
        await api.aclose()


@pytest.mark.parametrize("method", ["PUT", "OPTIONS", "TRACE"])
async def test_unrouted_methods_are_problems(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, "/api/v1/characters")
    _check_problem(response)
    assert response.status_code == 405


async def test_an_unexpected_exception_is_a_generic_500(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings())

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    log_lines = io.StringIO()
    handler = logging.StreamHandler(log_lines)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("personae")
    logger.addHandler(handler)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get("/boom")
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "internal_error"
    assert body["request_id"] == response.headers["x-request-id"]
    assert set(PROBLEM_FIELDS) <= set(body)
    assert "secret internal detail" not in response.text
    assert "RuntimeError" not in response.text and "Traceback" not in response.text
    [logged] = [
        entry
        for entry in map(json.loads, log_lines.getvalue().splitlines())
        if entry["level"] == "error"
    ]
    assert logged["request_id"] == body["request_id"]
    assert "secret internal detail" in logged["traceback"]  # the log keeps what the user is spared
