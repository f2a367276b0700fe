"""Security headers on every answer (a CSP with no inline script, no sniffing, no
framing), the API reference served from local files, and /metrics behind its token."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import Api, assert_problem
from personae.app import create_app
from personae.settings import Settings

WEB = Path(__file__).resolve().parents[2] / "src" / "personae" / "web"
_PAGES = ["/", "/status", "/api/v1/characters", "/api/v1/characters/unknown", "/docs", "/healthz"]


def _directives(policy: str) -> dict[str, list[str]]:
    parts = (part.strip().split() for part in policy.split(";") if part.strip())
    return {words[0]: words[1:] for words in parts}


@pytest.mark.parametrize("path", _PAGES)
async def test_every_answer_has_the_security_headers(api: Api, path: str) -> None:
    response = await api.client().get(path)
    policy = _directives(response.headers["content-security-policy"])
    assert policy["script-src"] == ["'self'"], "no inline script, no other origin"
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["default-src"] == ["'self'"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "strict-transport-security" not in response.headers, "plain http: no HSTS"


async def test_hsts_only_when_the_trusted_proxy_says_https(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(trusted_proxies=["127.0.0.1"]))
    async with app.router.lifespan_context(app):
        api = Api(app)
        secure = await api.client().get("/healthz", headers={"X-Forwarded-Proto": "https"})
        assert secure.headers["strict-transport-security"].startswith("max-age=31536000")
        await api.aclose()


async def test_the_status_pages_only_inline_style_is_allowed_by_its_hash(api: Api) -> None:
    response = await api.client().get("/status")
    styles = re.findall(r"<style>(.*?)</style>", response.text, re.S)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    policy = _directives(response.headers["content-security-policy"])
    assert f"'sha256-{digest}'" in policy["style-src"]
    assert "'unsafe-inline'" not in policy["style-src"]
    assert "<script" not in response.text


def test_no_shipped_page_has_inline_script_or_handlers() -> None:
    for page in WEB.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), page.name
        assert not re.search(r"\son[a-z]+\s*=", text), f"inline event handler in {page.name}"


async def test_the_api_reference_loads_from_this_server_only(api: Api) -> None:
    client = api.client()
    page = await client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text), "nothing from a CDN"
    for path in re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page.text):
        assert (await client.get(path)).status_code == 200, path
    assert (await client.get("/openapi.json")).status_code == 200
    assert (await client.get("/redoc")).status_code == 404


async def test_metrics_need_the_token_when_one_is_set(
    make_settings: Callable[..., Settings],
) -> None:
    token = "a-metrics-token-of-some-length"
    app = create_app(make_settings(metrics_token=token))
    async with app.router.lifespan_context(app):
        client = Api(app).client()
        assert_problem(await client.get("/metrics"), 401, "not_authenticated")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert_problem(wrong, 401, "not_authenticated")
        right = await client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert right.status_code == 200 and "personae_queue_length" in right.text
        await Api(app).aclose()


async def test_metrics_stay_open_without_a_token(api: Api) -> None:
    assert (await api.client().get("/metrics")).status_code == 200
