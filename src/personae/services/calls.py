"""Voice calls with a character: the user speaks, the character answers aloud.

A call is a conversation carried over one connection (a WebSocket, api/routes/calls.py),
but what it says is the chat's: each turn the user speaks is heard to its end by
voice activity detection (voice/vad.py), transcribed (TRANSCRIPTION slots), and sent
through `ChatService.send` like typed text (the same moderation, waiting room and
durability; `client_id` "call-<call>-<turn>"). The reply is followed as it streams
(speech_follow.py, as read-aloud follows it) and each sentence is spoken in the
character's voice as soon as it is complete (voices.py, SYNTHESIS slots); what is
said of a sentence is what read-aloud says of it (voice/sentences.py). Speech heard
while the character speaks, or while its reply is on its way, is a barge-in: the
speaking stops, the reply is stopped through the stop path (it keeps what was
written, "stopped"), and the new turn is heard.

A reply belongs to the server: a call that drops leaves the message it sent and its
reply in the chat, written to the end; a turn still being transcribed when the call
ends is transcribed and sent all the same (at the server's stop, if it can be within
the grace). One call per user and chat in a process: a second one takes over and the
first is ended with `call_replaced`; at most `call_max_per_user` chats at once. A call
ends itself past `call_max_duration_s`, after `call_idle_timeout_s` with nothing said,
when the server begins to stop, when its caller is no longer signed in (checked at each
turn), and when its listening fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from personae.errors import (
    AppError,
    CallReplaced,
    CallTimedOut,
    ContentRefused,
    InternalError,
    InvalidState,
    NotFound,
    ShuttingDown,
    SpeechEngineFailed,
    TooManyCalls,
    ValidationFailed,
)
from personae.events.base import EventLog
from personae.services import room_access
from personae.services.call_io import FRAME_MAX_S, AudioInbox, CallLink, CallStart, PlaceTeller
from personae.services.chat_events import FAILED, chat_stream
from personae.services.chats import ChatService
from personae.services.messages import MessageService
from personae.services.send_path import SendResult
from personae.services.speech_follow import MessageChanged, ReplyFollower
from personae.services.transcription import TranscriptionService
from personae.services.voice_slots import SYNTHESIS
from personae.services.voices import VoiceService, choice_to_json
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import characters as character_repo
from personae.storage.repos import chats as chats_repo
from personae.storage.repos.accounts import UserRecord
from personae.storage.repos.chats import ChatRecord
from personae.voice.base import Audio, VoiceChoice
from personae.voice.sentences import Speakable, pieces
from personae.voice.vad import (
    SAMPLE_RATE,
    SileroVad,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    VadConfig,
)
from personae.voice.wav import resample

log = logging.getLogger("personae.calls")

HEARING, SENDING, REPLYING = "hearing", "sending", "replying"
# How long one read of the chat's stream for places in line waits (and so how soon a
# watch ends after its reply starts, should a blocking read miss its cancel).
_WATCH_WAIT_S = 2.0


@dataclass(frozen=True)
class CallTarget:
    chat: ChatRecord
    voice: VoiceChoice


class CallService:
    def __init__(
        self,
        database: Database,
        chats: ChatService,
        messages: MessageService,
        events: EventLog,
        voices: VoiceService,
        transcription: TranscriptionService,
        settings: Settings,
        *,
        stopping: asyncio.Event,
    ) -> None:
        self.database = database
        self.chats = chats
        self.messages = messages
        self.events = events
        self.voices = voices
        self.transcription = transcription
        self.settings = settings
        self.stopping = stopping  # set when the server begins to stop: calls end
        self.vad_config = VadConfig(
            threshold=settings.call_vad_threshold,
            neg_threshold=max(0.01, settings.call_vad_threshold - 0.15),
            end_silence_ms=settings.call_turn_silence_ms,
            max_turn_s=settings.audio_max_seconds,
        )
        self._vad: SileroVad | None = None
        self._vad_loading = asyncio.Lock()
        self._calls: dict[tuple[str, str], Call] = {}
        # Turns that outlive their call: sends finishing after the client left.
        self._leftovers: set[asyncio.Task[None]] = set()

    async def open(self, user: UserRecord, chat_id: str) -> CallTarget:
        """Check everything a call needs before it starts: voice installed, a chat the
        user may write in (1:1 only), its character's voice, the VAD model loaded."""
        self.voices.require()
        async with self.database.read() as tx:
            chat = await chats_repo.get_chat(tx, chat_id)
            await room_access.check_send(tx, chat, user)
            assert chat is not None
            if chat.is_room:
                raise InvalidState("Calls are for one-on-one chats; a room cannot be called.")
            character = await character_repo.get_character(
                tx, chat.character_id, include_deleted=True
            )
        if character is None:
            raise NotFound("No chat with this id.")
        voice = self.voices.voice_of(character.extensions)
        self.voices.engines.engine(voice.engine)  # VoiceFilesMissing now, not in the call
        self.transcription.check_ready()
        await self._load_vad()
        return CallTarget(chat, voice)

    async def _load_vad(self) -> SileroVad:
        async with self._vad_loading:
            if self._vad is None:
                try:
                    self._vad = await asyncio.to_thread(SileroVad.load)
                except Exception as error:
                    log.exception("loading the voice activity detector failed")
                    raise SpeechEngineFailed(
                        "The voice activity detector could not be loaded; calls cannot start."
                    ) from error
            return self._vad

    async def start(
        self, user: UserRecord, target: CallTarget, start: CallStart, link: CallLink
    ) -> Call:
        """Begin the call (`ready`, `listening`); a call of this user in this chat that
        is still open is ended with `call_replaced`. TooManyCalls when the user has
        `call_max_per_user` calls open in other chats."""
        assert self._vad is not None
        key = (user.id, target.chat.id)
        elsewhere = [k for k in self._calls if k[0] == user.id and k != key]
        if len(elsewhere) >= self.settings.call_max_per_user:
            raise TooManyCalls(
                f"You have {len(elsewhere)} calls open; end one to call another chat."
            )
        call = Call(self, user, target, start, link, TurnDetector(self._vad, self.vad_config))
        earlier = self._calls.get(key)
        self._calls[key] = call
        if earlier is not None:
            await earlier.replaced()
        await call.begin()
        return call

    def ended(self, call: Call) -> None:
        key = (call.user.id, call.target.chat.id)
        if self._calls.get(key) is call:
            del self._calls[key]

    def keep(self, task: asyncio.Task[None]) -> None:
        """Let a turn finish after its call ended (cancelled when the server stops)."""
        self._leftovers.add(task)
        task.add_done_callback(self._leftovers.discard)

    async def aclose(self, grace_s: float) -> None:
        """End the calls still open (`shutting_down`); a turn already heard is sent if
        that takes at most `grace_s`, else cancelled (its words are lost)."""
        for call in list(self._calls.values()):
            await call.end(ShuttingDown("The server is restarting; call again."))
        if self._leftovers:
            await asyncio.wait(list(self._leftovers), timeout=grace_s)
        for task in list(self._leftovers):
            task.cancel()
        await asyncio.gather(*self._leftovers, return_exceptions=True)


