"""Login limits a stranger cannot turn against an account's owner.

Failures slow down their own (username, address) pair with doubling delays; one
address is still limited over all the usernames it tries; failures from everywhere
slow down, past a high bound, only addresses the account never signed in from.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import httpx
import pytest
import redis.asyncio as redis

from conftest import PASSWORD, REDIS_URL, Api, assert_problem
from personae.app import create_app
from personae.settings import Settings

OWNER = "203.0.113.10"
ATTACKER = "198.51.100.66"


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(make_settings: Callable[..., Settings]) -> AsyncIterator[MakeApi]:
    async with AsyncExitStack() as stack:

        async def _make(**overrides: Any) -> Api:
            app = create_app(make_settings(trusted_proxies="10.1.0.0/24", **overrides))
            await stack.enter_async_context(app.router.lifespan_context(app))
            helper = Api(app)
            stack.push_async_callback(helper.aclose)
            return helper

        yield _make


async def _login(
    api: Api, address: str, username: str = "alice", password: str = "wrong password!"
) -> httpx.Response:
    # Through the trusted proxy, as the tests of forwarded addresses do.
    client = api.client(ip="10.1.0.7")
    return await client.post(
        "/api/v1/auth/login",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
    )


async def test_a_stranger_hammering_a_username_does_not_lock_its_owner_out(
    make_api: MakeApi,
) -> None:
    api = await make_api()
    await api.user("alice")
    refused = 0
    for _ in range(15):
        response = await _login(api, ATTACKER)
        if response.status_code == 429:
            refused += 1
        else:
            assert_problem(response, 401, "invalid_credentials")
    assert refused > 0  # the stranger is slowed down

    owner = await _login(api, OWNER, password=PASSWORD)
    assert owner.status_code == 200, owner.text
    assert "personae_session" in owner.cookies
    # The owner's typo from their own address is an ordinary wrong password.
    assert_problem(await _login(api, OWNER), 401, "invalid_credentials")


async def test_the_attackers_own_pair_waits_longer_after_each_failure(
    make_api: MakeApi,
) -> None:
    api = await make_api(login_free_failures=2, login_delay_s=1)
    await api.user("alice")
    for _ in range(2):
        assert_problem(await _login(api, ATTACKER), 401, "invalid_credentials")

    waits = []
    while True:
        # Even the right password is refused while the pair waits: guessing is slowed.
        refused = await _login(api, ATTACKER, password=PASSWORD)
        body = assert_problem(refused, 429, "rate_limited")
        assert body["retryable"] is True
        retry_after = int(refused.headers["retry-after"])
        assert body["retry_after"] == retry_after
        waits.append(retry_after)
        if len(waits) == 3:
            break
        await asyncio.sleep(retry_after + 0.1)
        assert_problem(await _login(api, ATTACKER), 401, "invalid_credentials")
    assert waits == [1, 2, 4]

    # The same address with another username, and the owner elsewhere, are not slowed.
    assert_problem(await _login(api, ATTACKER, "bob"), 401, "invalid_credentials")
    assert (await _login(api, OWNER, password=PASSWORD)).status_code == 200


async def test_signing_in_forgets_the_pairs_failures(make_api: MakeApi) -> None:
    api = await make_api(login_free_failures=2, login_delay_s=60)
    await api.user("alice")
    assert_problem(await _login(api, OWNER), 401, "invalid_credentials")
    assert (await _login(api, OWNER, password=PASSWORD)).status_code == 200
    # Two more typos are free again, as if the first never happened.
    assert_problem(await _login(api, OWNER), 401, "invalid_credentials")
    assert_problem(await _login(api, OWNER), 401, "invalid_credentials")
    assert_problem(await _login(api, OWNER, password=PASSWORD), 429, "rate_limited")


async def test_one_address_spraying_many_usernames_is_stopped(
    make_api: MakeApi,
) -> None:
    api = await make_api(login_rate_per_ip="5/minute")
    await api.user("alice")
    for number in range(5):
        response = await _login(api, ATTACKER, f"user{number}")
        assert_problem(response, 401, "invalid_credentials")
    sprayed = await _login(api, ATTACKER, "alice", PASSWORD)
    assert_problem(sprayed, 429, "rate_limited")
    assert int(sprayed.headers["retry-after"]) >= 1
    # Every other address keeps its own limit.
    assert (await _login(api, OWNER, password=PASSWORD)).status_code == 200


async def test_failures_from_many_addresses_slow_only_addresses_new_to_the_account(
    make_api: MakeApi,
) -> None:
    api = await make_api(login_account_free_failures=3, login_delay_s=60)
    await api.user("alice")
    assert (await _login(api, OWNER, password=PASSWORD)).status_code == 200
    for number in range(3):
        response = await _login(api, f"198.51.100.{number}")
        assert_problem(response, 401, "invalid_credentials")

    # A botnet's next address waits, whatever password it tries.
    late = await _login(api, "198.51.100.99", password=PASSWORD)
    assert_problem(late, 429, "rate_limited")
    assert 1 <= int(late.headers["retry-after"]) <= 60
    # Where the owner signed in before, they still get in; other accounts are untouched.
    assert (await _login(api, OWNER, password=PASSWORD)).status_code == 200
    assert_problem(await _login(api, "198.51.100.99", "bob"), 401, "invalid_credentials")


@pytest.mark.skipif(REDIS_URL is None, reason="rate limits are in memory without Redis")
async def test_login_failures_live_in_redis_under_the_configured_prefix(
    make_api: MakeApi,
) -> None:
    api = await make_api()
    prefix = api.container.settings.redis_prefix
    await _login(api, ATTACKER)
    assert REDIS_URL is not None
    connection = redis.from_url(REDIS_URL)
    try:
        keys = [key.decode() async for key in connection.scan_iter(match=f"*{prefix}*")]
    finally:
        await connection.aclose()
    assert any("login-pair" in key and ATTACKER in key for key in keys), keys
    assert any("login-account" in key for key in keys), keys
    assert all(key.startswith(f"{prefix}:") for key in keys), keys
