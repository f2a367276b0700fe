"""Each migration since 0009 keeps every row, down and up again: on SQLite, a batch
that rebuilds a table (users, characters, messages) drops the old one, which cascades
to whatever refers to it (or fails outright once a chat does)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

from conftest import POSTGRES_URL, _create_postgres_database, _drop_postgres_database
from personae.storage import migrate
from personae.storage.db import Database
from personae.storage.repos import accounts, characters, chats

_TABLES = ("users", "characters", "character_tags", "chats", "messages", "sessions")


@pytest.fixture
async def fresh_database(tmp_path: Path) -> AsyncIterator[Database]:
    if POSTGRES_URL:
        name = f"personae_age_{secrets.token_hex(4)}"
        await _create_postgres_database(POSTGRES_URL, name)
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        database = Database(url)
        yield database
        await database.dispose()
        await _drop_postgres_database(POSTGRES_URL, name)
    else:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'age.db'}")
        yield database
        await database.dispose()


async def _counts(database: Database) -> dict[str, int]:
    async with database.engine.connect() as connection:
        return {
            table: int(
                (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
            )
            for table in _TABLES
        }


@pytest.mark.parametrize(
    "down_to", ["0009", "0010", "0011", "0012", "0013", "0014", "0015", "0016", "0018"]
)
async def test_the_migrations_down_and_up_keep_every_row(
    fresh_database: Database, down_to: str
) -> None:
    await migrate.upgrade(fresh_database)
    async with fresh_database.write() as tx:
        user = await accounts.insert_user(
            tx, username="old", display_name="Old", password_hash=None
        )
        await accounts.insert_session(
            tx, user_id=user.id, token_hash="h" * 64, csrf_token="c", expires_at=user.created_at,
            user_agent=None, ip=None,
        )  # fmt: skip
        character_id = await characters.insert_character(
            tx,
            user.id,
            {"name": "Kept", "alternate_greetings": [], "tags": ["fox"], "extensions": {}},
        )
        chat_id = await chats.insert_chat(
            tx,
            owner_id=user.id,
            character_id=character_id,
            title="Kept",
            persona_name="Old",
            persona_description="",
        )
        await chats.insert_message(
            tx, chat_id=chat_id, role="user", author_id=user.id, position=0, content="Hi",
            status="complete",
        )  # fmt: skip
    before = await _counts(fresh_database)
    assert all(before.values()), before

    def downgrade(connection: Connection) -> None:
        command.downgrade(migrate._config(connection), down_to)

    async with fresh_database.engine.begin() as connection:
        await connection.run_sync(downgrade)
    assert await _counts(fresh_database) == before

    await migrate.upgrade(fresh_database)
    assert await _counts(fresh_database) == before
    async with fresh_database.read() as tx:
        again = await accounts.get_user(tx, user.id)
    assert again is not None
    assert (again.age_declared_at, again.adult_from, again.show_mature) == (None, None, False)
