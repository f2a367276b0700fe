"""Accounts and their roles, for admins: list, search, change a role."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas.accounts import RoleUpdate, UserPage, UserPublic
from personae.errors import Forbidden
from personae.storage.repos.accounts import UserRecord

router = APIRouter(prefix="/api/v1/admin/users", tags=["admin"])


async def _admin(user: CurrentUser) -> UserRecord:
    # A dependency, so a non-admin is refused before the body is even read.
    if user.role != "admin":
        raise Forbidden("Only admins manage users and their roles.")
    return user


Admin = Annotated[UserRecord, Depends(_admin)]


@router.get("")
async def list_users(
    admin: Admin,
    container: ContainerDep,
    q: Annotated[str | None, Query(max_length=64, description="in the username or name")] = None,
    before: Annotated[str | None, Query(max_length=64, description="a user id")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> UserPage:
    """Accounts, newest first; page on with `before` set to the last id of a page."""
    users, has_more = await container.accounts.list_users(
        admin, query=q, before=before, limit=limit
    )
    return UserPage(items=[UserPublic.model_validate(u) for u in users], has_more=has_more)


@router.patch("/{user_id}")
async def change_role(
    user_id: str, body: RoleUpdate, admin: Admin, container: ContainerDep
) -> UserPublic:
    """Give an account another role; an admin cannot remove their own admin role."""
    return UserPublic.model_validate(
        await container.accounts.change_role(admin, user_id, body.role)
    )


@router.delete("/{user_id}/age")
async def reset_age(user_id: str, admin: Admin, container: ContainerDep) -> UserPublic:
    """Clear an account's age declaration (a wrong one), so the user can declare again."""
    return UserPublic.model_validate(await container.accounts.reset_age(admin, user_id))
