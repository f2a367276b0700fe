"""Migrations build the whole schema on an empty database, on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from conftest import POSTGRES_URL, _create_postgres_database, _drop_postgres_database
from personae.storage import migrate
from personae.storage.db import Database
from personae.storage.tables import metadata


@pytest.fixture
async def empty_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A database with no tables at all, of the dialect the suite runs on."""
    if POSTGRES_URL:
        name = f"personae_empty_{secrets.token_hex(4)}"
        await _create_postgres_database(POSTGRES_URL, name)
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        database = Database(url)
        yield database
        await database.dispose()
        await _drop_postgres_database(POSTGRES_URL, name)
    else:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
        yield database
        await database.dispose()


async def _table_names(database: Database) -> set[str]:
    async with database.engine.connect() as connection:
        return set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_migrations_take_an_empty_database_to_head(empty_database: Database) -> None:
    assert await migrate.current_revision(empty_database) is None
    await migrate.upgrade(empty_database)
    assert await migrate.current_revision(empty_database) == migrate.head_revision()
    assert {table.name for table in metadata.sorted_tables} <= await _table_names(empty_database)


async def test_migrating_twice_changes_nothing(empty_database: Database) -> None:
    await migrate.upgrade(empty_database)
    tables = await _table_names(empty_database)
    await migrate.upgrade(empty_database)
    assert await _table_names(empty_database) == tables
    assert await migrate.current_revision(empty_database) == migrate.head_revision()
