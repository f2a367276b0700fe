"""Schema migrations with Alembic, run on the application's own engine."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from personae.storage.db import Database

_INI = Path(__file__).with_name("alembic.ini")


def _config(connection: Connection | None = None) -> Config:
    config = Config(str(_INI))
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    """The newest revision this code knows."""
    return ScriptDirectory.from_config(_config()).get_current_head()


async def upgrade(database: Database) -> None:
    """Bring the schema to the newest revision (safe to run on every start)."""

    def _run(connection: Connection) -> None:
        command.upgrade(_config(connection), "head")

    async with database.engine.begin() as connection:
        await connection.run_sync(_run)


async def current_revision(database: Database) -> str | None:
    """The revision the database is at, or None before the first migration."""

    def _read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with database.engine.connect() as connection:
        return await connection.run_sync(_read)
