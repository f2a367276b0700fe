"""Backend slots shared by every process of a cluster, kept in the database.

Each request in flight holds a lease row (see `storage.repos.slots`); the rows of
a process go with its heartbeat row when it dies. A lease that could not be given
back (the database did not answer) is given back at the next take, so a slot is
never lost while its process lives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from personae.storage.db import Database
from personae.storage.repos import slots as slot_repo

log = logging.getLogger("personae.router")


class SharedSlots:
    """Slot leases of process `owner` in the cluster's database."""

    def __init__(self, database: Database, owner: str) -> None:
        self._db = database
        self._owner = owner
        self._owed: set[str] = set()  # leases still to give back

    async def take_first(self, candidates: Sequence[tuple[str, int]]) -> tuple[str, str] | None:
        """A slot on the first of `candidates` (name, slots) with one free: (name, lease)."""
        async with self._db.write(urgent=True) as tx:
            owed = list(self._owed)
            for lease in owed:
                await slot_repo.give_back(tx, lease)
            taken = await slot_repo.take_first(tx, self._owner, candidates)
        self._owed.difference_update(owed)
        return taken

    async def give_back(self, lease: str) -> None:
        self._owed.add(lease)  # until the delete is committed (cancelled, or failed)
        try:
            async with self._db.write(urgent=True) as tx:
                await slot_repo.give_back(tx, lease)
        except Exception:
            log.warning("giving back a backend slot failed; trying again at the next take")
            return
        self._owed.discard(lease)

    async def count(self) -> dict[str, int]:
        """Requests in flight on each backend, over every process."""
        async with self._db.read() as tx:
            return await slot_repo.count_by_backend(tx)
