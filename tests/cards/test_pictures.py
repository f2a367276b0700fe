"""Pictures that stay: avatars and card images stored with resized variants, served by
URL with caching headers, refused with a stable code when they are bad, counted in the
quota, and seen only by who may see their character."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from card_samples import V3_CARD, b64, card_png

from conftest import Api, assert_problem
from personae.settings import Settings
from picture_samples import data_url, picture, size_of

MAX_PIXELS = 500_000


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(image_max_pixels=MAX_PIXELS)


async def _character(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/characters", json={"name": "Ilsa", **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_png_card_with_a_large_picture_keeps_it_in_every_size(api: Api) -> None:
    alice = await api.user("alice")
    # Random pixels compress badly: ~1.3 MB, far past the old 512,000-character data URL.
    image = picture(600, 700, noise=True)
    assert len(image) > 1_000_000
    card = card_png({"ccv3": b64(V3_CARD)}, image=image)
    response = await alice.post("/api/v1/characters/import", files={"file": ("c.png", card)})
    assert response.status_code == 201, response.text
    character = response.json()
    assert character["avatar"] == character["avatar_urls"]["512"]
    for size in ("64", "256", "512"):
        served = await alice.get(character["avatar_urls"][size])
        assert served.status_code == 200, served.text
        assert served.headers["content-type"] == "image/webp"
        width, height = size_of(served.content)
        assert height == int(size)  # the longest side, aspect kept
        assert abs(width - 600 * int(size) / 700) <= 1
    # A request between sizes gets the nearest larger variant; past the largest, it.
    assert size_of((await alice.get(character["avatar_urls"]["64"][:-2] + "100")).content)[1] == 256
    assert (
        size_of((await alice.get(character["avatar_urls"]["64"][:-2] + "4000")).content)[1] == 512
    )
    # The card itself still exports with its own picture.
    exported = await alice.get(f"/api/v1/characters/{character['id']}/card.png")
    assert size_of(exported.content) == (600, 700)


async def test_a_small_picture_is_never_enlarged(api: Api) -> None:
    alice = await api.user("alice")
    character = await _character(alice, avatar=data_url(picture(40, 30)))
    served = await alice.get(character["avatar_urls"]["512"])
    assert size_of(served.content) == (40, 30)


async def test_pictures_are_cached_for_a_year_and_answer_304(api: Api) -> None:
    alice = await api.user("alice")
    character = await _character(alice, avatar=data_url(picture(50, 50, "JPEG"), "image/jpeg"))
    url = character["avatar_urls"]["256"]
    visitor = api.client()
    first = await visitor.get(url)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = await visitor.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["etag"] == etag
    other = await visitor.get(url, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.content == first.content


async def test_a_new_avatar_is_a_new_url_and_the_old_one_is_gone(api: Api) -> None:
    alice = await api.user("alice")
    character = await _character(alice, avatar=data_url(picture(30, 30)))
    path = f"/api/v1/characters/{character['id']}"
    # Sent back unchanged (as an editor does), the picture stays.
    kept = await alice.patch(path, json={"avatar": character["avatar"], "tagline": "x"})
    assert kept.status_code == 200, kept.text
    assert kept.json()["avatar"] == character["avatar"]
    changed = (await alice.patch(path, json={"avatar": data_url(picture(31, 31))})).json()
    assert changed["avatar"] != character["avatar"]
    assert_problem(await alice.get(character["avatar"]), 404, "not_found")
    assert (await alice.get(changed["avatar"])).status_code == 200
    # Another picture's URL is not a way to borrow it.
    other = await _character(alice, avatar=data_url(picture(32, 32)))
    assert_problem(await alice.patch(path, json={"avatar": other["avatar"]}), 422, "invalid_avatar")
    cleared = (await alice.patch(path, json={"avatar": None})).json()
    assert cleared["avatar"] is None and cleared["avatar_urls"] is None
    assert_problem(await alice.get(changed["avatar"]), 404, "not_found")


def _truncated_png() -> bytes:
    whole = picture(120, 120, noise=True)
    return whole[: len(whole) // 2]


@pytest.mark.parametrize(
    ("avatar", "code"),
    [
        (data_url(b"plain text, not a picture"), "invalid_avatar"),
        ("data:image/bmp;base64,Qk0=", "invalid_avatar"),
        (data_url(_truncated_png()), "image_unreadable"),
        (data_url(picture(800, 800)), "image_too_many_pixels"),
    ],
    ids=["text", "bmp", "truncated-png", "too-many-pixels"],  # the same in every worker
)
async def test_bad_pictures_are_refused_with_a_stable_code(
    api: Api, avatar: str, code: str
) -> None:
    alice = await api.user("alice")
    body = assert_problem(
        await alice.post("/api/v1/characters", json={"name": "Ilsa", "avatar": avatar}), 422, code
    )
    if code == "image_too_many_pixels":
        assert body["limit"] == MAX_PIXELS
    assert (await alice.get("/api/v1/characters?owner=me")).json()["items"] == []


def _charx(icon_name: str, icon: bytes) -> bytes:
    entry = {"type": "icon", "uri": f"embeded://assets/icon/{icon_name}", "name": "main"}
    card = {**V3_CARD, "data": {**V3_CARD["data"], "assets": [entry]}}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("card.json", json.dumps(card))
        archive.writestr(f"assets/icon/{icon_name}", icon)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("icon_name", "icon", "code"),
    [
        ("main.png", b"BM" + b"\x00" * 64, "image_unsupported"),  # a BMP called a PNG
        ("main.png", _truncated_png(), "image_unreadable"),
        ("main.webp", picture(900, 900, "WEBP"), "image_too_many_pixels"),
    ],
    ids=["bmp-named-png", "truncated-png", "too-many-pixels"],
)
async def test_a_card_whose_picture_is_bad_is_refused_whole(
    api: Api, icon_name: str, icon: bytes, code: str
) -> None:
    alice = await api.user("alice")
    response = await alice.post(
        "/api/v1/characters/import", files={"file": ("c.charx", _charx(icon_name, icon))}
    )
    assert_problem(response, 422, code)
    assert (await alice.get("/api/v1/characters?owner=me")).json()["items"] == []


async def test_a_charx_icon_becomes_the_avatar(api: Api) -> None:
    alice = await api.user("alice")
    archive = _charx("main.jpeg", picture(80, 60, "JPEG"))
    response = await alice.post("/api/v1/characters/import", files={"file": ("c.charx", archive)})
    assert response.status_code == 201, response.text
    served = await alice.get(response.json()["avatar_urls"]["64"])
    assert size_of(served.content) == (64, 48)


async def test_an_unknown_picture_is_not_found(api: Api) -> None:
    visitor = api.client()
    assert_problem(await visitor.get("/api/v1/images/01HZZZZZZZZZZZZZZZZZZZZZZZ"), 404, "not_found")


async def test_a_private_characters_picture_is_its_owners_only(api: Api) -> None:
    alice, bob = await api.user("alice"), await api.user("bob")
    private = await _character(alice, avatar=data_url(picture(20, 20)), visibility="private")
    url = private["avatar"]
    owned = await alice.get(url)
    assert owned.status_code == 200
    assert owned.headers["cache-control"].startswith("private,")
    assert_problem(await bob.get(url), 404, "not_found")
    assert_problem(await api.client().get(url), 404, "not_found")
    # Made public, it is anyone's; deleted, nobody's.
    path = f"/api/v1/characters/{private['id']}"
    assert (await alice.patch(path, json={"visibility": "public"})).status_code == 200
    assert (await bob.get(url)).headers["cache-control"].startswith("public,")
    assert (await alice.delete(path)).status_code == 204
    assert_problem(await alice.get(url), 404, "not_found")


async def test_an_unlisted_characters_picture_is_kept_out_of_shared_caches(api: Api) -> None:
    alice = await api.user("alice")
    unlisted = await _character(alice, avatar=data_url(picture(20, 20)), visibility="unlisted")
    served = await api.client().get(unlisted["avatar"])
    assert served.status_code == 200
    assert served.headers["cache-control"] == "private, max-age=31536000, immutable"


async def test_pictures_count_in_the_asset_quota(make_settings: Callable[..., Settings]) -> None:
    from personae.app import create_app

    app = create_app(make_settings(user_asset_quota_bytes=60_000))
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        small = await _character(alice, avatar=data_url(picture(40, 40)))
        big = data_url(picture(160, 160, noise=True))  # ~77 KB
        refused = await alice.post("/api/v1/characters", json={"name": "Big", "avatar": big})
        body = assert_problem(refused, 409, "quota_exceeded")
        assert body["quota"] == "asset_bytes" and body["limit"] == 60_000
        path = f"/api/v1/characters/{small['id']}"
        assert_problem(await alice.patch(path, json={"avatar": big}), 409, "quota_exceeded")
        # Nothing was half-written: the one character keeps its picture.
        listed = (await alice.get("/api/v1/characters?owner=me")).json()["items"]
        assert [c["avatar"] for c in listed] == [small["avatar"]]
        assert (await alice.get(small["avatar"])).status_code == 200
        await api.aclose()
