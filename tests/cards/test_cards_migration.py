"""Migration 0002 adds the card columns to characters that already exist."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection, make_url

from conftest import POSTGRES_URL, _create_postgres_database, _drop_postgres_database
from personae.storage import migrate
from personae.storage.db import Database
from personae.storage.repos.characters import get_character
from personae.storage.types import UTCDateTime, utcnow

# The tables as revision 0001 left them (only the columns a row needs).
_USERS = sa.table(
    "users",
    *(sa.column(name) for name in ("id", "username", "display_name", "role")),
    sa.column("created_at", UTCDateTime),
    sa.column("updated_at", UTCDateTime),
)
_CHARACTERS = sa.table(
    "characters",
    *(sa.column(name) for name in ("id", "owner_id", "name", "tagline", "visibility")),
    *(sa.column(name, sa.JSON) for name in ("alternate_greetings", "tags", "extensions")),
    *(
        sa.column(name)
        for name in (
            "description",
            "personality",
            "scenario",
            "first_message",
            "example_dialogues",
            "system_prompt",
            "post_history_instructions",
            "creator_notes",
            "chat_count",
        )
    ),
    sa.column("created_at", UTCDateTime),
    sa.column("updated_at", UTCDateTime),
)


@pytest.fixture
async def fresh_database(tmp_path: Path) -> AsyncIterator[Database]:
    if POSTGRES_URL:
        name = f"personae_cards_{secrets.token_hex(4)}"
        await _create_postgres_database(POSTGRES_URL, name)
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        database = Database(url)
        yield database
        await database.dispose()
        await _drop_postgres_database(POSTGRES_URL, name)
    else:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
        yield database
        await database.dispose()


async def test_characters_made_before_cards_keep_working(fresh_database: Database) -> None:
    def to_0001(connection: Connection) -> None:
        command.upgrade(migrate._config(connection), "0001")

    async with fresh_database.engine.begin() as connection:
        await connection.run_sync(to_0001)
        now = utcnow()
        await connection.execute(
            sa.insert(_USERS).values(
                id="u1",
                username="old",
                display_name="Old",
                role="user",
                created_at=now,
                updated_at=now,
            )
        )
        texts = dict.fromkeys(
            (
                "description",
                "personality",
                "scenario",
                "first_message",
                "example_dialogues",
                "system_prompt",
                "post_history_instructions",
                "creator_notes",
            ),
            "",
        )
        await connection.execute(
            sa.insert(_CHARACTERS).values(
                id="c1",
                owner_id="u1",
                name="Before",
                tagline="",
                visibility="public",
                alternate_greetings=[],
                tags=[],
                extensions={},
                chat_count=0,
                created_at=now,
                updated_at=now,
                **texts,
            )
        )
    await migrate.upgrade(fresh_database)
    async with fresh_database.read() as tx:
        character = await get_character(tx, "c1")
    assert character is not None and character.name == "Before"
    assert character.nickname == "" and character.creator == ""
    assert character.group_only_greetings == [] and character.character_book is None
    assert character.card is None and character.creation_date is None
