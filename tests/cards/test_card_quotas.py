"""Storage a card import may take: a cap on one card's files, and quotas per user."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable

import httpx
import pytest
from card_samples import V3_CARD, charx
from sqlalchemy import func, select

from conftest import Api, assert_problem
from personae.app import create_app
from personae.cards.charx import read_charx
from personae.errors import CardTooLarge
from personae.settings import Settings
from personae.storage.tables import character_assets, characters

IMPORT = "/api/v1/characters/import"
MIB = 1024 * 1024


def bomb(total_mib: int, files: int = 8) -> bytes:
    """A CHARX of tens of KB whose zeros unpack to `total_mib` MiB."""
    buffer = io.BytesIO()
    chunk = b"\x00" * (total_mib * MIB // files)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("card.json", json.dumps(V3_CARD))
        for index in range(files):
            archive.writestr(f"assets/other/blob{index}.bin", chunk)
    return buffer.getvalue()


async def stored(api: Api) -> tuple[int, int]:
    """How many characters and asset bytes the database holds."""
    async with api.container.database.read() as tx:
        count = (await tx.execute(select(func.count()).select_from(characters))).scalar_one()
        size = (
            await tx.execute(
                select(func.coalesce(func.sum(func.length(character_assets.c.data)), 0))
            )
        ).scalar_one()
    return int(count), int(size)


async def upload(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
    return await client.post(IMPORT, files={"file": ("card.charx", data)})


async def test_a_small_charx_that_unpacks_past_the_cap_is_refused_quickly(api: Api) -> None:
    alice = await api.user("alice")
    archive = bomb(60)
    assert len(archive) < 100_000  # tens of KB on the wire
    started = time.monotonic()
    response = await upload(alice, archive)
    elapsed = time.monotonic() - started
    body = assert_problem(response, 413, "card_too_large")
    assert str(16 * MIB) in body["detail"] and body["limit"] == 16 * MIB
    assert elapsed < 3.0
    assert await stored(api) == (0, 0)


def test_reading_stops_at_the_cap_counting_every_file() -> None:
    # Each file is under the cap; together (card.json too) they are over it.
    archive = charx(V3_CARD, {f"a{i}.bin": b"\x00" * 3000 for i in range(4)})
    with pytest.raises(CardTooLarge):
        read_charx(archive, max_unpacked=10**9, max_card_bytes=12_000)
    card, files = read_charx(archive, max_unpacked=10**9, max_card_bytes=20_000)
    assert len(files) == 4 and card


async def test_the_cap_is_a_setting(make_settings: Callable[..., Settings]) -> None:
    app = create_app(make_settings(card_assets_max_bytes=50_000))
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        small = charx(V3_CARD, {"assets/a.bin": b"\x01" * 20_000})
        assert (await upload(alice, small)).status_code == 201
        big = charx(V3_CARD, {"assets/a.bin": b"\x01" * 60_000})
        assert_problem(await upload(alice, big), 413, "card_too_large")
        await api.aclose()


async def test_the_asset_quota_refuses_an_import_that_does_not_fit(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(user_asset_quota_bytes=100_000))
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice, bob = await api.user("alice"), await api.user("bob")
        card = charx(V3_CARD, {"assets/a.bin": b"\x02" * 60_000})
        first = await upload(alice, card)
        assert first.status_code == 201, first.text
        body = assert_problem(await upload(alice, card), 409, "quota_exceeded")
        assert body["quota"] == "asset_bytes"
        assert body["used"] == 60_000 and body["limit"] == 100_000
        assert "60000" in body["detail"].replace(",", "") and "100000" in body["detail"].replace(
            ",", ""
        )
        assert await stored(api) == (1, 60_000)  # nothing of the refused import
        # Another user has a quota of their own.
        assert (await upload(bob, card)).status_code == 201
        # Deleting a character frees its files.
        deleted = await alice.delete(f"/api/v1/characters/{first.json()['id']}")
        assert deleted.status_code == 204, deleted.text
        assert (await upload(alice, card)).status_code == 201
        await api.aclose()


async def test_the_character_quota_counts_created_and_imported_characters(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(user_max_characters=2))
    async with app.router.lifespan_context(app):
        api = Api(app)
        alice = await api.user("alice")
        first = await alice.post("/api/v1/characters", json={"name": "One"})
        assert first.status_code == 201, first.text
        assert (await upload(alice, charx(V3_CARD))).status_code == 201
        body = assert_problem(
            await alice.post("/api/v1/characters", json={"name": "Three"}), 409, "quota_exceeded"
        )
        assert body["quota"] == "characters" and body["used"] == 2 and body["limit"] == 2
        assert_problem(await upload(alice, charx(V3_CARD)), 409, "quota_exceeded")
        assert (await stored(api))[0] == 2
        await alice.delete(f"/api/v1/characters/{first.json()['id']}")
        assert (await alice.post("/api/v1/characters", json={"name": "Three"})).status_code == 201
        await api.aclose()
