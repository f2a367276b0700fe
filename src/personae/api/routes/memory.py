"""Personas, pinned memories and summaries, and what went into a reply's prompt."""

from __future__ import annotations

from fastapi import APIRouter, status

from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas.memory import (
    MemoryCreate,
    MemoryList,
    MemoryPublic,
    MemoryUpdate,
    PersonaCreate,
    PersonaPublic,
    PersonaUpdate,
    PromptPublic,
)
from personae.services.prompt_inspection import inspect_prompt

router = APIRouter(prefix="/api/v1", tags=["memory"])


@router.get("/personas")
async def list_personas(user: CurrentUser, container: ContainerDep) -> list[PersonaPublic]:
    return [PersonaPublic.model_validate(p) for p in await container.personas.list(user)]


@router.post("/personas", status_code=status.HTTP_201_CREATED)
async def create_persona(
    body: PersonaCreate, user: CurrentUser, container: ContainerDep
) -> PersonaPublic:
    persona = await container.personas.create(
        user,
        name=body.name,
        description=body.description,
        avatar=body.avatar,
        is_default=body.is_default,
    )
    return PersonaPublic.model_validate(persona)


@router.get("/personas/{persona_id}")
async def get_persona(persona_id: str, user: CurrentUser, container: ContainerDep) -> PersonaPublic:
    return PersonaPublic.model_validate(await container.personas.get(user, persona_id))


@router.patch("/personas/{persona_id}")
async def update_persona(
    persona_id: str, body: PersonaUpdate, user: CurrentUser, container: ContainerDep
) -> PersonaPublic:
    persona = await container.personas.update(
        user,
        persona_id,
        name=body.name,
        description=body.description,
        avatar=body.avatar,
        is_default=body.is_default,
    )
    return PersonaPublic.model_validate(persona)


@router.delete("/personas/{persona_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_persona(persona_id: str, user: CurrentUser, container: ContainerDep) -> None:
    await container.personas.delete(user, persona_id)


@router.get("/chats/{chat_id}/memories")
async def list_memories(chat_id: str, user: CurrentUser, container: ContainerDep) -> MemoryList:
    items = await container.memory.list_memories(user, chat_id)
    return MemoryList(items=[MemoryPublic.model_validate(m) for m in items])


@router.post("/chats/{chat_id}/memories", status_code=status.HTTP_201_CREATED)
async def pin_memory(
    chat_id: str, body: MemoryCreate, user: CurrentUser, container: ContainerDep
) -> MemoryPublic:
    """Pin a fact: it goes into every prompt of the chat."""
    return MemoryPublic.model_validate(await container.memory.pin(user, chat_id, body.content))


@router.patch("/memories/{memory_id}")
async def edit_memory(
    memory_id: str, body: MemoryUpdate, user: CurrentUser, container: ContainerDep
) -> MemoryPublic:
    return MemoryPublic.model_validate(await container.memory.edit(user, memory_id, body.content))


@router.delete("/memories/{memory_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_memory(memory_id: str, user: CurrentUser, container: ContainerDep) -> None:
    """Unpin a memory, or undo a summary (the one before it is used again)."""
    await container.memory.delete(user, memory_id)


@router.post("/messages/{message_id}/pin", status_code=status.HTTP_201_CREATED)
async def pin_message(message_id: str, user: CurrentUser, container: ContainerDep) -> MemoryPublic:
    return MemoryPublic.model_validate(await container.memory.pin_message(user, message_id))


@router.get("/messages/{message_id}/prompt")
async def message_prompt(
    message_id: str, user: CurrentUser, container: ContainerDep
) -> PromptPublic:
    """The prompt this reply was written from, and what was left out (the chat's owner
    only; the character's definition as far as its creator lets them see it)."""
    view = await inspect_prompt(container.database, user, message_id)
    return PromptPublic.model_validate(view)
