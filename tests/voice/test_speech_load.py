"""Read-aloud under load and faults, with the SIMULATED speech engine (a tone per word,
held or failing on demand): places in line, voice_busy when the line is full, one
synthesis per (message, voice) however many listen, and an engine that fails."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
from speaking import (
    SimulatedVoiceEngines,
    chat_with,
    events_until,
    named,
    script,
    send,
    speaking_app,
    until,
)

from conftest import PASSWORD, Api, assert_problem, wait_for_reply
from personae.services.voice_slots import SYNTHESIS
from personae.settings import Settings
from personae.storage.repos import speech as speech_repo
from personae.voice.simulated import SimulatedSpeechEngine, SimulationOptions


def _simulate(api: Api, options: SimulationOptions) -> None:
    """The app's voices become the SIMULATED engine alone (a test arrangement)."""
    voices = api.container.voices
    voices.engines = SimulatedVoiceEngines(api.container.settings, SimulatedSpeechEngine(options))


def _waiting(api: Api) -> int:
    return next(s.waiting for s in api.container.voices.slots.state() if s.kind == SYNTHESIS)


async def _replies(api: Api, sim: str, count: int) -> tuple[str, list[str], httpx.AsyncClient]:
    """A chat with `count` finished replies of two sentences each."""
    user = await api.user()
    chat_id = await chat_with(user)
    replies = []
    for number in range(count):
        await script(sim, f"Reply number {number} is here. It has two sentences.")
        sent = await send(user, chat_id, f"m{number}", "Hi")
        await wait_for_reply(user, chat_id, sent["reply"]["id"])
        replies.append(sent["reply"]["id"])
    return chat_id, replies, user


async def test_a_full_line_answers_voice_busy_and_waiting_ones_hear_their_place(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    async with speaking_app(
        make_settings, voice_models_dir, voice_synthesis_slots=1, voice_queue_max=1
    ) as (api, sim):
        hold = threading.Event()
        options = SimulationOptions(hold=hold)
        _simulate(api, options)
        chat_id, (first, second, third), user = await _replies(api, sim, 3)
        assert (await user.post(f"/api/v1/messages/{first}/speech")).status_code == 202
        await until(lambda: options.started == 1)  # the one slot is held
        assert (await user.post(f"/api/v1/messages/{second}/speech")).status_code == 202
        await until(lambda: _waiting(api) == 1)  # the line's one place is taken
        busy = assert_problem(
            await user.post(f"/api/v1/messages/{third}/speech"), 503, "voice_busy"
        )
        assert busy["retryable"] is True and busy["retry_after"] >= 1
        assert_problem(
            await user.post(
                "/api/v1/voices/sample", json={"voice": {"engine": "simulated", "voice": "tone"}}
            ),
            503,
            "voice_busy",
        )
        # Joining a reply already being spoken takes no place in line.
        assert (await user.post(f"/api/v1/messages/{second}/speech")).status_code == 202
        hold.set()
        events = await events_until(
            api,
            chat_id,
            lambda seen: (
                bool(named(seen, "speech_done", first)) and bool(named(seen, "speech_done", second))
            ),
        )
        queue = named(events, "speech_queue", second)
        assert queue and queue[0].data["position"] == 1
        assert queue[0].data["estimated_start_s"] >= 0
        # Two sentences each, each spoken once, in order.
        for reply in (first, second):
            assert [e.data["index"] for e in named(events, "speech", reply)] == [0, 1]
        assert options.finished == 4
        assert (await user.post(f"/api/v1/messages/{third}/speech")).status_code == 202


async def test_many_listeners_share_one_synthesis(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    async with speaking_app(make_settings, voice_models_dir) as (api, sim):
        hold = threading.Event()
        options = SimulationOptions(hold=hold)
        _simulate(api, options)
        chat_id, (reply,), user = await _replies(api, sim, 1)
        streams = [
            asyncio.create_task(user.get(f"/api/v1/messages/{reply}/speech")) for _ in range(5)
        ]
        await until(lambda: options.started == 1)
        hold.set()
        bodies = [(await stream).content for stream in streams]
        assert len({body for body in bodies}) == 1  # the same audio for every listener
        assert len(bodies[0]) > 44 + 2 * 16_000 // 10  # a header and at least 0.1 s
        assert options.finished == 2  # two sentences, each synthesised once
        assert chat_id


async def test_an_engine_that_fails_ends_the_speech_with_speech_failed(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    async with speaking_app(make_settings, voice_models_dir) as (api, sim):
        options = SimulationOptions(fail=True)
        _simulate(api, options)
        chat_id, (reply,), user = await _replies(api, sim, 1)
        assert (await user.post(f"/api/v1/messages/{reply}/speech")).status_code == 202
        events = await events_until(
            api, chat_id, lambda seen: bool(named(seen, "speech_failed", reply))
        )
        failed = named(events, "speech_failed", reply)[0].data
        assert failed["code"] == "speech_engine_failed" and failed["detail"]
        assert not named(events, "speech_done", reply)
        # The stream of a failing read-aloud ends (an empty WAV), it does not hang.
        streamed = await user.get(f"/api/v1/messages/{reply}/speech")
        assert streamed.status_code == 200 and streamed.content[:4] == b"RIFF"
        assert_problem(
            await user.get(f"/api/v1/messages/{reply}/speech/0"), 404, "speech_not_ready"
        )
        # Once the engine works again, so does reading aloud.
        options.fail = False
        state = await user.post(f"/api/v1/messages/{reply}/speech")
        assert state.status_code == 202
        await events_until(api, chat_id, lambda seen: bool(named(seen, "speech_done", reply)))


async def _total_bytes(api: Api) -> int:
    async with api.container.database.read() as tx:
        return await speech_repo.total_bytes(tx)


async def test_the_cache_keeps_its_bound_and_a_deleted_account_leaves_no_audio(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    # Each reply below speaks 9 words: 9 x 150 ms of 16 kHz PCM = 43,200 bytes.
    async with speaking_app(make_settings, voice_models_dir, speech_cache_max_bytes=60_000) as (
        api,
        sim,
    ):
        _simulate(api, SimulationOptions())
        chat_id, (first, second), user = await _replies(api, sim, 2)
        for reply in (first, second):
            assert (await user.post(f"/api/v1/messages/{reply}/speech")).status_code == 202
            await events_until(
                api, chat_id, lambda seen, r=reply: bool(named(seen, "speech_done", r))
            )
        # The second one's clips pushed the first one's out.
        assert await _total_bytes(api) == 43_200
        assert_problem(
            await user.get(f"/api/v1/messages/{first}/speech/0"), 404, "speech_not_ready"
        )
        assert (await user.get(f"/api/v1/messages/{second}/speech/0")).status_code == 200
        deleted = await user.request("DELETE", "/api/v1/me", json={"password": PASSWORD})
        assert deleted.status_code == 200, deleted.text
        assert await _total_bytes(api) == 0
