"""Read-aloud of replies: each sentence spoken in the character's voice as soon as it
is written, announced on the chat's stream, and kept in the database.

One task per (message, voice) in a process speaks a reply, however many listen: a
`SpeechRun` with its clips so far, which listeners follow. It reads the reply as it
is written (speech_follow.py), turns each sentence into the words to say
(voice/sentences.py), has each synthesised through the synthesis line
(voices.py: slots, places in line), stores the clip and publishes `speech` (and
`speech_queue` while it waits for a slot, `speech_done` at the end, `speech_failed`
when it cannot go on). A stored clip is checked against the message's text in the
same transaction, so an edit, a continuation or a deletion (which drop the
message's clips, messages.py) never leaves stale audio behind.

The check locks the message's row until the clip is stored (every change of the
text locks it too), and a clip another process stored meanwhile is left as it is.

The clips are a cache: `PERSONAE_SPEECH_CACHE_MAX_BYTES` in all, the voices of the
messages spoken longest ago dropped first, except those this process is speaking
(another process's eviction does not know them: see docs/voice.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from personae.errors import AppError, NotAReply, NotFound, NothingToSay, SpeechNotReady
from personae.events.base import EventLog
from personae.offload import bounded
from personae.services import room_access
from personae.services.chat_events import FINAL_STATES, chat_stream
from personae.services.speech_follow import MessageChanged, ReplyFollower, matches
from personae.services.voices import VoiceService
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import characters as characters_repo
from personae.storage.repos import chats as chats_repo
from personae.storage.repos import speech as repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.chats import MessageRecord
from personae.storage.repos.speech import ClipRecord
from personae.voice.base import Audio, VoiceChoice
from personae.voice.sentences import Sentence, SentenceSplitter, Speakable, pieces
from personae.voice.wav import resample, streaming_wav_header, to_wav

log = logging.getLogger("personae.speech")
# The sample rate of the (empty) WAV stream of a reply that had nothing to say.
_EMPTY_RATE = 22_050


@dataclass(frozen=True)
class Clip:
    index: int
    text: str
    sample_rate: int
    duration_ms: int
    pcm: bytes | None = None


@dataclass(frozen=True)
class SpeechState:
    message_id: str
    voice_key: str
    clips: list[Clip]
    complete: bool


@dataclass(frozen=True)
class _Target:
    message: MessageRecord
    choice: VoiceChoice

    @property
    def voice_key(self) -> str:
        return self.choice.key()


def clip_url(message_id: str, index: int) -> str:
    return f"/api/v1/messages/{message_id}/speech/{index}"


def _clip(record: ClipRecord) -> Clip:
    return Clip(record.index, record.text, record.sample_rate, record.duration_ms, record.pcm)


def _complete(records: list[ClipRecord]) -> bool:
    """Whether stored clips are a whole message: 0..n-1, the last one marked."""
    return (
        bool(records)
        and records[-1].is_last
        and [record.index for record in records] == list(range(len(records)))
    )


def speakable_pieces(text: str) -> list[str]:
    """The pieces of a whole text that would be spoken."""
    splitter, speakable = SentenceSplitter(), Speakable()
    return [part for s in splitter.finish(text) for part in pieces(speakable.say(s.text))]


@dataclass
class SpeechRun:
    """One reply being spoken in one voice in this process; listeners follow it."""

    target: _Target
    clips: list[Clip] = field(default_factory=list)
    ended: bool = False
    task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, clip: Clip) -> None:
        self.clips.append(clip)
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self) -> AsyncIterator[Clip]:
        """Every clip, from the first, as it is ready, until the run ends."""
        index = 0
        while True:
            while index < len(self.clips):
                yield self.clips[index]
                index += 1
            if self.ended:
                return
            await self._changed.wait()


class SpeechService:
    """Read-aloud of replies (see the module's notes)."""

    def __init__(
        self, database: Database, events: EventLog, voices: VoiceService, settings: Settings
    ) -> None:
        self._db = database
        self._events = events
        self._voices = voices
        self._settings = settings
        self._runs: dict[tuple[str, str], SpeechRun] = {}

    async def _target(self, user: UserRecord, message_id: str) -> _Target:
        """The reply, if the user may read it, and the voice its character speaks with."""
        self._voices.require()
        async with self._db.read() as tx:
            message = await chats_repo.get_message(tx, message_id)
            chat = await chats_repo.get_chat(tx, message.chat_id) if message else None
            if message is None or chat is None or not await room_access.may_read(tx, chat, user):
                raise NotFound("No message with this id.")
            if message.role != "assistant":
                raise NotAReply("Only a character's reply can be read aloud.")
            character = await characters_repo.get_character(
                tx, message.character_id or chat.character_id, include_deleted=True
            )
        choice = self._voices.voice_of(character.extensions if character else None)
        self._voices.check_ready(choice)
        return _Target(message, choice)

    def _check_something_to_say(self, message: MessageRecord) -> None:
        if message.status in FINAL_STATES and not speakable_pieces(
            message.content[: self._settings.speech_max_chars]
        ):
            raise NothingToSay("This reply has no words to read aloud.")

    async def _stored(self, target: _Target, *, with_audio: bool = False) -> list[ClipRecord]:
        async with self._db.read() as tx:
            return await repo.list_clips(
                tx, target.message.id, target.voice_key, with_audio=with_audio
            )

    async def start(self, user: UserRecord, message_id: str) -> SpeechState:
        """Start (or join) the speaking of a reply; what is ready so far."""
        target = await self._target(user, message_id)
        await self._voices.rate_limit(user)
        stored = await self._stored(target)
        if _complete(stored):
            return SpeechState(message_id, target.voice_key, [_clip(r) for r in stored], True)
        run = self._running(target)
        clips = run.clips if run.clips else [_clip(record) for record in stored]
        return SpeechState(message_id, target.voice_key, list(clips), False)

    async def stream(self, user: UserRecord, message_id: str) -> AsyncIterator[bytes]:
        """The reply's speech as one WAV stream: a header, then each clip's PCM as soon
        as it is ready (from the database when all of it is there)."""
        target = await self._target(user, message_id)
        await self._voices.rate_limit(user)
        stored = await self._stored(target)
        if _complete(stored):
            return self._wav(self._stored_clips(target, [record.text for record in stored]))
        return self._wav(self._running(target).follow())

    async def clip_wav(self, user: UserRecord, message_id: str, index: int) -> bytes:
        """One stored clip of the reply as a WAV file (`speech_not_ready` if none)."""
        target = await self._target(user, message_id)
        async with self._db.read() as tx:
            record = await repo.get_clip(tx, message_id, target.voice_key, index)
        if record is None or record.pcm is None:
            raise SpeechNotReady(f"Sentence {index} of this reply has not been spoken yet.")
        return await bounded(
            to_wav,
            Audio(record.pcm, record.sample_rate),
            budget_s=self._settings.cpu_budget_s,
            what="writing the audio",
        )

    async def _stored_clips(self, target: _Target, texts: list[str]) -> AsyncIterator[Clip]:
        """The clips of a reply spoken in full (their `texts`), read one by one. When
        one is gone meanwhile: after an edit the stream ends (what follows would be
        another text; the chat stream says `message`); after the cache's bound dropped
        it (another process's eviction does not know this stream) the rest is spoken
        again, so the audio is whole."""
        for index, text in enumerate(texts):
            async with self._db.read() as tx:
                record = await repo.get_clip(tx, target.message.id, target.voice_key, index)
            if record is not None and record.text == text:
                yield _clip(record)
                continue
            async with self._db.read() as tx:
                current = await chats_repo.get_message(tx, target.message.id)
            if current is None or current.content != target.message.content:
                return
            log.info("a clip was dropped while it was streamed", extra={"message_id": current.id})
            async for clip in self._running(target).follow():
                if clip.index >= index:
                    yield clip
            return

    @staticmethod
    async def _wav(clips: AsyncIterator[Clip]) -> AsyncIterator[bytes]:
        rate: int | None = None
        async for clip in clips:
            pcm = clip.pcm or b""
            if rate is None:
                rate = clip.sample_rate
                yield streaming_wav_header(rate)
            elif clip.sample_rate != rate:
                pcm = (await asyncio.to_thread(resample, Audio(pcm, clip.sample_rate), rate)).pcm
            yield pcm
        if rate is None:
            yield streaming_wav_header(_EMPTY_RATE)

    def _running(self, target: _Target) -> SpeechRun:
        """The run speaking this reply in this voice, started if there is none."""
        key = (target.message.id, target.voice_key)
        run = self._runs.get(key)
        if run is not None:
            return run
        self._check_something_to_say(target.message)
        self._voices.check_room()
        run = SpeechRun(target)
        self._runs[key] = run
        run.task = asyncio.create_task(self._speak(run), name="personae-speech")
        return run

    async def _speak(self, run: SpeechRun) -> None:
        target = run.target
        try:
            await self._speak_all(run)
        except MessageChanged as changed:
            log.info("read-aloud ended: %s", changed, extra={"message_id": target.message.id})
            # Its listeners would otherwise wait for `speech_done` for good.
            await self._publish_failure(
                target, "message_changed", f"Reading aloud stopped: {changed}."
            )
        except AppError as error:
            await self._publish_failure(target, error.code, error.detail)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("read-aloud failed", extra={"message_id": target.message.id})
            await self._publish_failure(target, "internal_error", "Reading aloud failed.")
        finally:
            run.end()
            self._runs.pop((target.message.id, target.voice_key), None)

    async def _speak_all(self, run: SpeechRun) -> None:
        target = run.target
        message = target.message
        stored = await self._stored(target, with_audio=True)
        follower = ReplyFollower(
            self._db,
            self._events,
            message_id=message.id,
            chat_id=message.chat_id,
            limit=self._settings.speech_max_chars,
        )
        speakable = Speakable()
        async for sentence in follower.sentences():
            for text in pieces(speakable.say(sentence.text)):
                index = len(run.clips)
                if index < len(stored) and stored[index].text == text:
                    run.add(_clip(stored[index]))  # spoken before (another run, a restart)
                    continue
                if index < len(stored):
                    await self._drop_stale(target, index)
                    stored = stored[:index]
                clip = await self._speak_one(run, sentence, index, text)
                run.add(clip)
        await self._finish(run, follower.final_text or "")

    async def _speak_one(self, run: SpeechRun, sentence: Sentence, index: int, text: str) -> Clip:
        target = run.target
        message = target.message

        async def on_place(position: int, estimated_start_s: float) -> None:
            await self._events.publish(
                chat_stream(message.chat_id),
                "speech_queue",
                {
                    "message_id": message.id,
                    "position": position,
                    "estimated_start_s": estimated_start_s,
                },
            )

        audio = await self._voices.synthesize(text, target.choice, on_place)
        clip = Clip(index, text, audio.sample_rate, round(audio.duration_s * 1000), audio.pcm)
        async with self._db.write() as tx:
            # Held until the clip is stored: an edit waits, then drops it (messages.py).
            current = await chats_repo.lock_message(tx, message.id)
            if current is None or not matches(current, sentence):
                raise MessageChanged("the message's text changed while it was spoken")
            await repo.insert_clip(
                tx,
                message.id,
                target.voice_key,
                index,
                text=text,
                sample_rate=clip.sample_rate,
                pcm=audio.pcm,
                duration_ms=clip.duration_ms,
            )
        await self._events.publish(
            chat_stream(message.chat_id),
            "speech",
            {
                "message_id": message.id,
                "voice_key": target.voice_key,
                "index": index,
                "text": text,
                "url": clip_url(message.id, index),
                "duration_ms": clip.duration_ms,
                "sample_rate": clip.sample_rate,
            },
        )
        return clip

    async def _drop_stale(self, target: _Target, index: int) -> None:
        """Clips stored before from `index` on, which no longer match the text: gone,
        spoken again (the ones before it matched and were used: they stay)."""
        async with self._db.write() as tx:
            await chats_repo.lock_message(tx, target.message.id)
            await repo.delete_from(tx, target.message.id, target.voice_key, index)

    async def _finish(self, run: SpeechRun, final_text: str) -> None:
        """Mark the message spoken in full (if its clips are all there, unchanged), tell
        the stream, and keep the cache within its bound."""
        target = run.target
        message = target.message
        count = len(run.clips)
        async with self._db.write() as tx:
            current = await chats_repo.lock_message(tx, message.id)
            limit = self._settings.speech_max_chars
            unchanged = (
                current is not None
                and (current.status in FINAL_STATES or len(final_text) >= limit)
                and current.content[:limit] == final_text
            )
            stored = await repo.list_clips(tx, message.id, target.voice_key)
            if not unchanged or [r.index for r in stored] != list(range(count)):
                raise MessageChanged("the message changed before it was spoken to its end")
            if count:
                await repo.mark_complete(tx, message.id, target.voice_key, count)
        await self._evict(keep=(message.id, target.voice_key))
        await self._events.publish(
            chat_stream(message.chat_id),
            "speech_done",
            {"message_id": message.id, "voice_key": target.voice_key, "clips": count},
        )

    async def _evict(self, keep: tuple[str, str]) -> None:
        """Drop the voices of the messages spoken longest ago while the clips take more
        than PERSONAE_SPEECH_CACHE_MAX_BYTES (never one being spoken now)."""
        bound = self._settings.speech_cache_max_bytes
        async with self._db.write() as tx:
            total = await repo.total_bytes(tx)
            if total <= bound:
                return
            for message_id, voice_key, size in await repo.oldest_groups(tx, 200):
                if (message_id, voice_key) == keep or (message_id, voice_key) in self._runs:
                    continue
                await repo.delete_voice(tx, message_id, voice_key)
                total -= size
                if total <= bound:
                    return

    async def _publish_failure(self, target: _Target, code: str, detail: str) -> None:
        await self._events.publish(
            chat_stream(target.message.chat_id),
            "speech_failed",
            {"message_id": target.message.id, "code": code, "detail": detail},
        )

    def running(self) -> int:
        """How many replies are being spoken in this process now."""
        return len(self._runs)

    async def aclose(self) -> None:
        """Stop every read-aloud of this process (a listener's stream then ends)."""
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