@dataclass
class _Turn:
    """What the call is doing with one turn of the user's. `parts`: the words of each
    saying in it, being transcribed (a saying the user went on from while it was being
    transcribed opens the next turn, its transcription kept, not started again)."""

    parts: list[asyncio.Task[str]]
    task: asyncio.Task[None] | None = None
    carried: bool = False
    phase: str = HEARING
    reply_id: str | None = None
    send: asyncio.Task[SendResult] | None = None


@dataclass
class Call:
    service: CallService
    user: UserRecord
    target: CallTarget
    start: CallStart
    link: CallLink
    detector: TurnDetector
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    _inbox: AudioInbox = field(init=False)
    _listener: asyncio.Task[None] | None = None
    _watcher: asyncio.Task[None] | None = None
    _turn: _Turn | None = None
    _turns: int = 0
    _carry: list[asyncio.Task[str]] = field(default_factory=list)  # opens the next turn
    _playing_until: float = 0.0  # when the client's playback of what was sent ends
    _closed: bool = False
    _active_at: float = 0.0  # when speech was last heard or a turn last ended

    def __post_init__(self) -> None:
        self._inbox = AudioInbox(self.start.inbox_bytes)
        self._places = PlaceTeller(self.link, self.service.events, self.target.chat.id)

    async def begin(self) -> None:
        await self.link.send(
            {
                "type": "ready",
                "sample_rate_out": self.start.sample_rate_out,
                "voice": choice_to_json(self.target.voice),
            }
        )
        await self.link.send({"type": "listening"})
        self._active_at = asyncio.get_running_loop().time()
        self._listener = asyncio.create_task(self._listen())
        self._watcher = asyncio.create_task(self._watch())

    async def hear(self, pcm: bytes) -> None:
        """A binary frame of the user's audio at the call's rate."""
        if len(pcm) > self.start.frame_max_bytes:
            raise ValidationFailed(
                f"An audio frame holds at most {FRAME_MAX_S * 1000:g} ms "
                f"({self.start.frame_max_bytes} bytes at {self.start.sample_rate} Hz)."
            )
        if len(pcm) % 2:
            raise ValidationFailed("Audio frames are 16-bit samples: an even number of bytes.")
        await self._inbox.put(pcm)

    async def interrupt(self) -> None:
        """The client's own barge-in (a button): as if speech had been heard."""
        await self._barge_in()

    async def hang_up(self) -> None:
        """The call ends (the client left or said `end`): the listening stops; a turn
        being heard or sent is finished and sent; a reply goes on being written."""
        if self._closed:
            return
        self._closed = True
        self.service.ended(self)
        await self._inbox.close()  # a frame waiting for room is dropped
        current = asyncio.current_task()  # the call may be ended from one of its own
        for task in (self._listener, self._watcher):
            if task is not None and task is not current:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for part in self._carry:  # a saying gone on from, and the rest never heard
            part.cancel()
        turn = self._turn
        if (
            turn is not None
            and turn.task is not None
            and turn.task is not current
            and not turn.task.done()
        ):
            if turn.phase == REPLYING:
                turn.task.cancel()
                await asyncio.gather(turn.task, return_exceptions=True)
            else:
                self.service.keep(turn.task)

    async def end(self, error: AppError) -> None:
        """End the call from the server's side: an `error` frame with the close code
        4000 + its status, then as when the client hangs up."""
        if self._closed:
            return
        self.service.ended(self)  # over before the client hears it is (it may call again)
        await self.link.close(error)
        await self.hang_up()

    async def replaced(self) -> None:
        await self.end(CallReplaced("This chat's call was picked up somewhere else."))

    async def _watch(self) -> None:
        """End the call when the server begins to stop, once it has lasted
        `call_max_duration_s`, or after `call_idle_timeout_s` with nothing said."""
        settings = self.service.settings
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + settings.call_max_duration_s
        error: AppError
        while True:
            now = loop.time()
            if self._busy():  # a turn answered or played is not idle
                self._active_at = now
            idle_at = self._active_at + settings.call_idle_timeout_s
            if now >= ends_at:
                error = CallTimedOut(
                    f"A call lasts at most {settings.call_max_duration_s:g} s; call again.",
                    extra={"limit": "length"},
                )
                break
            if now >= idle_at:
                error = CallTimedOut(
                    f"Nothing was said for {settings.call_idle_timeout_s:g} s.",
                    extra={"limit": "idle"},
                )
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(ends_at, idle_at) - now):
                    await self.service.stopping.wait()
            if self.service.stopping.is_set():
                error = ShuttingDown("The server is restarting; call again.")
                break
        await self.end(error)

    # --- hearing -------------------------------------------------------------------

    async def _listen(self) -> None:
        """Judge the audio heard (a second of it at most at a time); when that fails,
        the call ends with `internal_error` (the client is not left talking to no one)."""
        try:
            while pcm := await self._inbox.take(self.start.sample_rate * 2):
                await self._judge(pcm)
        except Exception:
            log.exception("call %s: listening failed", self.id)
            await self.end(InternalError("The call stopped hearing you; call again."))

    async def _judge(self, pcm: bytes) -> None:
        events = await asyncio.to_thread(self._detect, pcm)
        for event in events:
            if isinstance(event, SpeechStarted):
                self._active_at = asyncio.get_running_loop().time()
                await self.link.send({"type": "speech_started"})
                if self._busy():
                    await self._barge_in()
            else:
                self._take_turn(event)

    def _detect(self, pcm: bytes) -> list[SpeechStarted | TurnEnded]:
        if self.start.sample_rate != SAMPLE_RATE:
            pcm = resample(Audio(pcm, self.start.sample_rate), SAMPLE_RATE).pcm
        return self.detector.feed(pcm)

    def _busy(self) -> bool:
        loop = asyncio.get_running_loop()
        turn = self._turn
        running = turn is not None and turn.task is not None and not turn.task.done()
        return running or loop.time() < self._playing_until

    def _take_turn(self, ended: TurnEnded) -> None:
        parts, self._carry = self._carry, []
        parts.append(asyncio.create_task(self._words(ended.audio)))
        self._turns += 1
        turn = self._turn = _Turn(parts)
        turn.task = asyncio.create_task(self._run_turn(turn, self._turns))

    async def _barge_in(self) -> None:
        """Stop speaking and stop the reply; a turn not yet sent is kept to open the
        next one (the user paused, then went on)."""
        turn, self._turn = self._turn, None
        self._playing_until = 0.0
        reply_id = turn.reply_id if turn is not None else None
        if turn is not None and turn.task is not None and not turn.task.done():
            if turn.phase == HEARING:
                turn.carried = True
                self._carry = turn.parts
            turn.task.cancel()
            await asyncio.gather(turn.task, return_exceptions=True)
            if turn.phase == HEARING:
                return
            if turn.phase == SENDING and turn.send is not None:
                try:
                    sent = await asyncio.shield(turn.send)
                except AppError:
                    pass
                except Exception:
                    log.exception("call %s: sending an interrupted turn failed", self.id)
                else:
                    reply_id = sent.reply.id if sent.reply is not None else None
        await self.link.send({"type": "interrupted", "message_id": reply_id})
        if reply_id is not None:
            with contextlib.suppress(AppError):
                await self.service.messages.stop(self.user, reply_id, wait=False)

    # --- one turn: heard, sent, answered aloud -------------------------------------

    async def _run_turn(self, turn: _Turn, number: int) -> None:
        """One turn, checked, heard, sent and answered; whatever fails on the way, the
        client is told (`error`) and the call goes on (`listening`)."""
        try:
            self.user = await self.link.caller()
        except AppError as error:  # signed out, the session ran out, suspended, deleted
            await self.end(error)
            return
        try:
            await self._take_part(turn, number)
        except Exception:
            log.exception("call %s: turn %d failed", self.id, number)
            await self.link.send_problem("error", InternalError("This turn failed; say it again."))
            await self.link.send({"type": "listening"})
        finally:
            self._active_at = asyncio.get_running_loop().time()

    async def _take_part(self, turn: _Turn, number: int) -> None:
        try:
            text = await self._transcribe(turn.parts)
        except asyncio.CancelledError:
            if not turn.carried:  # not going on in the next turn: nobody waits for it
                for part in turn.parts:
                    part.cancel()
            raise
        if text is None:
            await self.link.send({"type": "listening"})
            return
        turn.phase = SENDING
        chat_id = self.target.chat.id
        cursor = await self.service.events.last_id(chat_stream(chat_id))
        turn.send = asyncio.create_task(
            self.service.chats.send(self.user, chat_id, f"call-{self.id}-{number}", text)
        )
        try:
            result = await asyncio.shield(turn.send)
        except AppError as error:
            kind = "refused" if isinstance(error, ContentRefused) else "error"
            await self.link.send_problem(kind, error, text=text)
            await self.link.send({"type": "listening"})
            return
        if self._closed or result.reply is None:
            return  # the client left: the reply is written all the same
        turn.phase, turn.reply_id = REPLYING, result.reply.id
        await self.link.send({"type": "transcript", "text": text, "message_id": result.message.id})
        await self.link.send({"type": "reply", "message_id": result.reply.id})
        if result.queue is not None:
            await self._places.tell(None, result.queue.position, result.queue.estimated_start_s)
        answered = asyncio.Event()
        watching = asyncio.create_task(
            self._places.watch(result.reply.id, cursor, answered, wait_s=_WATCH_WAIT_S)
        )

        def stop_watching() -> None:
            # A blocking XREAD may not see the cancel: the flag ends the loop after it.
            answered.set()
            watching.cancel()

        try:
            await self._answer(result.reply.id, stop_watching)
        finally:
            stop_watching()
            await asyncio.wait({watching}, timeout=_WATCH_WAIT_S)
            if watching.done() and not watching.cancelled() and watching.exception():
                log.warning("call %s: places in line not followed", self.id,
                            exc_info=watching.exception())  # fmt: skip
        status = await self._status_of(result.reply.id)
        await self.link.send(
            {"type": "reply_done", "message_id": result.reply.id, "status": status}
        )
        # The turn lasts while the client plays what it was sent: speech then barges in.
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self._playing_until - loop.time()))
        await self.link.send({"type": "listening"})

    async def _transcribe(self, parts: list[asyncio.Task[str]]) -> str | None:
        """The turn's words (its parts' joined), or None (the client was told why) when
        there are none. The parts are shielded: a barge-in carries them to the next turn."""
        said: list[str] = []
        failure: AppError | None = None
        for part in parts:
            try:
                words = await asyncio.shield(part)
            except AppError as error:  # no_speech_heard, rate_limited, voice_busy, ...
                failure = error
                continue
            if words:
                said.append(words)
        if not said:
            if failure is not None:
                await self.link.send_problem("error", failure)
            return None
        return " ".join(said)

    async def _words(self, audio: Audio) -> str:
        """What was said in `audio` (one saying), counted against the user's rate."""
        transcription = self.service.transcription
        await transcription.count(self.user)
        transcript = await transcription.transcribe(
            audio, language=None, on_place=self._places.teller("transcription")
        )
        return transcript.text.strip()

    async def _answer(self, reply_id: str, stop_watching: Callable[[], None]) -> None:
        """Follow the reply and speak each sentence as it completes (while one is
        synthesised, the reply goes on streaming and the next sentences wait)."""
        said: asyncio.Queue[str | None] = asyncio.Queue()
        follower = ReplyFollower(
            self.service.database,
            self.service.events,
            message_id=reply_id,
            chat_id=self.target.chat.id,
            limit=self.service.settings.speech_max_chars,
        )

        async def follow() -> None:
            speakable = Speakable()
            try:
                async for sentence in follower.sentences():
                    stop_watching()  # it is written: no more places in line
                    for text in pieces(speakable.say(sentence.text)):
                        said.put_nowait(text)
            except MessageChanged:
                pass  # edited or deleted meanwhile: what is left is not said
            finally:
                said.put_nowait(None)

        async def speak() -> None:
            await self.service.voices.rate_limit(self.user)
            index = 0
            while (text := await said.get()) is not None:
                await self._speak(index, text)
                index += 1

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(follow())
                group.create_task(speak())
        except* AppError as errors:  # rate_limited: the reply is in the chat, unspoken
            await self.link.send_problem("error", errors.exceptions[0])  # type: ignore[arg-type]

    async def _speak(self, index: int, text: str) -> None:
        try:
            audio = await self.service.voices.synthesize(
                text, self.target.voice, self._places.teller(SYNTHESIS)
            )
        except AppError as error:  # one piece unsaid; the reply's text is in the chat
            await self.link.send_problem("error", error, index=index)
            return
        audio = await asyncio.to_thread(resample, audio, self.start.sample_rate_out)
        frame = {
            "type": "audio",
            "index": index,
            "text": text,
            "sample_rate": audio.sample_rate,
            "bytes": len(audio.pcm),
        }
        await self.link.send(frame, audio.pcm)
        now = asyncio.get_running_loop().time()
        self._playing_until = max(self._playing_until, now) + audio.duration_s

    async def _status_of(self, reply_id: str) -> str:
        async with self.service.database.read() as tx:
            reply = await chats_repo.get_message(tx, reply_id)
        return reply.status if reply is not None else FAILED
