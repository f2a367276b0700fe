"""Migration 0016 moves avatars kept as data: URLs into stored pictures, whose variants
are made when first asked for; going back down puts them back as data: URLs."""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url

from conftest import POSTGRES_URL, _create_postgres_database, _drop_postgres_database
from personae import images
from personae.services.images import ImageService
from personae.storage import migrate
from personae.storage.db import Database
from personae.storage.repos import accounts, characters
from personae.storage.repos import images as images_repo
from picture_samples import picture, size_of


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    if POSTGRES_URL:
        name = f"personae_pictures_{secrets.token_hex(4)}"
        await _create_postgres_database(POSTGRES_URL, name)
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        database = Database(url)
        yield database
        await database.dispose()
        await _drop_postgres_database(POSTGRES_URL, name)
    else:
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'pictures.db'}")
        yield database
        await database.dispose()


async def _migrate_to(database: Database, revision: str) -> None:
    def run(connection: Connection) -> None:
        command.downgrade(migrate._config(connection), revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


async def test_a_data_url_avatar_becomes_a_picture_served_in_every_size(
    database: Database,
) -> None:
    await migrate.upgrade(database)
    original = picture(300, 200)
    async with database.write() as tx:
        user = await accounts.insert_user(
            tx, username="old", display_name="Old", password_hash=None
        )
        character_id = await characters.insert_character(
            tx, user.id, {"name": "Kept", "alternate_greetings": [], "tags": [], "extensions": {}}
        )
        processed = images.process(original, max_pixels=1_000_000)
        image_id = await images_repo.insert_image(tx, user.id, character_id, processed)
        await characters.set_avatar_image(tx, character_id, image_id)

    await _migrate_to(database, "0014")  # down: the picture goes back into `avatar`
    async with database.engine.connect() as connection:
        avatar = (await connection.execute(text("SELECT avatar FROM characters"))).scalar_one()
    assert avatar == "data:image/png;base64," + base64.b64encode(original).decode("ascii")

    await migrate.upgrade(database)  # up: moved into a picture, its variants not made yet
    async with database.read() as tx:
        character = await characters.get_character(tx, character_id)
        assert character is not None and character.avatar is None
        assert character.avatar_image_id is not None
        moved = await images_repo.get_image(tx, character.avatar_image_id)
        assert moved is not None and (moved.width, moved.height) == (0, 0)
        assert await images_repo.get_variant(tx, moved.id, 64) is None

    service = ImageService(database, cpu_budget_s=10, max_pixels=1_000_000)
    served = await service.get(moved.id, 64, user)
    assert size_of(served.variant.data) == (64, 43)
    async with database.read() as tx:
        read = await images_repo.get_image(tx, moved.id)
        assert read is not None and (read.width, read.height) == (300, 200)
        assert await images_repo.get_variant(tx, moved.id, 512) is not None
    again = await service.get(moved.id, 512, None)  # public: anyone, from the stored variant
    assert size_of(again.variant.data) == (300, 200) and again.shared_cache


async def test_a_damaged_data_url_is_left_out_not_fatal(database: Database) -> None:
    await migrate.upgrade(database)
    async with database.write() as tx:
        user = await accounts.insert_user(
            tx, username="old", display_name="Old", password_hash=None
        )
        character_id = await characters.insert_character(
            tx, user.id, {"name": "Odd", "alternate_greetings": [], "tags": [], "extensions": {}}
        )
    await _migrate_to(database, "0014")
    async with database.engine.begin() as connection:
        await connection.execute(
            text("UPDATE characters SET avatar = 'data:image/png;base64,@@@' WHERE id = :id"),
            {"id": character_id},
        )
    await migrate.upgrade(database)
    async with database.read() as tx:
        character = await characters.get_character(tx, character_id)
    assert character is not None
    assert (character.avatar, character.avatar_image_id) == (None, None)
