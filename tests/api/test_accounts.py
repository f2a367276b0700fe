"""Registration, login, logout, the current user and sessions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from conftest import PASSWORD, Api, assert_problem
from personae.app import create_app
from personae.settings import Settings
from personae.storage.tables import sessions
from personae.storage.types import utcnow


def _set_cookie_headers(response: httpx.Response, name: str) -> list[str]:
    return [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]


async def test_register_sets_an_httponly_lax_cookie_and_returns_a_csrf_token(api: Api) -> None:
    client = api.client()
    response = await client.post(
        "/api/v1/auth/register",
        json={"username": "Alice", "password": PASSWORD, "display_name": "Alice A."},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["user"]["username"] == "alice"
    assert body["user"]["display_name"] == "Alice A."
    assert body["user"]["role"] == "user"
    assert body["csrf_token"]
    [session_cookie] = _set_cookie_headers(response, "personae_session")
    assert "httponly" in session_cookie.lower()
    assert "samesite=lax" in session_cookie.lower()
    [csrf_cookie] = _set_cookie_headers(response, "personae_csrf")
    assert csrf_cookie.startswith(f"personae_csrf={body['csrf_token']};")
    assert "httponly" not in csrf_cookie.lower()
    assert "password" not in response.text.lower()

    me = await client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["id"] == body["user"]["id"]


async def test_a_role_cannot_be_chosen_at_registration(api: Api) -> None:
    response = await api.client().post(
        "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD, "role": "admin"}
    )
    body = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["role"]
    login = await api.client().post(
        "/api/v1/auth/login", json={"username": "alice", "password": PASSWORD}
    )
    assert_problem(login, 401, "invalid_credentials")


async def test_cookies_are_marked_secure_when_configured(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(cookie_secure=True))
    async with app.router.lifespan_context(app):
        api = Api(app)
        response = await api.client().post(
            "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
        )
        for name in ("personae_session", "personae_csrf"):
            [cookie] = _set_cookie_headers(response, name)
            assert "; secure" in cookie.lower()
        await api.aclose()


async def test_duplicate_username_is_refused_whatever_its_case(api: Api) -> None:
    await api.user("alice")
    response = await api.client().post(
        "/api/v1/auth/register", json={"username": "ALICE", "password": PASSWORD}
    )
    assert_problem(response, 409, "username_taken")


@pytest.mark.parametrize(
    "password",
    ["short1!", "password123", "aaaaaaaaaaaa", "my-alice-password"],
    ids=["too-short", "common", "too-simple", "contains-username"],
)
async def test_weak_passwords_are_refused(api: Api, password: str) -> None:
    client = api.client()
    response = await client.post(
        "/api/v1/auth/register", json={"username": "Alice", "password": password}
    )
    body = assert_problem(response, 422, "weak_password")
    assert body["detail"] != body["title"]  # says why
    login = await client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": password}
    )
    assert_problem(login, 401, "invalid_credentials")


@pytest.mark.parametrize("username", ["ab", "has space", "-dash-first", "x" * 33, "émile", "a/b"])
async def test_invalid_usernames_are_refused_naming_the_field(api: Api, username: str) -> None:
    response = await api.client().post(
        "/api/v1/auth/register", json={"username": username, "password": PASSWORD}
    )
    body = assert_problem(response, 422, "validation_error")
    assert [error["field"] for error in body["errors"]] == ["username"]


async def test_login_works_with_any_case_of_the_username(api: Api) -> None:
    await api.user("alice")
    client = api.client()
    response = await client.post(
        "/api/v1/auth/login", json={"username": " Alice ", "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    assert response.json()["user"]["username"] == "alice"
    assert (await client.get("/api/v1/me")).json()["username"] == "alice"


async def test_wrong_password_and_unknown_user_look_the_same(api: Api) -> None:
    await api.user("alice")
    client = api.client()
    wrong = await client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": "not the password"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"username": "nobody", "password": PASSWORD}
    )
    wrong_body = assert_problem(wrong, 401, "invalid_credentials")
    unknown_body = assert_problem(unknown, 401, "invalid_credentials")
    for body in (wrong_body, unknown_body):
        del body["request_id"]
    assert wrong_body == unknown_body
    assert "personae_session" not in client.cookies


async def test_logout_ends_the_session(api: Api) -> None:
    alice = await api.user("alice")
    cookie = alice.cookies["personae_session"]
    response = await alice.post("/api/v1/auth/logout")
    assert response.status_code == 204
    assert "personae_session" not in alice.cookies

    replay = api.client()
    replay.cookies.set("personae_session", cookie)
    assert_problem(await replay.get("/api/v1/me"), 401, "not_authenticated")


async def test_me_without_credentials_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/me")
    assert_problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_sessions_are_listed_and_can_be_revoked(api: Api) -> None:
    laptop = await api.user("alice")
    phone = api.client()
    login = await phone.post(
        "/api/v1/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers={"User-Agent": "phone"},
    )
    phone.headers["X-CSRF-Token"] = login.json()["csrf_token"]

    listed = await laptop.get("/api/v1/me/sessions")
    assert listed.status_code == 200
    sessions_seen = listed.json()
    assert len(sessions_seen) == 2
    assert [s["current"] for s in sessions_seen].count(True) == 1
    [phone_session] = [s for s in sessions_seen if s["user_agent"] == "phone"]
    assert phone_session["current"] is False

    revoked = await laptop.delete(f"/api/v1/me/sessions/{phone_session['id']}")
    assert revoked.status_code == 204
    assert_problem(await phone.get("/api/v1/me"), 401, "not_authenticated")
    assert (await laptop.get("/api/v1/me")).status_code == 200
    assert len((await laptop.get("/api/v1/me/sessions")).json()) == 1
    again = await laptop.delete(f"/api/v1/me/sessions/{phone_session['id']}")
    assert_problem(again, 404, "not_found")


async def test_another_users_session_cannot_be_revoked(api: Api) -> None:
    alice = await api.user("alice")
    bob = await api.user("bob")
    [bob_session] = (await bob.get("/api/v1/me/sessions")).json()
    response = await alice.delete(f"/api/v1/me/sessions/{bob_session['id']}")
    assert_problem(response, 404, "not_found")
    assert (await bob.get("/api/v1/me")).status_code == 200


async def test_a_session_in_use_slides_its_expiry(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(session_renew_after_s=0))
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        [before] = (await alice.get("/api/v1/me/sessions")).json()
        response = await alice.get("/api/v1/me")
        assert response.status_code == 200
        assert _set_cookie_headers(response, "personae_session")
        [after] = (await alice.get("/api/v1/me/sessions")).json()
        assert datetime.fromisoformat(after["expires_at"]) > datetime.fromisoformat(
            before["expires_at"]
        )
        await api.aclose()


async def test_a_session_not_due_for_renewal_sends_no_cookie(api: Api) -> None:
    alice = await api.user("alice")
    response = await alice.get("/api/v1/me")
    assert response.status_code == 200
    assert not _set_cookie_headers(response, "personae_session")


async def test_an_expired_session_is_refused_with_session_expired(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(session_ttl_s=60))
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        async with api.container.database.write() as tx:
            await tx.execute(update(sessions).values(expires_at=utcnow() - timedelta(seconds=1)))
        assert_problem(await alice.get("/api/v1/me"), 401, "session_expired")
        created = await alice.post("/api/v1/characters", json={"name": "Nope"})
        assert_problem(created, 401, "session_expired")
        await api.aclose()


async def test_the_demo_owners_name_cannot_be_registered(client: httpx.AsyncClient) -> None:
    answer = await client.post(
        "/api/v1/auth/register", json={"username": "Personae", "password": PASSWORD}
    )
    assert_problem(answer, 409, "username_taken")


async def test_a_stale_session_cookie_on_a_public_page_is_just_a_visitor(api: Api) -> None:
    visitor = api.client()
    visitor.cookies.set("personae_session", "no-such-session")
    answer = await visitor.get("/api/v1/characters")
    assert answer.status_code == 200
    assert_problem(await visitor.get("/api/v1/me"), 401, "not_authenticated")
