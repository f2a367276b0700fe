"""Characters: create, read, change, delete, search."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from personae.api.deps import ContainerDep, CurrentUser, OptionalUser
from personae.api.json_body import StrictJsonRoute
from personae.api.schemas.characters import (
    CharacterCreate,
    CharacterPage,
    CharacterPublic,
    CharacterUpdate,
)
from personae.storage.repos.characters import CharacterSort

# Bodies hold JSON stored as it is sent (extensions, a lorebook): read to the JSON limits.
router = APIRouter(prefix="/api/v1/characters", tags=["characters"], route_class=StrictJsonRoute)


@router.get("")
async def search_characters(
    container: ContainerDep,
    viewer: OptionalUser,
    q: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=32)] = None,
    sort: CharacterSort = "new",
    owner: Annotated[str | None, Query(max_length=32, description="'me' or a user id")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 24,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    featured: Annotated[
        bool | None, Query(description="true: only featured ones; false: only the others")
    ] = None,
) -> CharacterPage:
    owner_id = (viewer.id if viewer else "") if owner == "me" else owner
    characters = await container.characters.search(
        viewer,
        query=q,
        tag=tag,
        sort=sort,
        owner_id=owner_id,
        limit=limit,
        offset=offset,
        featured=featured,
    )
    return CharacterPage(
        items=[CharacterPublic.model_validate(c) for c in characters], limit=limit, offset=offset
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_character(
    body: CharacterCreate, user: CurrentUser, container: ContainerDep
) -> CharacterPublic:
    character = await container.characters.create(user, body.model_dump())
    return CharacterPublic.model_validate(character)


@router.get("/{character_id}")
async def get_character(
    character_id: str, viewer: OptionalUser, container: ContainerDep
) -> CharacterPublic:
    return CharacterPublic.model_validate(await container.characters.open(character_id, viewer))


@router.patch("/{character_id}")
async def update_character(
    character_id: str, body: CharacterUpdate, user: CurrentUser, container: ContainerDep
) -> CharacterPublic:
    character = await container.characters.update(character_id, user, body.changes())
    return CharacterPublic.model_validate(character)


@router.delete("/{character_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_character(character_id: str, user: CurrentUser, container: ContainerDep) -> None:
    await container.characters.delete(character_id, user)


@router.put("/{character_id}/featured")
async def feature_character(
    character_id: str, user: CurrentUser, container: ContainerDep
) -> CharacterPublic:
    """Show a public character in the discover page's Featured row (moderators and admins)."""
    character = await container.characters.set_featured(character_id, user, True)
    return CharacterPublic.model_validate(character)


@router.delete("/{character_id}/featured", status_code=status.HTTP_204_NO_CONTENT)
async def unfeature_character(
    character_id: str, user: CurrentUser, container: ContainerDep
) -> None:
    await container.characters.set_featured(character_id, user, False)
