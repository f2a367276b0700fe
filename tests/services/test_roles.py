"""Roles are set through the account service (what `personae user set-role` calls)."""

from __future__ import annotations

import pytest

from conftest import Api
from personae.errors import NotFound, ValidationFailed


async def test_set_role_changes_what_me_reports(api: Api) -> None:
    alice = await api.user("alice")
    for role in ("plus", "moderator", "admin", "user"):
        updated = await api.container.accounts.set_role("Alice", role)  # type: ignore[arg-type]
        assert updated.role == role
        assert (await alice.get("/api/v1/me")).json()["role"] == role


async def test_set_role_on_an_unknown_user_is_not_found(api: Api) -> None:
    with pytest.raises(NotFound):
        await api.container.accounts.set_role("nobody", "admin")


async def test_an_unknown_role_is_refused(api: Api) -> None:
    alice = await api.user("alice")
    with pytest.raises(ValidationFailed):
        await api.container.accounts.set_role("alice", "emperor")  # type: ignore[arg-type]
    assert (await alice.get("/api/v1/me")).json()["role"] == "user"
