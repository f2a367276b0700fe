"""SQLite runs in WAL mode with a busy timeout; many writers at once never fail."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from conftest import PASSWORD, Api
from personae.app import create_app
from personae.settings import Settings
from personae.storage.db import Database


async def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(database_url: str) -> None:
    database = Database(database_url)
    if not database.is_sqlite:
        await database.dispose()
        pytest.skip("a SQLite setting")
    async with database.engine.connect() as connection:
        journal = (await connection.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
        timeout = (await connection.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        foreign_keys = (await connection.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
    await database.dispose()
    assert journal == "wal"
    assert timeout >= 1000
    assert foreign_keys == 1


async def test_twenty_registrations_at_once_all_succeed(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(register_rate_per_ip="100/hour"))
    async with app.router.lifespan_context(app):
        api = Api(app)
        clients = [api.client(ip=f"10.1.0.{n}") for n in range(20)]
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/auth/register", json={"username": f"user{n}", "password": PASSWORD}
                )
                for n, client in enumerate(clients)
            )
        )
        assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
        created = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/characters",
                    json={"name": f"c{n}"},
                    headers={"X-CSRF-Token": response.json()["csrf_token"]},
                )
                for n, (client, response) in enumerate(zip(clients, responses, strict=True))
            )
        )
        assert [r.status_code for r in created] == [201] * 20
        listed = await api.client().get("/api/v1/characters", params={"limit": 100})
        assert len(listed.json()["items"]) == 20
        await api.aclose()


async def test_the_same_username_registered_twice_at_once_gives_one_account(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings())
    async with app.router.lifespan_context(app):
        api = Api(app)
        responses = await asyncio.gather(
            *(
                api.client().post(
                    "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
                )
                for _ in range(5)
            )
        )
        assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
        await api.aclose()
