"""Admins list and search accounts and change their roles; nobody else may."""

from __future__ import annotations

import httpx

from conftest import Api, assert_problem

UNKNOWN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


async def _admin(api: Api, name: str = "root") -> httpx.AsyncClient:
    client = await api.user(name)
    await api.container.accounts.set_role(name, "admin")
    return client


async def _id(client: httpx.AsyncClient) -> str:
    return str((await client.get("/api/v1/me")).json()["id"])


async def test_an_admin_lists_searches_and_pages_through_users(api: Api) -> None:
    admin = await _admin(api)
    for name in ("alice", "albert", "bob"):
        await api.user(name, display_name=f"{name.title()} Person")
    await api.user("carol", display_name="Al_ice%")

    listed = await admin.get("/api/v1/admin/users")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [u["username"] for u in body["items"]] == ["carol", "bob", "albert", "alice", "root"]
    assert body["has_more"] is False
    assert set(body["items"][0]) == {
        "id",
        "username",
        "display_name",
        "role",
        "created_at",
        "suspended_until",
        "age_declared_at",
        "adult",
        "show_mature",
    }

    found = await admin.get("/api/v1/admin/users", params={"q": "AL"})
    assert [u["username"] for u in found.json()["items"]] == ["carol", "albert", "alice"]
    by_name = await admin.get("/api/v1/admin/users", params={"q": "bob person"})
    assert [u["username"] for u in by_name.json()["items"]] == ["bob"]
    # % and _ are plain characters, not wildcards.
    literal = await admin.get("/api/v1/admin/users", params={"q": "l_ice%"})
    assert [u["username"] for u in literal.json()["items"]] == ["carol"]

    first = (await admin.get("/api/v1/admin/users", params={"limit": 2})).json()
    assert [u["username"] for u in first["items"]] == ["carol", "bob"] and first["has_more"]
    after = first["items"][-1]["id"]
    second = (await admin.get("/api/v1/admin/users", params={"limit": 2, "before": after})).json()
    assert [u["username"] for u in second["items"]] == ["albert", "alice"] and second["has_more"]
    last = second["items"][-1]["id"]
    third = (await admin.get("/api/v1/admin/users", params={"limit": 2, "before": last})).json()
    assert [u["username"] for u in third["items"]] == ["root"] and not third["has_more"]


async def test_an_admin_changes_a_role_and_it_takes_effect(api: Api) -> None:
    admin = await _admin(api)
    alice = await api.user("alice")
    alice_id = await _id(alice)
    changed = await admin.patch(f"/api/v1/admin/users/{alice_id}", json={"role": "moderator"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "moderator" and changed.json()["id"] == alice_id
    assert (await alice.get("/api/v1/me")).json()["role"] == "moderator"
    # Made an admin, she may manage users herself, and demote the first admin.
    await admin.patch(f"/api/v1/admin/users/{alice_id}", json={"role": "admin"})
    root_id = await _id(admin)
    demoted = await alice.patch(f"/api/v1/admin/users/{root_id}", json={"role": "user"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "user"
    assert_problem(await admin.get("/api/v1/admin/users"), 403, "forbidden")


async def test_an_admin_cannot_remove_their_own_admin_role(api: Api) -> None:
    admin = await _admin(api)
    me = await _id(admin)
    for role in ("user", "plus", "moderator"):
        body = assert_problem(
            await admin.patch(f"/api/v1/admin/users/{me}", json={"role": role}),
            409,
            "cannot_remove_own_admin",
        )
        assert "another admin" in body["detail"]
    assert (await admin.get("/api/v1/me")).json()["role"] == "admin"
    same = await admin.patch(f"/api/v1/admin/users/{me}", json={"role": "admin"})
    assert same.status_code == 200 and same.json()["role"] == "admin"


async def test_only_admins_may_list_or_change_users(api: Api) -> None:
    alice = await api.user("alice")
    alice_id = await _id(alice)
    moderator = await api.user("mod")
    await api.container.accounts.set_role("mod", "moderator")
    change = f"/api/v1/admin/users/{alice_id}"
    anonymous = api.client()
    assert_problem(await anonymous.get("/api/v1/admin/users"), 401, "not_authenticated")
    assert_problem(await anonymous.patch(change, json={"role": "admin"}), 401, "not_authenticated")
    for client in (alice, moderator):
        # The answer the incident endpoints give a non-admin too; bad bodies change nothing.
        assert_problem(await client.get("/api/v1/admin/users"), 403, "forbidden")
        assert_problem(await client.patch(change, json={"role": "admin"}), 403, "forbidden")
        assert_problem(await client.patch(change, json={"role": "emperor"}), 403, "forbidden")
    assert_problem(
        await alice.post("/api/v1/admin/incidents", json={"title": "t", "body": "b"}),
        403,
        "forbidden",
    )
    assert (await alice.get("/api/v1/me")).json()["role"] == "user"


async def test_bad_input_to_the_user_endpoints(api: Api) -> None:
    admin = await _admin(api)
    alice_id = await _id(await api.user("alice"))
    change = f"/api/v1/admin/users/{alice_id}"
    assert_problem(
        await admin.patch(f"/api/v1/admin/users/{UNKNOWN}", json={"role": "plus"}),
        404,
        "not_found",
    )
    for body in ({"role": "emperor"}, {}, {"role": "plus", "username": "x"}, {"role": None}):
        assert_problem(await admin.patch(change, json=body), 422, "validation_error")
    broken = await admin.patch(
        change, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_problem(broken, 422, "validation_error")
    for params in ({"limit": 0}, {"limit": 101}, {"q": "x" * 65}, {"before": "y" * 65}):
        assert_problem(
            await admin.get("/api/v1/admin/users", params=params), 422, "validation_error"
        )
    # A cookie write without the CSRF header changes nothing.
    admin.headers.pop("X-CSRF-Token")
    assert_problem(await admin.patch(change, json={"role": "plus"}), 403, "csrf_failed")
    admin.headers["X-CSRF-Token"] = ""
    listed = (await admin.get("/api/v1/admin/users", params={"q": "alice"})).json()
    assert [u["role"] for u in listed["items"]] == ["user"]
