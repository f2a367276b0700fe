"""Liveness and readiness."""

from __future__ import annotations

from dataclasses import dataclass

from personae.storage import migrate
from personae.storage.db import Database


@dataclass(frozen=True)
class Readiness:
    ready: bool
    database: str
    migrations: str


class HealthService:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def readiness(self) -> Readiness:
        """Ready when the database answers and its schema is at this code's head."""
        try:
            await self._db.ping()
            current = await migrate.current_revision(self._db)
        except Exception as error:  # any driver error means "not reachable"
            return Readiness(False, f"unreachable: {type(error).__name__}", "unknown")
        head = migrate.head_revision()
        if current != head:
            return Readiness(False, "ok", f"at {current}, expected {head}")
        return Readiness(True, "ok", "ok")
