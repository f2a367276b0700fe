"""Login attempts are limited per client address, registrations too (more on
login limits in test_login_limits.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from conftest import PASSWORD, Api, assert_problem
from personae.app import create_app
from personae.settings import Settings


@pytest.fixture
async def limited_api(make_settings: Callable[..., Settings]) -> AsyncIterator[Api]:
    settings = make_settings(login_rate_per_ip="5/minute")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        helper = Api(app)
        yield helper
        await helper.aclose()


def _login(username: str, password: str = "wrong password!") -> dict[str, str]:
    return {"username": username, "password": password}


async def test_login_is_limited_per_address(limited_api: Api) -> None:
    client = limited_api.client(ip="10.0.0.1")
    for number in range(5):
        response = await client.post("/api/v1/auth/login", json=_login(f"user{number}"))
        assert_problem(response, 401, "invalid_credentials")
    response = await client.post("/api/v1/auth/login", json=_login("someone-else"))
    assert_problem(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) >= 1

    elsewhere = limited_api.client(ip="10.0.0.2")
    response = await elsewhere.post("/api/v1/auth/login", json=_login("someone-else"))
    assert_problem(response, 401, "invalid_credentials")


async def test_registration_is_limited_per_address(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(register_rate_per_ip="2/hour"))
    async with app.router.lifespan_context(app):
        api = Api(app)
        await api.user("alice")
        await api.user("bob")
        response = await api.client().post(
            "/api/v1/auth/register", json={"username": "carol", "password": PASSWORD}
        )
        assert_problem(response, 429, "rate_limited")
        assert int(response.headers["retry-after"]) >= 1
        other = await api.client(ip="10.9.9.9").post(
            "/api/v1/auth/register", json={"username": "carol", "password": PASSWORD}
        )
        assert other.status_code == 201
        await api.aclose()
