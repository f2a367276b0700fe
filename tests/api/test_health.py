"""The probes a load balancer asks: alive, and ready to serve."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from conftest import Api, assert_problem
from personae.app import create_app
from personae.settings import Settings


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_ok_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "database": "ok", "migrations": "ok"}


def _unmigrated(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    empty = tmp_path / "empty" / "personae.db"
    return make_settings(
        database_url=f"sqlite+aiosqlite:///{empty}", data_dir=empty.parent, auto_migrate=False
    )


async def test_readyz_is_503_on_an_unmigrated_database(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    app = create_app(_unmigrated(make_settings, tmp_path))
    try:  # no lifespan: answering the probe needs only the database
        response = await Api(app).client().get("/readyz")
    finally:
        await app.state.container.database.dispose()
    body = assert_problem(response, 503, "service_unavailable")
    assert body["retryable"] is True
    assert body["database"] == "ok"
    assert body["migrations"] != "ok"
    assert "personae migrate" in body["detail"]


async def test_a_server_without_auto_migrate_starts_and_reports_not_ready(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    app = create_app(_unmigrated(make_settings, tmp_path))
    started = False
    try:
        async with app.router.lifespan_context(app):
            started = True
            api = Api(app)
            assert_problem(await api.client().get("/readyz"), 503, "service_unavailable")
            await api.aclose()
    finally:
        if not started:  # a failed start leaves its connections open
            await app.state.container.aclose()
