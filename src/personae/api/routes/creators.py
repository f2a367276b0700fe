"""What creators see of their own characters: chats, messages, ratings."""

from __future__ import annotations

from fastapi import APIRouter

from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas.characters import CreatorStatsPage, CreatorStatsPublic

router = APIRouter(prefix="/api/v1/me", tags=["characters"])


@router.get("/characters/stats")
async def creator_stats(user: CurrentUser, container: ContainerDep) -> CreatorStatsPage:
    """Each of your characters with its chats, messages and average rating (yours
    only: nobody sees another creator's figures)."""
    stats = await container.characters.creator_stats(user)
    return CreatorStatsPage(items=[CreatorStatsPublic.model_validate(s) for s in stats])
