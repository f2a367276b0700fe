"""Avatars are uploaded pictures (data: URLs of PNG, JPEG, GIF or WebP images) or
https URLs; nothing else is stored, and nothing else stored earlier is shown."""

from __future__ import annotations

import base64
import io
import json
import zipfile

import pytest

from conftest import Api, assert_problem
from personae.storage.repos import characters as characters_repo
from picture_samples import picture


def data_url(media_type: str, content: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(content).decode('ascii')}"


PNG = data_url("image/png", picture(40, 30))
GOOD = [
    PNG,
    data_url("image/jpeg", picture(20, 20, "JPEG")),
    data_url("image/webp", picture(20, 20, "WEBP")),
    data_url("image/gif", picture(20, 20, "GIF")),
    "https://images.example.com/ilsa.png",
    "https://images.example.com:8443/a/b.webp?size=256#top",
]
BAD = [
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
    "data:image/png,rawbytes",
    "data:image/png;base64,not base64!!",
    data_url("image/png", b"<html><script>alert(1)</script>"),
    data_url("image/png", b"\xff\xd8\xff\xe0" + b"\x00" * 16),  # a JPEG called a PNG
    "http://images.example.com/ilsa.png",
    "/static/ilsa.png",
    "ilsa.png",
    "//images.example.com/ilsa.png",
    "https:images.example.com/ilsa.png",
    "https:///ilsa.png",
    "https://user:secret@images.example.com/ilsa.png",
    "https://images.example.com/il sa.png",
    "https://images.example.com/ilsa.png\r\nX-Header: 1",
    "https://images.example.com/\x01.png",  # (NUL is refused for every field)
    "https://images.example.com/" + "a" * 3000,
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "",
]


@pytest.mark.parametrize("avatar", GOOD)
async def test_uploaded_pictures_and_https_urls_are_taken(api: Api, avatar: str) -> None:
    alice = await api.user("alice")
    created = await alice.post("/api/v1/characters", json={"name": "Ilsa", "avatar": avatar})
    assert created.status_code == 201, created.text
    if avatar.startswith("https:"):
        assert created.json()["avatar"] == avatar
    else:  # stored as a picture, shown by its URL
        assert created.json()["avatar"].startswith("/api/v1/images/")


@pytest.mark.parametrize("avatar", BAD)
async def test_anything_else_is_refused_at_create_and_update(api: Api, avatar: str) -> None:
    alice = await api.user("alice")
    response = await alice.post("/api/v1/characters", json={"name": "Ilsa", "avatar": avatar})
    body = assert_problem(response, 422, "invalid_avatar")
    assert "avatar" in body["detail"]
    created = await alice.post("/api/v1/characters", json={"name": "Ilsa", "avatar": PNG})
    path = f"/api/v1/characters/{created.json()['id']}"
    shown = created.json()["avatar"]
    assert_problem(await alice.patch(path, json={"avatar": avatar}), 422, "invalid_avatar")
    assert (await alice.get(path)).json()["avatar"] == shown


async def test_an_imported_icon_that_is_no_raster_image_is_no_avatar(api: Api) -> None:
    alice = await api.user("alice")
    icon = {"type": "icon", "uri": "embeded://assets/icon/main.svg", "name": "main", "ext": "svg"}
    card = {
        "spec": "chara_card_v3",
        "spec_version": "3.0",
        "data": {"name": "Ilsa", "assets": [icon]},
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("card.json", json.dumps(card))
        archive.writestr(
            "assets/icon/main.svg", '<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>'
        )
    response = await alice.post(
        "/api/v1/characters/import", files={"file": ("card.charx", buffer.getvalue())}
    )
    assert response.status_code == 201, response.text
    assert response.json()["avatar"] is None


async def test_an_unsafe_avatar_stored_earlier_is_not_shown(api: Api) -> None:
    alice = await api.user("alice")
    created = await alice.post("/api/v1/characters", json={"name": "Ilsa"})
    character_id = created.json()["id"]
    async with api.container.database.write() as tx:
        await characters_repo.update_character(tx, character_id, {"avatar": "javascript:alert(1)"})
    assert (await alice.get(f"/api/v1/characters/{character_id}")).json()["avatar"] is None
    listed = (await alice.get("/api/v1/characters")).json()["items"]
    assert [item["avatar"] for item in listed if item["id"] == character_id] == [None]


async def test_a_persona_avatar_follows_the_same_rule(api: Api) -> None:
    alice = await api.user("alice")
    bad = await alice.post(
        "/api/v1/personas", json={"name": "Morgan", "avatar": "javascript:alert(1)"}
    )
    assert_problem(bad, 422, "invalid_avatar")
    good = await alice.post("/api/v1/personas", json={"name": "Morgan", "avatar": PNG})
    assert good.status_code == 201, good.text
    path = f"/api/v1/personas/{good.json()['id']}"
    assert_problem(
        await alice.patch(path, json={"avatar": "http://x.example/a.png"}), 422, "invalid_avatar"
    )
