"""The web app is served at / without shadowing the server's own addresses."""

from __future__ import annotations

import httpx
import pytest

from conftest import assert_problem


@pytest.mark.parametrize("path", ["/", "/chats/01ABC", "/c/xyz/edit", "/account"])
async def test_pages_get_the_app_shell(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/js/app.js">' in response.text


async def test_static_files_and_the_service_worker(client: httpx.AsyncClient) -> None:
    script = await client.get("/js/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    worker = await client.get("/sw.js")
    assert worker.headers["service-worker-allowed"] == "/"
    manifest = await client.get("/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    assert manifest.json()["start_url"] == "/"
    icon = await client.get("/icons/icon-192.png")
    assert icon.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/nothing-here"),
        ("GET", "/api"),
        ("GET", "/missing.js"),
        ("GET", "/js/../../settings.py"),
        ("POST", "/some/page"),
        ("DELETE", "/"),
    ],
)
async def test_server_addresses_are_never_shadowed(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    assert_problem(await client.request(method, path), 404, "not_found")


async def test_server_pages_still_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/status")).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/docs")).status_code == 200
    notice = await client.get("/api/v1/notice")
    assert notice.json()["kind"] == "none"


async def test_the_status_page_links_back_to_the_app(client: httpx.AsyncClient) -> None:
    page = (await client.get("/status")).text
    assert '<a href="/">← Back to Personae</a>' in page
    assert "<a href='/'>Open the app</a>" in page
