"""Review of #20 (voice): regressions for the bugs found in review."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from personae.llm import model_files
from personae.settings import Settings
from personae.voice.factory import VoiceEngines


def test_a_voice_dir_that_cannot_keep_hashes_is_not_hashed_at_every_request(
    make_settings: Callable[..., Settings],
    voice_models_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A read-only voice folder (files baked into an image, no `.sha256` sidecars
    kept): `is_pulled` runs on the event loop for GET /voices, every read-aloud and
    every call, and must not hash ~230 MB each time (it stalled the loop ~0.7 s)."""
    hashed: list[Path] = []
    real_sha256_of = model_files._sha256_of

    def counting(path: Path) -> str:
        hashed.append(path)
        return real_sha256_of(path)

    # The sidecars cannot be read or written (as in a read-only folder for a non-root user).
    monkeypatch.setattr(model_files, "_sidecar", lambda path: tmp_path / "absent" / path.name)
    monkeypatch.setattr(model_files, "_sha256_of", counting)
    engines = VoiceEngines(make_settings(voice_dir=voice_models_dir))

    def one_voices_request() -> None:  # what GET /voices asks of the engines
        assert engines.engine_ready("piper") and engines.engine_ready("kokoro")
        assert engines.transcription_ready()
        engines.voices()

    one_voices_request()
    first = len(hashed)
    assert first > 0
    for _ in range(3):
        one_voices_request()
    assert len(hashed) == first, f"hashed {len(hashed) - first} more files"


async def test_a_read_aloud_ended_by_an_edit_tells_its_listeners(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    """A reply edited while it is spoken: the read-aloud ends (MessageChanged), and the
    chat stream must say so (`speech_failed` or `speech_done`); without either the web
    app's reader stays on "Getting the voice ready…" / "Reading aloud…" for good."""
    import asyncio
    import threading

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

    from conftest import wait_for_reply
    from personae.services.chat_events import chat_stream
    from personae.voice.simulated import SimulatedSpeechEngine, SimulationOptions

    async with speaking_app(make_settings, voice_models_dir) as (api, sim):
        hold = threading.Event()
        options = SimulationOptions(hold=hold)
        api.container.voices.engines = SimulatedVoiceEngines(
            api.container.settings, SimulatedSpeechEngine(options)
        )
        user = await api.user()
        chat_id = await chat_with(user)
        await script(sim, "The first sentence is here. And a second one.")
        sent = await send(user, chat_id, "m1", "Hi")
        reply = sent["reply"]["id"]
        await wait_for_reply(user, chat_id, reply)
        assert (await user.post(f"/api/v1/messages/{reply}/speech")).status_code == 202
        await until(lambda: options.started == 1)  # the first sentence is being spoken
        edited = await user.patch(f"/api/v1/messages/{reply}", json={"content": "Other words."})
        assert edited.status_code == 200, edited.text
        hold.set()
        await until(lambda: api.container.speech.running() == 0)
        await asyncio.sleep(0.2)
        events = await events_until(
            api, chat_id, lambda seen: bool(named(seen, "message", reply)), timeout_s=5
        )
        stream = chat_stream(chat_id)
        while batch := await api.container.events.read(stream, events[-1].id, wait_s=0.5):
            events += batch
        ended = named(events, "speech_failed", reply) + named(events, "speech_done", reply)
        assert ended, [(e.name, e.data) for e in events if e.name.startswith("speech")]


async def test_the_wav_stream_of_a_reply_ends_when_the_server_begins_to_stop(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    """SIGTERM: open SSE streams end at once (container.stopping) so uvicorn's wait for
    open connections does not eat the grace running replies need. GET .../speech is a
    stream too; it followed its reply (up to 10 minutes of no progress) regardless."""
    import asyncio

    from speaking import SimulatedVoiceEngines, chat_with, script, send, speaking_app, until

    from personae.voice.simulated import SimulatedSpeechEngine

    async with speaking_app(make_settings, voice_models_dir, tokens_per_second=1.0) as (api, sim):
        api.container.voices.engines = SimulatedVoiceEngines(
            api.container.settings, SimulatedSpeechEngine()
        )
        user = await api.user()
        chat_id = await chat_with(user)
        await script(sim, "One. " + "word " * 20)
        reply = (await send(user, chat_id, "m1", "Hi"))["reply"]["id"]
        listening = asyncio.create_task(user.get(f"/api/v1/messages/{reply}/speech"))
        await until(lambda: api.container.speech.running() == 1)
        await asyncio.sleep(0.5)
        api.container.stopping.set()  # what begin_shutdown does at SIGTERM
        try:
            answer = await asyncio.wait_for(listening, timeout=5.0)
        finally:
            listening.cancel()
        assert answer.status_code == 200
