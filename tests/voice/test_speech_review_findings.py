"""Review of #20 (voice), findings 4, 9, 10 and 13: read-aloud against edits, a second
process and the cache's bound, with the SIMULATED speech engine (deterministic audio,
held on demand), and a character's voice changed by whom.

The races are made deterministic by pausing one transaction between its check and
its write (a wrapper around the repo's insert) until the other side has either
finished or waits for a lock: on PostgreSQL that is a row lock (pg_stat_activity),
on SQLite the one writer's queue (SQLite serialises writers, so these races exist
only on PostgreSQL; the tests run on both)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
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
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert

from conftest import Api, assert_problem, eventually, wait_for_reply
from personae.services.speech import SpeechService
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import accounts as accounts_repo
from personae.storage.repos import speech as speech_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.tables import speech_clips
from personae.voice.base import VoiceChoice
from personae.voice.simulated import ENGINE, VOICE, SimulatedSpeechEngine, SimulationOptions

REPLY = "The first sentence is here. And a second one follows."
PIPER = {"engine": "piper", "voice": "en_US-joe-medium"}
KEY = VoiceChoice(ENGINE, VOICE).key()  # the SIMULATED voice's clips


def _simulate(api: Api) -> SimulationOptions:
    options = SimulationOptions()
    api.container.voices.engines = SimulatedVoiceEngines(
        api.container.settings, SimulatedSpeechEngine(options)
    )
    return options


async def _reply(api: Api, sim: str) -> tuple[httpx.AsyncClient, str, str]:
    """A user, their chat and its finished reply of two sentences."""
    user = await api.user()
    chat_id = await chat_with(user)
    await script(sim, REPLY)
    reply = (await send(user, chat_id, "m1", "Hi"))["reply"]["id"]
    await wait_for_reply(user, chat_id, reply)
    return user, chat_id, str(reply)


async def _record(api: Api, user: httpx.AsyncClient) -> UserRecord:
    me = await user.get("/api/v1/me")
    async with api.container.database.read() as tx:
        record = await accounts_repo.get_user(tx, me.json()["id"])
    assert record is not None
    return record


async def _someone_waits_for_a_lock(db: Database) -> bool:
    """Whether a transaction of the app waits for another's lock (a row lock on
    PostgreSQL, the one writer's turn on SQLite)."""
    if db.is_sqlite:
        return bool(db._write_lock._waiters)
    async with db.engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


def _pause_first_insert(
    monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], Awaitable[None]]
) -> list[int]:
    """The first clip stored waits, in its transaction (its message checked), for
    `meanwhile` to return; the indexes of the clips inserted are listed."""
    real = speech_repo.insert_clip
    inserted: list[int] = []

    async def paused(tx: Any, message_id: str, voice_key: str, index: int, **clip: Any) -> bool:
        if not inserted:
            inserted.append(index)
            await meanwhile()
        else:
            inserted.append(index)
        return await real(tx, message_id, voice_key, index, **clip)

    monkeypatch.setattr(speech_repo, "insert_clip", paused)
    return inserted


