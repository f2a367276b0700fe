"""Settings of one's account: the password, the display name, the sessions and their
readable device names, logging out everywhere else."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from conftest import PASSWORD, Api, assert_problem
from personae.app import create_app
from personae.services.devices import device_name
from personae.settings import Settings

NEW_PASSWORD = "another long passphrase"
CHROME_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"


async def _login(
    api: Api, username: str, password: str = PASSWORD, user_agent: str | None = None
) -> httpx.AsyncClient:
    client = api.client()
    headers = {"User-Agent": user_agent} if user_agent else {}
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}, headers=headers
    )
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return client


async def _try_login(api: Api, username: str, password: str) -> int:
    response = await api.client().post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    return response.status_code


# --- the password ---------------------------------------------------------------------


async def test_changing_the_password_logs_out_other_sessions_and_keeps_this_one(
    api: Api,
) -> None:
    alice = await api.user("alice")
    laptop = await _login(api, "alice")
    changed = await alice.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"sessions_ended": 1}
    assert (await alice.get("/api/v1/me")).status_code == 200
    assert_problem(await laptop.get("/api/v1/me"), 401, "not_authenticated")
    assert await _try_login(api, "alice", PASSWORD) == 401
    assert await _try_login(api, "alice", NEW_PASSWORD) == 200


async def test_a_wrong_or_missing_current_password_changes_nothing(api: Api) -> None:
    alice = await api.user("alice")
    laptop = await _login(api, "alice")
    wrong = await alice.post(
        "/api/v1/me/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
    )
    assert_problem(wrong, 422, "wrong_password")
    missing = await alice.post("/api/v1/me/password", json={"new_password": NEW_PASSWORD})
    assert_problem(missing, 422, "password_required")
    empty = await alice.post(
        "/api/v1/me/password", json={"current_password": "", "new_password": NEW_PASSWORD}
    )
    assert_problem(empty, 422, "password_required")
    assert (await laptop.get("/api/v1/me")).status_code == 200
    assert await _try_login(api, "alice", PASSWORD) == 200


@pytest.mark.parametrize(
    ("new_password", "code"),
    [
        ("short1", "weak_password"),
        ("password123", "weak_password"),
        ("alice-is-my-name", "weak_password"),
        (PASSWORD, "password_unchanged"),
    ],
)
async def test_a_weak_or_unchanged_new_password_is_refused(
    api: Api, new_password: str, code: str
) -> None:
    alice = await api.user("alice")
    response = await alice.post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": new_password}
    )
    assert_problem(response, 422, code)
    assert await _try_login(api, "alice", PASSWORD) == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"current_password": PASSWORD},
        {"current_password": PASSWORD, "new_password": ""},
        {"current_password": PASSWORD, "new_password": 12345678901},
        {"current_password": PASSWORD, "new_password": NEW_PASSWORD, "role": "admin"},
        {"current_password": PASSWORD, "new_password": "x" * 1025},
        {"current_password": PASSWORD, "new_password": "nul\u0000character here"},
    ],
)
async def test_bad_password_change_bodies_are_validation_errors(
    api: Api, body: dict[str, object]
) -> None:
    alice = await api.user("alice")
    assert_problem(await alice.post("/api/v1/me/password", json=body), 422, "validation_error")
    assert await _try_login(api, "alice", PASSWORD) == 200


async def test_guessing_the_current_password_is_slowed_down_like_login(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(login_free_failures=2, login_delay_s=60))
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        for _ in range(2):
            wrong = await alice.post(
                "/api/v1/me/password",
                json={"current_password": "a wrong guess!", "new_password": NEW_PASSWORD},
            )
            assert_problem(wrong, 422, "wrong_password")
        # Waiting now, even with the right password: a guesser learns nothing more.
        right = await alice.post(
            "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        )
        body = assert_problem(right, 429, "rate_limited")
        assert body["retryable"] and int(right.headers["retry-after"]) > 0
        await api.aclose()


async def test_with_an_api_token_every_session_ends(api: Api) -> None:
    alice = await api.user("alice")
    token = (await alice.post("/api/v1/tokens", json={"name": "script"})).json()["token"]
    changed = await api.bearer(token).post(
        "/api/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert changed.json() == {"sessions_ended": 1}
    assert_problem(await alice.get("/api/v1/me"), 401, "not_authenticated")
    # The token is not a session: it keeps working (revoke it on its own).
    assert (await api.bearer(token).get("/api/v1/me")).status_code == 200


# --- the display name ------------------------------------------------------------------


async def test_the_display_name_changes_and_new_chats_use_it(api: Api) -> None:
    alice = await api.user("alice", display_name="Alice")
    changed = await alice.patch("/api/v1/me", json={"display_name": "  Ada Lovelace "})
    assert changed.status_code == 200, changed.text
    assert changed.json()["display_name"] == "Ada Lovelace"
    me = (await alice.get("/api/v1/me")).json()
    assert me["display_name"] == "Ada Lovelace" and me["username"] == "alice"
    character = (
        await alice.post("/api/v1/characters", json={"name": "Fox", "description": "a fox"})
    ).json()
    chat = (await alice.post("/api/v1/chats", json={"character_id": character["id"]})).json()
    assert chat["persona_name"] == "Ada Lovelace"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"display_name": ""}, "display_name"),
        ({"display_name": "   "}, "display_name"),
        ({"display_name": "two\nlines"}, "display_name"),
        ({"display_name": "tab\there"}, "display_name"),
        ({"display_name": "x" * 65}, "display_name"),
        ({"display_name": 7}, "display_name"),
        ({"display_name": "Ada", "username": "root"}, "username"),
    ],
)
async def test_bad_display_names_are_refused_naming_the_field(
    api: Api, body: dict[str, object], field: str
) -> None:
    alice = await api.user("alice", display_name="Alice")
    problem = assert_problem(await alice.patch("/api/v1/me", json=body), 422, "validation_error")
    assert field in [error["field"] for error in problem["errors"]], problem
    assert (await alice.get("/api/v1/me")).json()["display_name"] == "Alice"


async def test_an_empty_patch_is_refused(api: Api) -> None:
    alice = await api.user("alice")
    assert_problem(await alice.patch("/api/v1/me", json={}), 422, "validation_error")


async def test_a_refused_setting_leaves_the_other_one_unchanged(api: Api) -> None:
    alice = await api.user("alice", display_name="Alice")
    refused = await alice.patch("/api/v1/me", json={"display_name": "Ada", "show_mature": True})
    assert_problem(refused, 403, "adult_confirmation_required")
    assert (await alice.get("/api/v1/me")).json()["display_name"] == "Alice"
    both = await alice.patch("/api/v1/me", json={"display_name": "Ada", "show_mature": False})
    assert both.json()["display_name"] == "Ada" and both.json()["show_mature"] is False


# --- sessions ----------------------------------------------------------------------------


async def test_sessions_carry_readable_device_names(api: Api) -> None:
    alice = await api.user("alice")
    await _login(api, "alice", user_agent=CHROME_ANDROID)
    await _login(api, "alice", user_agent=FIREFOX_LINUX)
    await _login(api, "alice", user_agent="personae-client/0.1.0")
    sessions = (await alice.get("/api/v1/me/sessions")).json()
    devices = sorted(session["device"] for session in sessions)
    assert devices == sorted(
        [
            "A Python script (httpx)",  # the test client that registered
            "Chrome on Android",
            "Firefox on Linux",
            "personae terminal client",
        ]
    )
    assert any(s["user_agent"] == CHROME_ANDROID for s in sessions)


async def test_logging_out_everywhere_else_keeps_only_this_session(api: Api) -> None:
    alice = await api.user("alice")
    phone = await _login(api, "alice", user_agent=CHROME_ANDROID)
    laptop = await _login(api, "alice", user_agent=FIREFOX_LINUX)
    bob = await api.user("bob")
    ended = await phone.delete("/api/v1/me/sessions")
    assert ended.status_code == 200, ended.text
    assert ended.json() == {"sessions_ended": 2}
    assert (await phone.get("/api/v1/me")).status_code == 200
    for gone in (alice, laptop):
        assert_problem(await gone.get("/api/v1/me"), 401, "not_authenticated")
    assert (await bob.get("/api/v1/me")).status_code == 200  # others' sessions untouched
    [left] = (await phone.get("/api/v1/me/sessions")).json()
    assert left["current"] and left["device"] == "Chrome on Android"
    assert (await phone.delete("/api/v1/me/sessions")).json() == {"sessions_ended": 0}


async def test_logging_out_everywhere_needs_a_session_and_csrf(api: Api) -> None:
    assert_problem(await api.client().delete("/api/v1/me/sessions"), 401, "not_authenticated")
    alice = await api.user("alice")
    del alice.headers["X-CSRF-Token"]
    assert_problem(await alice.delete("/api/v1/me/sessions"), 403, "csrf_failed")
    alice_token = await api.user("alice2")
    token = (await alice_token.post("/api/v1/tokens", json={"name": "t"})).json()["token"]
    ended = await api.bearer(token).delete("/api/v1/me/sessions")
    assert ended.json() == {"sessions_ended": 1}  # by token: every session ends


@pytest.mark.parametrize(
    ("user_agent", "name"),
    [
        (CHROME_ANDROID, "Chrome on Android"),
        (FIREFOX_LINUX, "Firefox on Linux"),
        ("personae-client/0.1.0", "personae terminal client"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "Safari on iPhone",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0",
            "Edge on Windows",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like "
            "Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Chrome on macOS",
        ),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) Chrome/124.0", "Chrome on ChromeOS"),
        ("curl/8.5.0", "curl"),
        (
            "Mozilla/5.0 (Linux; Android 14) SamsungBrowser/24.0 Chrome/117",
            "Samsung Internet on Android",
        ),
        ("Mozilla/5.0 (Linux; Android 14) Opera OPR/80", "Opera on Android"),
        ("Mozilla/5.0 (Windows NT 10.0)", "A browser on Windows"),
        ("", "Unknown device"),
        (None, "Unknown device"),
        ("\x00\u202e" + "(" * 5000 + "a" * 100_000, "Unknown device"),
    ],
)
def test_device_names(user_agent: str | None, name: str) -> None:
    assert device_name(user_agent) == name


def test_the_device_parser_is_bounded() -> None:
    import time

    hostile = "Mozilla/5.0 (" + "Linux; " * 200_000 + ")"
    started = time.perf_counter()
    for _ in range(100):
        device_name(hostile)
    # 100 parses of a 1.4 MB header: the parser reads 256 characters of it.
    assert time.perf_counter() - started < 1.0


async def test_a_deleted_looking_username_cannot_be_registered(api: Api) -> None:
    response = await api.client().post(
        "/api/v1/auth/register", json={"username": "deleted-abc", "password": PASSWORD}
    )
    assert_problem(response, 409, "username_taken")
