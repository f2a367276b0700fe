"""POST /characters/import and GET .../card.json|png|charx: round trips and bad files."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from card_samples import HAPPY_PNG, LOREBOOK, V1_CARD, V2_CARD, V3_CARD, b64, card_png, charx

from conftest import Api, assert_problem
from personae.cards import png
from personae.services.prompting import build_prompt, system_prompt
from personae.storage.repos import characters as character_repo
from personae.storage.repos.chats import ChatRecord

IMPORT = "/api/v1/characters/import"
# (Each import stores its own copy of the picture: the same picture under a new URL.)
SERVER_KEPT = {
    *("id", "owner_id", "owner_username", "created_at", "updated_at", "chat_count"),
    *("avatar", "avatar_urls"),
}


async def upload(
    client: httpx.AsyncClient, data: bytes, name: str = "card.bin", **form: str
) -> httpx.Response:
    return await client.post(IMPORT, files={"file": (name, data)}, data=form)


async def imported(client: httpx.AsyncClient, data: bytes, **form: str) -> dict[str, Any]:
    response = await upload(client, data, **form)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def same_character(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert {k: v for k, v in a.items() if k not in SERVER_KEPT} == {
        k: v for k, v in b.items() if k not in SERVER_KEPT
    }


def chunk_card(image: bytes, keyword: str) -> dict[str, Any]:
    card: dict[str, Any] = json.loads(base64.b64decode(png.text_chunks(image)[keyword]))
    return card


async def test_a_v3_json_card_imports_with_every_field_and_exports_unchanged(api: Api) -> None:
    alice = await api.user("alice")
    character = await imported(alice, json.dumps(V3_CARD).encode(), name="ilsa.png")
    assert character["name"] == "Captain Ilsa Varga"
    assert character["nickname"] == "Cap" and character["creation_date"] == 1_700_000_000
    assert character["group_only_greetings"] == ["Crew, to stations!"]
    assert character["first_message"] == V3_CARD["data"]["first_mes"]
    assert character["character_book"]["entries"][0]["selective_logic"] == "and_any"
    assert character["extensions"] == V3_CARD["data"]["extensions"]

    exported = await alice.get(f"/api/v1/characters/{character['id']}/card.json")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/json")
    assert "attachment" in exported.headers["content-disposition"]
    assert exported.json() == V3_CARD

    v2 = (await alice.get(f"/api/v1/characters/{character['id']}/card.json?spec=v2")).json()
    assert v2["spec"] == "chara_card_v2" and v2["spec_version"] == "2.0"
    assert v2["data"]["x_unknown_data_key"] == V3_CARD["data"]["x_unknown_data_key"]


async def test_an_edit_shows_in_the_export_and_unknown_keys_stay(api: Api) -> None:
    alice = await api.user("alice")
    character = await imported(alice, json.dumps(V2_CARD).encode())
    response = await alice.patch(
        f"/api/v1/characters/{character['id']}", json={"personality": "calm now"}
    )
    assert response.status_code == 200, response.text
    card = (await alice.get(f"/api/v1/characters/{character['id']}/card.json?spec=v2")).json()
    assert card["data"]["personality"] == "calm now"
    assert card["x_exporter_root"] == V2_CARD["x_exporter_root"]
    assert {k: v for k, v in card["data"].items() if k != "personality"} == {
        k: v for k, v in V2_CARD["data"].items() if k != "personality"
    }


async def test_a_png_card_reads_ccv3_first_and_exports_both_chunks(api: Api) -> None:
    alice = await api.user("alice")
    v2_only = {**V2_CARD, "data": {**V2_CARD["data"], "name": "From chara"}}
    image = card_png({"chara": b64(v2_only), "ccv3": b64(V3_CARD)})
    character = await imported(alice, image, name="card.json")
    assert character["name"] == "Captain Ilsa Varga" and character["nickname"] == "Cap"
    assert character["avatar"].startswith("/api/v1/images/")

    response = await alice.get(f"/api/v1/characters/{character['id']}/card.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    exported = response.content
    assert chunk_card(exported, "ccv3") == V3_CARD
    assert chunk_card(exported, "chara")["spec"] == "chara_card_v2"
    keywords = [c.data.split(b"\x00")[0] for c in png.read_chunks(exported) if c.kind == b"tEXt"]
    assert sorted(keywords) == [b"ccv3", b"chara"]  # the stale pair was replaced, not added to
    idat = [c for c in png.read_chunks(exported) if c.kind == b"IDAT"]
    assert idat == [c for c in png.read_chunks(image) if c.kind == b"IDAT"]


async def test_a_v2_png_card_round_trips_through_every_container(api: Api) -> None:
    alice = await api.user("alice")
    first = await imported(alice, card_png({"chara": b64(V2_CARD)}))
    base = f"/api/v1/characters/{first['id']}"
    assert chunk_card((await alice.get(f"{base}/card.png")).content, "chara") == V2_CARD
    for suffix in ("card.json", "card.json?spec=v2", "card.png", "card.charx"):
        exported = await alice.get(f"{base}/{suffix}")
        assert exported.status_code == 200, suffix
        again = await imported(alice, exported.content)
        # JSON carries no image; the other containers carry it
        assert (again["avatar"] is None) == suffix.startswith("card.json"), suffix
        same_character(again, first)


async def test_a_charx_card_keeps_its_assets(api: Api) -> None:
    alice = await api.user("alice")
    archive = charx(
        V3_CARD,
        {"assets/emotion/images/happy.png": HAPPY_PNG, "x_meta/notes.txt": b"keep me"},
    )
    character = await imported(alice, archive)
    assert character["nickname"] == "Cap"

    response = await alice.get(f"/api/v1/characters/{character['id']}/card.charx")
    assert response.status_code == 200
    with zipfile.ZipFile(io.BytesIO(response.content)) as exported:
        assert json.loads(exported.read("card.json")) == V3_CARD
        assert exported.read("assets/emotion/images/happy.png") == HAPPY_PNG
        assert exported.read("x_meta/notes.txt") == b"keep me"
    same_character(await imported(alice, response.content), character)


async def test_a_v1_card_and_a_character_made_here_export_as_cards(api: Api) -> None:
    alice = await api.user("alice")
    old = await imported(alice, json.dumps(V1_CARD).encode())
    card = (await alice.get(f"/api/v1/characters/{old['id']}/card.json")).json()
    assert card["spec"] == "chara_card_v3" and card["data"]["first_mes"] == "Who goes there?"

    made = await alice.post("/api/v1/characters", json={"name": "Bramble", "tags": ["cosy"]})
    character_id = made.json()["id"]
    card = (await alice.get(f"/api/v1/characters/{character_id}/card.json")).json()
    assert card["data"]["name"] == "Bramble" and card["data"]["tags"] == ["cosy"]
    assert card["data"]["creation_date"] > 0
    image = (await alice.get(f"/api/v1/characters/{character_id}/card.png")).content
    assert chunk_card(image, "ccv3")["data"]["name"] == "Bramble"
    assert chunk_card(image, "chara")["spec"] == "chara_card_v2"


async def test_html_in_card_fields_is_kept_as_text(api: Api) -> None:
    alice = await api.user("alice")
    script = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    card = {"spec": "chara_card_v2", "data": {"name": "Eve", "description": script}}
    character = await imported(alice, json.dumps(card).encode())
    assert character["description"] == script


async def test_creator_notes_never_reach_the_prompt_and_macros_are_filled(api: Api) -> None:
    alice = await api.user("alice")
    created = await imported(alice, json.dumps(V2_CARD).encode())
    async with api.container.database.read() as tx:
        character = await character_repo.get_character(tx, created["id"])
    assert character is not None
    now = datetime.now(UTC)
    chat = ChatRecord("c", "o", character.id, character.name, "t", "Sam", "", 0, None, now, now)
    system = system_prompt(character, chat)
    assert "SECRET-CREATOR-NOTE" not in system
    assert system.startswith("Stay in character as Captain Ilsa Varga.")
    assert "Sam buys passage on the Captain Ilsa Varga's ship." in system
    turns = build_prompt(
        character, chat, [], partial_reply="", budget_tokens=2000, count=lambda t: len(t.split())
    )
    assert all("SECRET-CREATOR-NOTE" not in turn.content for turn in turns)
    assert turns[-1].content == "Keep replies short, Captain Ilsa Varga."


def _bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(V3_CARD))
        archive.writestr("assets/zeros.bin", b"\x00" * (70 * 1024 * 1024))
    return buffer.getvalue()


BAD_FILES: list[tuple[str, bytes, int, str, str]] = [
    ("png without a card", card_png({"Comment": "hi"}), 422, "card_missing", "no character"),
    ("truncated png", card_png({"chara": b64(V2_CARD)})[:-30], 422, "invalid_png", "truncated"),
    ("bad base64", card_png({"chara": "not base64!!"}), 422, "invalid_card", "base64"),
    ("base64 not json", card_png({"chara": "aGVsbG8="}), 422, "invalid_card", "not valid JSON"),
    ("json not a card", b'{"hello": "world"}', 422, "invalid_card", "not a character card"),
    ("broken json", b'{"spec": ', 422, "invalid_card", "not valid JSON"),
    (
        "wrong types",
        json.dumps({"spec": "chara_card_v2", "data": {"name": "A", "tags": {"a": 1}}}).encode(),
        422,
        "invalid_card",
        "data.tags",
    ),
    ("zip without card.json", charx(None, {"x.txt": b"x"}), 422, "card_missing", "card.json"),
    ("zip slip", charx(V3_CARD, {"../evil.txt": b"x"}), 422, "invalid_card", "unsafe path"),
    ("gif", b"GIF89a\x01\x00", 422, "unsupported_card_file", "neither"),
    (
        "lorebook",
        json.dumps({"spec": "lorebook_v3", "data": LOREBOOK}).encode(),
        422,
        "invalid_card",
        "lorebook",
    ),
]


@pytest.mark.parametrize(
    ("data", "status", "code", "words"),
    [case[1:] for case in BAD_FILES],
    ids=[case[0] for case in BAD_FILES],
)
async def test_bad_files_are_refused_and_nothing_is_stored(
    api: Api, data: bytes, status: int, code: str, words: str
) -> None:
    alice = await api.user("alice")
    body = assert_problem(await upload(alice, data), status, code)
    assert words in body["detail"]
    listing = await alice.get("/api/v1/characters", params={"owner": "me"})
    assert listing.json()["items"] == []


async def test_a_zip_bomb_is_refused_without_unpacking_it(api: Api) -> None:
    alice = await api.user("alice")
    bomb = _bomb()
    assert len(bomb) < 1024 * 1024
    # The card's cap (16 MiB by default) is below the archive's (8 x the upload limit).
    assert_problem(await upload(alice, bomb), 413, "card_too_large")
    assert (await alice.get("/api/v1/characters", params={"owner": "me"})).json()["items"] == []


async def test_a_file_over_the_upload_limit_gets_413(api: Api) -> None:
    alice = await api.user("alice")
    huge = json.dumps({**V3_CARD, "padding": "x" * (8 * 1024 * 1024)}).encode()
    assert_problem(await upload(alice, huge), 413, "payload_too_large")
    # A card over the ordinary 1 MiB body limit but under the upload limit is fine.
    big = {**V3_CARD, "padding": "x" * (2 * 1024 * 1024)}
    assert (await upload(alice, json.dumps(big).encode())).status_code == 201


async def test_importing_needs_a_login_and_a_file(api: Api) -> None:
    visitor = api.client()
    assert_problem(await upload(visitor, json.dumps(V2_CARD).encode()), 401, "not_authenticated")
    alice = await api.user("alice")
    assert_problem(await alice.post(IMPORT, data={"visibility": "public"}), 422, "validation_error")


async def test_another_users_private_character_cannot_be_exported(api: Api) -> None:
    bob = await api.user("bob")
    secret = await imported(bob, json.dumps(V3_CARD).encode(), visibility="private")
    assert secret["visibility"] == "private"
    alice = await api.user("alice")
    for suffix in ("card.json", "card.png", "card.charx"):
        url = f"/api/v1/characters/{secret['id']}/{suffix}"
        assert_problem(await alice.get(url), 404, "not_found")
        assert_problem(await api.client().get(url), 404, "not_found")
        assert (await bob.get(url)).status_code == 200
    assert_problem(await alice.get("/api/v1/characters/nope/card.json"), 404, "not_found")


async def test_a_standalone_lorebook_replaces_the_characters_book(api: Api) -> None:
    alice = await api.user("alice")
    character = await imported(alice, json.dumps(V1_CARD).encode())
    url = f"/api/v1/characters/{character['id']}/lorebook"
    lorebook = json.dumps({"spec": "lorebook_v3", "data": LOREBOOK}).encode()
    response = await alice.put(url, files={"file": ("book.json", lorebook)})
    assert response.status_code == 200, response.text
    assert len(response.json()["character_book"]["entries"]) == 2
    card = (await alice.get(f"/api/v1/characters/{character['id']}/card.json")).json()
    assert card["data"]["character_book"]["entries"][0]["keys"] == LOREBOOK["entries"][0]["keys"]

    bob = await api.user("bob")
    assert_problem(await bob.put(url, files={"file": ("b.json", lorebook)}), 403, "forbidden")
    bad = json.dumps({"spec": "lorebook_v3", "data": {"entries": [{"keys": 1}]}}).encode()
    assert_problem(await alice.put(url, files={"file": ("b.json", bad)}), 422, "invalid_card")


async def test_a_lorebook_can_be_sent_with_a_character_and_patched(api: Api) -> None:
    alice = await api.user("alice")
    created = await alice.post("/api/v1/characters", json={"name": "Z", "character_book": LOREBOOK})
    assert created.status_code == 201, created.text
    assert created.json()["character_book"]["scan_depth"] == 3
    character_id = created.json()["id"]
    bad = await alice.patch(
        f"/api/v1/characters/{character_id}", json={"character_book": {"entries": "x"}}
    )
    assert_problem(bad, 422, "invalid_card")
    cleared = await alice.patch(f"/api/v1/characters/{character_id}", json={"character_book": None})
    assert cleared.json()["character_book"] is None


async def test_escaped_nul_in_unknown_keys_survives_and_lone_surrogates_are_refused(
    api: Api,
) -> None:
    alice = await api.user("alice")
    weird = "nul \x00 and a pair \U0001f600 <b>"
    card = {
        "spec": "chara_card_v2",
        "x": weird,
        "data": {"name": "Odd", "extensions": {"weird": weird}},
    }
    character = await imported(alice, json.dumps(card).encode())
    assert character["extensions"] == {"weird": weird}
    exported = await alice.get(f"/api/v1/characters/{character['id']}/card.json?spec=v2")
    assert exported.json() == card
    broken = {**card, "x": "half \ud800"}
    body = assert_problem(await upload(alice, json.dumps(broken).encode()), 422, "invalid_card")
    assert "lone surrogate" in body["detail"]
