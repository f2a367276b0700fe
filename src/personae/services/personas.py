"""Personas: who the user is in a chat. One is the default for new chats."""

from __future__ import annotations

from personae.errors import Conflict, NotFound
from personae.services.avatars import check_avatar
from personae.storage.db import Database
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import personas as repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.personas import PersonaRecord
from personae.words import plural

MAX_PERSONAS = 50


class PersonaService:
    """Create, list, edit and delete a user's personas; keep exactly one default."""

    def __init__(self, database: Database) -> None:
        self._db = database

    async def list(self, user: UserRecord) -> list[PersonaRecord]:
        async with self._db.read() as tx:
            return await repo.list_personas(tx, user.id)

    async def get(self, user: UserRecord, persona_id: str) -> PersonaRecord:
        """A persona of this user; anybody else's is simply not found."""
        async with self._db.read() as tx:
            persona = await repo.get_persona(tx, persona_id)
        if persona is None or persona.user_id != user.id:
            raise NotFound("No persona with this id.")
        return persona

    async def create(
        self,
        user: UserRecord,
        *,
        name: str,
        description: str,
        avatar: str | None,
        is_default: bool,
    ) -> PersonaRecord:
        """A new persona; the first one of a user is the default."""
        check_avatar(avatar)
        async with self._db.write() as tx:
            count = await repo.count_personas(tx, user.id)
            if count >= MAX_PERSONAS:
                raise Conflict(
                    f"You have {plural(count, 'persona')}, the most kept; delete one first."
                )
            persona_id = await repo.insert_persona(
                tx, user_id=user.id, name=name.strip(), description=description, avatar=avatar
            )
            if is_default or count == 0:
                await repo.make_default(tx, user.id, persona_id)
            persona = await repo.get_persona(tx, persona_id)
        assert persona is not None
        return persona

    async def update(
        self,
        user: UserRecord,
        persona_id: str,
        *,
        name: str | None,
        description: str | None,
        avatar: str | None,
        is_default: bool | None,
    ) -> PersonaRecord:
        """Change a persona; chats that use it take the new name and description."""
        check_avatar(avatar)
        await self.get(user, persona_id)
        values = {
            key: value
            for key, value in (("name", name), ("description", description), ("avatar", avatar))
            if value is not None
        }
        async with self._db.write() as tx:
            if values:
                await repo.update_persona(tx, persona_id, **values)
            if is_default:
                await repo.make_default(tx, user.id, persona_id)
            persona = await repo.get_persona(tx, persona_id)
            assert persona is not None
            await chat_repo.set_chat_persona(
                tx, persona_id=persona.id, name=persona.name, description=persona.description
            )
        return persona

    async def delete(self, user: UserRecord, persona_id: str) -> None:
        """Delete a persona (chats keep its name); the oldest left becomes the default."""
        persona = await self.get(user, persona_id)
        async with self._db.write() as tx:
            await repo.delete_persona(tx, persona_id)
            if persona.is_default:
                left = await repo.list_personas(tx, user.id)
                if left:
                    await repo.make_default(tx, user.id, left[0].id)