async def test_an_edit_between_the_check_and_the_store_of_a_clip_leaves_no_old_audio(
    make_settings: Callable[..., Settings],
    voice_models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding 4: the clip of the first sentence is checked against the text, then the
    reply is edited before it is stored. The edit must either wait for the clip and
    drop it, or the clip must see the new text: GET .../speech/0 never plays the old
    words."""
    async with speaking_app(make_settings, voice_models_dir) as (api, sim):
        _simulate(api)
        user, _, reply = await _reply(api, sim)
        editing: list[asyncio.Task[httpx.Response]] = []

        async def edit_meanwhile() -> None:
            editing.append(
                asyncio.create_task(
                    user.patch(f"/api/v1/messages/{reply}", json={"content": "Other words."})
                )
            )
            await eventually(
                lambda: _edit_done_or_waiting(editing[0], api.container.database),
                timeout_s=30.0,
                interval_s=0.01,
            )

        inserted = _pause_first_insert(monkeypatch, edit_meanwhile)
        assert (await user.post(f"/api/v1/messages/{reply}/speech")).status_code == 202
        await until(lambda: bool(editing) and editing[0].done())
        assert editing[0].result().status_code == 200, editing[0].result().text
        await until(lambda: api.container.speech.running() == 0)
        assert inserted == [0]
        async with api.container.database.read() as tx:
            left = await speech_repo.list_clips(tx, reply, KEY)
        assert [clip.text for clip in left] == []
        assert_problem(
            await user.get(f"/api/v1/messages/{reply}/speech/0"), 404, "speech_not_ready"
        )


async def _edit_done_or_waiting(edit: asyncio.Task[httpx.Response], db: Database) -> bool:
    return edit.done() or await _someone_waits_for_a_lock(db)


async def test_two_processes_speaking_one_reply_both_finish_and_store_it_once(
    make_settings: Callable[..., Settings],
    voice_models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding 4: two processes (two SpeechService on one database) speak the same
    reply and reach the store of its first clip together; the second one stored
    nothing and finished with `speech_done`, not `speech_failed internal_error`
    (a duplicate key)."""
    async with speaking_app(make_settings, voice_models_dir, voice_synthesis_slots=2) as (
        api,
        sim,
    ):
        _simulate(api)
        container = api.container
        other = SpeechService(
            container.database, container.events, container.voices, container.settings
        )
        user, chat_id, reply = await _reply(api, sim)
        arrived: list[int] = []
        real = speech_repo.insert_clip

        async def the_other_is_here_or_waits() -> bool:
            return len(arrived) >= 2 or await _someone_waits_for_a_lock(container.database)

        async def together(
            tx: AsyncSession, message_id: str, voice_key: str, index: int, **clip: Any
        ) -> bool:
            if index != 0:
                return await real(tx, message_id, voice_key, index, **clip)
            # The INSERT itself waits (after any check the repo makes before it) for
            # the other process's INSERT, or for the other to wait for a lock.
            original_execute = tx.execute

            async def execute(statement: Any, *args: Any, **kwargs: Any) -> Any:
                if isinstance(statement, Insert):
                    arrived.append(index)
                    await eventually(the_other_is_here_or_waits, timeout_s=30.0, interval_s=0.01)
                return await original_execute(statement, *args, **kwargs)

            monkeypatch.setattr(tx, "execute", execute)  # this transaction's only
            return await real(tx, message_id, voice_key, index, **clip)

        monkeypatch.setattr(speech_repo, "insert_clip", together)
        record = await _record(api, user)
        try:
            await container.speech.start(record, reply)
            await other.start(record, reply)
            await until(lambda: container.speech.running() == 0 and other.running() == 0)
        finally:
            await other.aclose()
        events = await events_until(
            api, chat_id, lambda seen: len(named(seen, "speech_done", reply)) == 2, timeout_s=10
        )
        assert named(events, "speech_failed", reply) == []
        async with container.database.read() as tx:
            stored = await speech_repo.list_clips(tx, reply, KEY)
        assert [clip.index for clip in stored] == [0, 1] and stored[-1].is_last


async def test_a_clip_that_no_longer_matches_keeps_the_ones_before_it(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    """Finding 9: a stored clip whose text no longer matches (here: the second) is
    spoken again; the first, which matches and was used, must stay, or the reply is
    never marked complete and is synthesised again at every read-aloud."""
    async with speaking_app(make_settings, voice_models_dir) as (api, sim):
        options = _simulate(api)
        user, chat_id, reply = await _reply(api, sim)
        assert (await user.post(f"/api/v1/messages/{reply}/speech")).status_code == 202
        await events_until(api, chat_id, lambda seen: bool(named(seen, "speech_done", reply)))
        assert options.finished == 2
        async with api.container.database.write() as tx:  # as an older splitter would have cut it
            await tx.execute(
                update(speech_clips)
                .where(speech_clips.c.message_id == reply, speech_clips.c.idx == 1)
                .values(text="And a second one follows, said differently.", is_last=False)
            )
        assert (await user.post(f"/api/v1/messages/{reply}/speech")).status_code == 202
        events = await events_until(
            api, chat_id, lambda seen: len(named(seen, "speech_done", reply)) == 2
        )
        assert named(events, "speech_failed", reply) == []
        assert options.texts[2:] == ["And a second one follows."]  # only the second again
        again = await user.post(f"/api/v1/messages/{reply}/speech")
        assert again.status_code == 202 and again.json()["complete"] is True


async def test_a_full_reply_stream_whose_clip_is_evicted_meanwhile_is_whole(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    """Finding 10: another process's eviction (it knows nothing of this stream) drops
    the clips of a reply while its stored clips are streamed: the stream must not
    end early with truncated audio."""
    async with speaking_app(make_settings, voice_models_dir) as (api, sim):
        _simulate(api)
        user, chat_id, reply = await _reply(api, sim)
        whole = await user.get(f"/api/v1/messages/{reply}/speech")
        assert whole.status_code == 200
        await events_until(api, chat_id, lambda seen: bool(named(seen, "speech_done", reply)))
        stored_whole = await user.get(f"/api/v1/messages/{reply}/speech")
        assert stored_whole.content == whole.content
        stream = await api.container.speech.stream(await _record(api, user), reply)
        parts = [await anext(stream), await anext(stream)]  # the header, the first clip
        async with api.container.database.write() as tx:  # the other process's eviction
            await speech_repo.delete_voice(tx, reply, KEY)
        parts += [part async for part in stream]
        assert b"".join(parts) == whole.content


async def test_only_the_creator_changes_a_characters_voice_and_staff_are_told_so(
    make_settings: Callable[..., Settings], voice_models_dir: Path
) -> None:
    """Finding 13: a moderator's PATCH of someone else's character (with a voice) is
    refused (`403`), never applied without its voice; a voice the server does not
    offer is not looked at before who may change the character is."""
    async with speaking_app(make_settings, voice_models_dir) as (api, _):
        owner = await api.user()
        made = await owner.post("/api/v1/characters", json={"name": "Fox", "voice": PIPER})
        assert made.status_code == 201, made.text
        character = made.json()["id"]
        moderator = await api.user("mod")
        await api.container.accounts.set_role("mod", "moderator")
        kokoro = {"engine": "kokoro", "voice": "jf_alpha"}
        assert_problem(
            await moderator.patch(
                f"/api/v1/characters/{character}", json={"voice": kokoro, "tagline": "x"}
            ),
            403,
            "forbidden",
        )
        assert_problem(
            await moderator.patch(
                f"/api/v1/characters/{character}", json={"voice": {"engine": "x", "voice": "y"}}
            ),
            403,
            "forbidden",
        )
        after = (await owner.get(f"/api/v1/characters/{character}")).json()
        assert after["voice"]["voice"] == PIPER["voice"] and after["tagline"] != "x"
        changed = await owner.patch(f"/api/v1/characters/{character}", json={"voice": kokoro})
        assert changed.status_code == 200 and changed.json()["voice"]["voice"] == "jf_alpha"
