"""Start-time estimates come from a moving measure of each backend's service time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conftest import fleet, wait_for_reply
from personae.settings import Settings

FAST_AND_SLOW = {
    "fast": {"slots": 1, "tokens_per_second": 400},
    # 1 s a reply against about 0.05 s: far apart even on a slow machine.
    "slow": {"slots": 1, "tokens_per_second": 10},
}


async def test_each_backend_is_measured_and_the_estimate_weighs_their_speeds(
    make_settings: Callable[..., Settings],
) -> None:
    async with fleet(make_settings, FAST_AND_SLOW, max_reply_tokens=10) as (api, _urls):
        admin = await api.user("ada")
        await api.container.accounts.set_role("ada", "admin")
        served: dict[str, int] = {"fast": 0, "slow": 0}
        # New chats go where rendezvous hashing puts them: half to each, by chance.
        for number in range(24):
            if min(served.values()) >= 2:
                break
            character = await admin.post("/api/v1/characters", json={"name": "Bramble"})
            chat = await admin.post("/api/v1/chats", json={"character_id": character.json()["id"]})
            chat_id = chat.json()["id"]
            sent = await admin.put(
                f"/api/v1/chats/{chat_id}/messages/m{number}", json={"content": "hello"}
            )
            reply = await wait_for_reply(admin, chat_id, sent.json()["reply"]["id"])
            served[reply["backend"]] += 1
        assert min(served.values()) >= 2, served

        view = (await admin.get("/api/v1/queue")).json()
        measured = {b["name"]: b["service_s"] for b in view["backends"]}
        assert measured["slow"] > 3 * measured["fast"], measured
        # One wave of the two slots: two replies in the time the two rates allow, nearer
        # the fast backend's time than the plain mean of the two.
        wave = 2 / (1 / measured["fast"] + 1 / measured["slow"])
        [first_tier, *_] = view["tiers"]
        assert first_tier["estimated_wait_s"] == 0, "both slots are free: it starts at once"
        # The third in line (the first two take the free slots) starts after one wave
        # of the two slots.
        third = api.container.scheduler.estimate_start_s(3)
        assert third == pytest.approx(wave, abs=0.15)
        assert third < (measured["fast"] + measured["slow"]) / 2
