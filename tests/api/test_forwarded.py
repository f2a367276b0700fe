"""Behind a reverse proxy: forwarded headers count only from trusted proxies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import redis.asyncio as redis

from conftest import PASSWORD, REDIS_URL, Api, assert_problem, serve_app
from personae.app import create_app
from personae.errors import ConfigurationError
from personae.settings import Settings, load_settings

PROXY = "10.1.0.7"
STRANGER = "198.51.100.7"


@pytest.fixture
async def proxied_api(make_settings: Callable[..., Settings]) -> AsyncIterator[Api]:
    settings = make_settings(trusted_proxies="10.1.0.0/24, ::1", login_rate_per_ip="3/minute")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        helper = Api(app)
        yield helper
        await helper.aclose()


async def _login(client: httpx.AsyncClient, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    body = {"username": "nobody", "password": "wrong password!"}
    return await client.post("/api/v1/auth/login", json=body, headers=headers)


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    proxied_api: Api,
) -> None:
    proxy = proxied_api.client(ip=PROXY)
    for _ in range(3):
        assert_problem(await _login(proxy, "203.0.113.5"), 401, "invalid_credentials")
    assert_problem(await _login(proxy, "203.0.113.5"), 429, "rate_limited")
    # The same proxy carries other clients, each with the whole limit.
    assert_problem(await _login(proxy, "203.0.113.6"), 401, "invalid_credentials")
    # What a client wrote before the proxy appended its address does not count.
    spoofed = await _login(proxy, "203.0.113.77, 203.0.113.5")
    assert_problem(spoofed, 429, "rate_limited")
    # Through two trusted proxies, the first untrusted address from the right is the client.
    chained = await _login(proxy, f"203.0.113.5, {PROXY}")
    assert_problem(chained, 429, "rate_limited")


async def test_from_anywhere_else_the_headers_are_ignored(proxied_api: Api) -> None:
    stranger = proxied_api.client(ip=STRANGER)
    for number in range(3):
        response = await _login(stranger, f"203.0.113.{number}")
        assert_problem(response, 401, "invalid_credentials")
    # A new made-up address each time dodges nothing: the connection's address counts.
    assert_problem(await _login(stranger, "203.0.113.99"), 429, "rate_limited")
    assert_problem(await _login(stranger), 429, "rate_limited")


async def test_cookies_are_secure_when_the_client_came_over_https(proxied_api: Api) -> None:
    https = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.8"}
    for address, secure in ((PROXY, True), (STRANGER, False)):
        client = proxied_api.client(ip=address)
        response = await client.post(
            "/api/v1/auth/register",
            json={"username": f"user-{secure}", "password": PASSWORD},
            headers=https,
        )
        assert response.status_code == 201, response.text
        cookies = response.headers.get_list("set-cookie")
        assert len(cookies) == 2
        assert all(("; secure" in c.lower()) is secure for c in cookies), cookies


@pytest.mark.skipif(REDIS_URL is None, reason="rate limits are in memory without Redis")
async def test_rate_limits_live_in_redis_under_the_configured_prefix(
    proxied_api: Api,
) -> None:
    prefix = proxied_api.container.settings.redis_prefix
    await _login(proxied_api.client(ip=PROXY), "203.0.113.42")
    assert REDIS_URL is not None
    connection = redis.from_url(REDIS_URL)
    try:
        keys = [key.decode() async for key in connection.scan_iter(match=f"*{prefix}*")]
    finally:
        await connection.aclose()
    limits = [key for key in keys if "login-ip" in key]
    assert limits and all("203.0.113.42" in key for key in limits)
    assert all(key.startswith(f"{prefix}:") for key in keys), keys


def test_trusted_proxies_are_addresses_or_ranges(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert make_settings().trusted_proxy_networks == ()  # trust nobody
    assert make_settings(trusted_proxies=["::1"]).trusted_proxies == ["::1"]
    monkeypatch.setenv("PERSONAE_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")
    assert make_settings().trusted_proxies == ["10.0.0.0/8", "192.168.1.1"]
    with pytest.raises(ConfigurationError, match="not an address"):
        load_settings(trusted_proxies="10.0.0.0/8,proxy.example.org")


async def test_event_streams_tell_proxies_not_to_buffer_or_cache(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(sse_heartbeat_s=0.1))
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        registered = await client.post(
            "/api/v1/auth/register", json={"username": "alice", "password": PASSWORD}
        )
        client.headers["X-CSRF-Token"] = registered.json()["csrf_token"]
        character = await client.post("/api/v1/characters", json={"name": "Bramble"})
        chat = await client.post("/api/v1/chats", json={"character_id": character.json()["id"]})
        events = f"/api/v1/chats/{chat.json()['id']}/events"
        async with client.stream("GET", events) as response:
            assert response.status_code == 200
            assert response.headers["x-accel-buffering"] == "no"
            assert response.headers["cache-control"] == "no-cache"
            assert await anext(response.aiter_lines()) is not None  # it flows at once
