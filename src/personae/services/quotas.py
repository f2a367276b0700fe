"""Quotas per user: how many characters one keeps, and how many bytes of card files and
pictures."""

from __future__ import annotations

from dataclasses import dataclass

from personae.errors import QuotaExceeded
from personae.storage.db import Transaction
from personae.storage.repos import characters as characters_repo
from personae.storage.repos import quotas as repo
from personae.words import plural


def _size(count: int) -> str:
    return f"{count:,} bytes ({count / 1_048_576:.1f} MiB)"


@dataclass(frozen=True)
class Quotas:
    """The limits of one user; 0 is no limit."""

    max_characters: int = 0
    asset_bytes: int = 0

    async def check_new_character(
        self, tx: Transaction, owner_id: str, *, asset_bytes: int = 0
    ) -> None:
        """Refuse (409 `quota_exceeded`) a character, with `asset_bytes` of card files,
        that would take the owner past a quota. Runs in the transaction that stores it,
        with the owner's row held, so two at once cannot both squeeze in."""
        if not self.max_characters and not (self.asset_bytes and asset_bytes):
            return
        await repo.lock_owner(tx, owner_id)
        if self.max_characters:
            count = await characters_repo.count_owned(tx, owner_id)
            if count >= self.max_characters:
                raise QuotaExceeded(
                    f"You have {plural(count, 'character')}, the most one account may keep "
                    f"({self.max_characters:,}). Delete one to make room for another.",
                    extra={"quota": "characters", "used": count, "limit": self.max_characters},
                )
        if self.asset_bytes and asset_bytes:
            await self._check_bytes(tx, owner_id, asset_bytes, "this card's")

    async def check_stored_bytes(self, tx: Transaction, owner_id: str, new_bytes: int) -> None:
        """Refuse (409 `quota_exceeded`) a picture of `new_bytes` (with its variants)
        that would take the owner past the quota of card files and pictures."""
        if not self.asset_bytes or not new_bytes:
            return
        await repo.lock_owner(tx, owner_id)
        await self._check_bytes(tx, owner_id, new_bytes, "this picture's")

    async def _check_bytes(self, tx: Transaction, owner_id: str, new_bytes: int, what: str) -> None:
        used = await repo.owned_asset_bytes(tx, owner_id)
        if used + new_bytes > self.asset_bytes:
            raise QuotaExceeded(
                f"Your characters' card files and pictures take {_size(used)} of your "
                f"{_size(self.asset_bytes)}; {what} {_size(new_bytes)} do not fit. "
                "Delete a character with large files to make room.",
                extra={"quota": "asset_bytes", "used": used, "limit": self.asset_bytes},
            )
