"""Writing one reply: the body of a reply job.

Tokens go to the chat's event log as they arrive; the text so far is
checkpointed to the database every moment, so a crash loses at most the last
fraction of a second, and a retried or recovered job continues from the
checkpoint instead of starting over. Nothing written is ever deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import datetime

from personae.errors import ContextTooLong, WorkTimedOut
from personae.events.base import EventLog
from personae.llm.base import (
    BackendUnreachable,
    ChatTurn,
    ContextOverflowError,
    PermanentBackendError,
    SamplingParams,
    StreamStats,
    TransientBackendError,
)
from personae.llm.quality import QualityMonitor
from personae.llm.router import Backend, Choice, Router
from personae.services import chat_events
from personae.services.chat_events import (
    COMPLETE,
    FAILED,
    FILTERED,
    GENERATING,
    QUEUED,
    STOPPED,
)
from personae.services.job_state import (
    Draft,
    JobControl,
    Outcome,
    Preloaded,
    ReplyContext,
    StreamAhead,
    continued_from,
)
from personae.services.memory import MemoryService
from personae.services.metrics import ReplyRecorder
from personae.services.moderation import ModerationService, SentenceGate
from personae.services.reply_material import ReplyMaterial
from personae.services.reply_states import ReplyStates
from personae.services.reply_trim import trim_cut_draft
from personae.services.room_turns import RoomTurns
from personae.settings import Settings
from personae.storage.db import Database
from personae.storage.repos import jobs as job_repo
from personae.storage.repos.chats import MessageRecord
from personae.storage.repos.jobs import JobRecord

log = logging.getLogger("personae.generation")
_ROOM_WAIT_S = 1.0
# A reply that found no backend able to take it goes back in line for this long.
_BACKEND_WAIT_S = 1.0
_MAX_RETRY_DELAY_S = 30.0
# The finish reasons of OpenAI-compatible servers that Personae acts on.
_BACKEND_LENGTH = "length"
_BACKEND_FILTERED = "content_filter"


class _Interrupted(Exception):
    """The job must end now and be continued later (shutdown) or elsewhere (lease lost)."""


class GenerationService:
    """Runs reply jobs over the router's backends, with failover and the quality gate."""

    def __init__(
        self,
        database: Database,
        events: EventLog,
        router: Router,
        settings: Settings,
        *,
        recorder: ReplyRecorder | None = None,
        memory: MemoryService | None = None,
        moderation: ModerationService | None = None,
        turns: RoomTurns | None = None,
    ) -> None:
        self._moderation = moderation
        self._recorder = recorder
        self._memory = memory
        self._events = events
        self._router = router
        self._settings = settings
        self.material = ReplyMaterial(database, router, settings, memory=memory)
        self._states = ReplyStates(database, events, settings, recorder, turns)

    async def run(
        self,
        job: JobRecord,
        control: JobControl,
        preloaded: Preloaded | None = None,
        chat_changed_at: datetime | None = None,
        ahead: StreamAhead | None = None,
    ) -> Outcome:
        """Write the reply of `job` and record how it ended.

        `preloaded` is what `preload` read for this reply before its claim, if
        anything; it is used only if the chat has not changed in a way the prompt
        shows since it was read (`chat_changed_at`: the chat's prompt version, read
        by the claim). New messages after this reply do not count. `ahead`, a
        stream begun while the reply's claim was stored (from its read-ahead), is
        taken up only if it was asked the very prompt this reply's material builds,
        and abandoned otherwise.
        """
        started = time.monotonic()
        reply: MessageRecord | None = None
        draft: Draft | None = None
        current = (
            preloaded is not None
            and preloaded.reply.id == job.message_id
            and chat_changed_at is not None
            and preloaded.context.chat.prompt_version == chat_changed_at
        )
        try:
            if preloaded is None or not current:
                preloaded = await self.material.preload(job.message_id or "")
            if preloaded is None:
                await self._states.finish_job(
                    job, job_repo.CANCELLED, "reply or chat gone, or reply final"
                )
                return Outcome(job_repo.CANCELLED, 0.0)
            reply, context = preloaded.reply, preloaded.context
            draft = Draft(text=reply.content, labels=dict(reply.labels))
            if job.cancel_requested or control.stop_requested.is_set():
                await self._states.finalize(job, reply, draft, STOPPED)
                return Outcome(STOPPED, 0.0)
            if job.takeovers >= self._settings.job_max_takeovers:
                await self._states.quarantine(job, reply, draft)
                return Outcome(FAILED, 0.0)
            taken, ahead = ahead, None
            status = await self._generate(job, reply, draft, control, context, taken)
        except WorkTimedOut as error:
            # Its prompt took too long to build (user input at fault, or a starved
            # machine): back in line, counted as a takeover, quarantined if it repeats.
            log.warning("building a reply's prompt ran out of time", extra={"job_id": job.id})
            if reply is not None and draft is not None:
                await self._states.requeue(
                    job, reply, draft, delay_s=_BACKEND_WAIT_S, error=str(error), takeover=True
                )
            else:
                await self._states.requeue_job(
                    job, delay_s=_BACKEND_WAIT_S, error=str(error), takeover=True
                )
            return Outcome(QUEUED, time.monotonic() - started)
        except _Interrupted:
            with contextlib.suppress(Exception):  # the job is another's now, or back in line
                if draft is not None:
                    await draft.saved()
            return Outcome(QUEUED, time.monotonic() - started)
        finally:
            if ahead is not None:
                await ahead.abandon()
        elapsed = time.monotonic() - started
        assert draft is not None
        await self._summary_if_due(context)
        return Outcome(status, elapsed, draft.backend)

    async def _summary_if_due(self, context: ReplyContext) -> None:
        """Queue a summary of the history the prompt left out (after the reply, so the
        check never delays a first token)."""
        left_out = context.prompt_record.get("left_out") or {}
        cut = left_out.get("history_before_position")
        if self._memory is None or not cut:
            return
        try:
            await self._memory.summary_due(context.chat.id, cut)
        except Exception:  # the reply is stored; a later turn queues the summary
            log.exception("queueing a summary failed", extra={"chat_id": context.chat.id})

    async def stream_ahead(self, material: Preloaded) -> StreamAhead | None:
        """Begin the first stream of a reply not yet claimed from `material`, read
        ahead (see StreamAhead): None when no backend has room, or its breaker is not
        closed (a half-open trial is not spent on a stream that may be let go of)."""
        reply, context = material.reply, material.context
        choice = await self._router.take(context.chat.id, context.chat.backend)
        if choice is None:
            return None
        backend = choice.backend
        try:
            if backend.breaker.state != "closed":
                await choice.give_back()
                return None
            turns = await self.material.prompt(context, reply.content, backend)
        except BaseException:
            await choice.give_back()
            raise
        stats = StreamStats()
        params = self.material.params(context, strict=False)
        pieces = backend.provider.stream_chat(turns, params, cache_key=reply.chat_id, stats=stats)
        return StreamAhead(choice, turns, params, stats, pieces)

    async def _generate(
        self,
        job: JobRecord,
        reply: MessageRecord,
        draft: Draft,
        control: JobControl,
        context: ReplyContext,
        ahead: StreamAhead | None = None,
    ) -> str:
        """Stream the reply, moving to another backend when one fails mid-stream, and
        regenerating once (stricter sampling) when the quality gate rejects it. The
        first stream is `ahead`, when one was begun and was asked this reply's prompt."""
        ahead = await self._take_up(ahead, context, draft.text)
        excluded: set[str] = set()
        # Backends that failed this reply in this run (a half-open trial does not count:
        # it tells whether the backend is back, not whether this reply can be written).
        failures = 0
        strict = False
        start_text = draft.text
        monitor = QualityMonitor(self.material.params(context, strict=False).stop)
        monitor.feed(draft.text)
        gate = self._gate(context)
        while True:
            if ahead is not None:
                choice: Choice | None = ahead.choice
            else:
                choice = await self._router.take(
                    context.chat.id, context.chat.backend, frozenset(excluded)
                )
            if choice is None and self._router.has_usable(frozenset(excluded)):
                # Claimed ahead of a free slot: take the first one that frees.
                await self._router.wait_for_room(_ROOM_WAIT_S)
                continue
            if choice is None:
                return await self._retry_or_wait(job, reply, draft, control, failures)
            backend = choice.backend
            taken, ahead = ahead, None
            trial = backend.breaker.state == "half_open"
            if not backend.breaker.acquire():
                if taken is not None:
                    await taken.abandon()
                await choice.give_back()
                excluded.add(backend.name)
                continue
            try:
                if taken is not None:
                    turns, params = taken.turns, taken.params
                else:
                    turns = await self.material.prompt(context, draft.text, backend)
                    params = self.material.params(context, strict=strict)
                draft.generation["prompt"] = dict(context.prompt_record)
                stopped = await self._stream(
                    job, reply, draft, control, backend, turns, monitor, params, taken, gate
                )
            except TransientBackendError as error:
                backend.breaker.failure()
                if self._recorder is not None:
                    self._recorder.stream_failed(backend.name)
                excluded.add(backend.name)
                # Down for everybody (no connection), or a half-open breaker's trial:
                # the reply waits for the backend; otherwise it failed this reply.
                failures += 0 if trial or isinstance(error, BackendUnreachable) else 1
                log.warning(
                    "backend failed; continuing the reply elsewhere",
                    extra={"job_id": job.id, "backend": backend.name, "error": str(error)},
                )
                continue
            except (ContextTooLong, ContextOverflowError) as error:
                backend.breaker.success()
                detail = error.detail if isinstance(error, ContextTooLong) else str(error)
                await self._states.fail(
                    job, reply, draft, "context_too_long", retryable=False, detail=detail
                )
                return FAILED
            except PermanentBackendError as error:
                backend.breaker.success()
                await self._states.fail(
                    job, reply, draft, "backend_error", retryable=True, detail=str(error)
                )
                return FAILED
            finally:
                # A trial ended by anything but the backend's answer (a prompt out of
                # time, a cancelled job) gives the trial back: another reply takes it.
                if trial:
                    backend.breaker.release_trial()
                await choice.give_back()
            backend.breaker.success()
            draft.backend = backend.name
            draft.labels["fallback"] = choice.fallback
            if draft.filtered is None and gate is not None:  # the unfinished last sentence
                self._filter_at(draft, await gate.finish(draft.text))
            # The model's own server filtered it (OpenAI's "content_filter"): ended as
            # the content rules would end it, with no category of ours to name.
            if draft.filtered is not None or draft.backend_finish == _BACKEND_FILTERED:
                control.free_slot()
                await self._states.finalize(
                    job, reply, draft, FILTERED, filtered_category=draft.filtered
                )
                return FILTERED
            verdict = monitor.verdict()
            if stopped or verdict.ok or strict or not self._settings.quality_gate:
                control.free_slot()  # no further stream: the next job may take the slot
                # Let the scheduler claim it before this job's own writes take the writer.
                await asyncio.sleep(0)
            if stopped:
                await self._states.finalize(job, reply, draft, STOPPED)
                return STOPPED
            if verdict.ok or not self._settings.quality_gate:
                draft.labels["quality"] = "ok" if verdict.ok else verdict.label
                break
            if not strict:
                # Keep the rejected text (nothing is deleted), then write it again, stricter.
                draft.generation["rejected"] = {"text": draft.text, "reason": verdict.label}
                draft.labels["regenerated"] = True
                draft.text = start_text
                if gate is not None:
                    gate.reset(len(start_text))
                strict = True
                monitor = QualityMonitor(self.material.params(context, strict=True).stop)
                monitor.feed(draft.text)
                await draft.saved()
                await self._states.set_status(reply, draft.text, GENERATING)
                continue
            if verdict.label == "empty":
                await self._states.fail(
                    job, reply, draft, "empty_reply", retryable=True, detail=verdict.detail
                )
                return FAILED
            draft.labels["quality"] = verdict.label
            break
        if draft.backend_finish == _BACKEND_LENGTH:
            trim_cut_draft(draft, continued_from(job.payload))
        await self._states.finalize(job, reply, draft, COMPLETE, chat_backend=draft.backend)
        return COMPLETE

    def _gate(self, context: ReplyContext) -> SentenceGate | None:
        """What checks the reply's sentences as they come (None: moderation is off)."""
        if self._moderation is None or not self._moderation.enabled:
            return None
        return SentenceGate(self._moderation, context.character.rating)

    def _filter_at(self, draft: Draft, hit: tuple[int, str] | None) -> bool:
        """End the draft before the sentence moderation blocked, if one was; the text
        from there on is neither stored nor shown (the final state carries the rest)."""
        if hit is None:
            return False
        start, category = hit
        draft.text = draft.text[:start].rstrip()
        draft.filtered = category
        log.info("reply filtered", extra={"category": category})
        return True

    async def _take_up(
        self, ahead: StreamAhead | None, context: ReplyContext, partial: str
    ) -> StreamAhead | None:
        """`ahead` if it was asked the very prompt and sampling this reply's material
        builds for its backend; otherwise it is abandoned (begun from material that
        changed since, or another reply's) and the reply chooses a backend anew."""
        if ahead is None:
            return None
        try:
            turns = await self.material.prompt(context, partial, ahead.choice.backend)
        except Exception:  # (too long, say) the loop builds it again and says so
            await ahead.abandon()
            return None
        except BaseException:
            await ahead.abandon()
            raise
        if turns == ahead.turns and self.material.params(context, strict=False) == ahead.params:
            return ahead
        await ahead.abandon()
        return None

    async def _stream(
        self,
        job: JobRecord,
        reply: MessageRecord,
        draft: Draft,
        control: JobControl,
        backend: Backend,
        turns: list[ChatTurn],
        monitor: QualityMonitor,
        params: SamplingParams,
        ahead: StreamAhead | None = None,
        gate: SentenceGate | None = None,
    ) -> bool:
        """One stream from one backend into the draft (`ahead`'s, begun before the
        claim, when given); returns whether a stop was asked. Each sentence completed
        goes through `gate`: one it blocks ends the stream (`draft.filtered`)."""
        stats = StreamStats() if ahead is None else ahead.stats
        draft.backend_finish = None
        if not draft.announced:
            draft.announced = True
            try:
                await self._states.announce_generating(reply, draft.text)
            except BaseException:
                if ahead is not None:
                    await ahead.abandon()
                raise
        started = time.monotonic() if ahead is None else ahead.started
        first_token_at: float | None = None
        last_checkpoint = started
        stream = chat_events.chat_stream(reply.chat_id)
        if ahead is not None:
            source = ahead.adopt()
        else:
            source = backend.provider.stream_chat(
                turns, params, cache_key=reply.chat_id, stats=stats
            )
        try:
            async with contextlib.aclosing(source) as pieces:
                async for piece in pieces:
                    if not piece:
                        continue
                    if first_token_at is None:
                        first_token_at = time.monotonic()
                        backend.breaker.success()  # a half-open trial closes at once
                    offset = len(draft.text)
                    draft.text += piece
                    monitor.feed(piece)
                    await self._events.publish(
                        stream, "token", {"message_id": reply.id, "offset": offset, "text": piece}
                    )
                    if control.stop_requested.is_set():
                        return True
                    if control.should_pause():
                        await self._pause(job, reply, draft, control)
                    if monitor.looping:
                        return False  # the pattern repeated 4 times: stop the stream here
                    if gate is not None and self._filter_at(draft, await gate.feed(draft.text)):
                        return False
                    if draft.saving is not None and draft.saving.done() and await draft.saved():
                        control.stop_requested.set()
                        return True
                    now = time.monotonic()
                    if now - last_checkpoint >= self._settings.checkpoint_interval_s:
                        last_checkpoint = now
                        # Stored beside the stream, not in its way: waiting for the
                        # writer must not hold up the tokens (or the slot at the end).
                        if draft.saving is None:
                            draft.saving = asyncio.create_task(
                                self._states.checkpoint(job, reply, draft.text, control),
                                name="personae-checkpoint",
                            )
        except asyncio.CancelledError:
            # Hard stop (shutdown past its grace): keep the text and give the job back.
            await asyncio.shield(
                self._states.requeue(job, reply, draft, delay_s=0, error="interrupted")
            )
            raise
        draft.backend_finish = stats.finish_reason
        draft.generation.update(
            model=backend.spec.model,
            backend=backend.name,
            attempts=job.attempts,
            setup_ms=max(0, round((started - control.claimed_at) * 1000)),
            first_token_ms=round(((first_token_at or started) - started) * 1000),
            duration_ms=round((time.monotonic() - started) * 1000),
            prompt_tokens=stats.prompt_tokens,
            cached_tokens=stats.cached_tokens,
            cached_share=stats.cached_share,
            completion_tokens=stats.completion_tokens,
        )
        return False

    async def _pause(
        self, job: JobRecord, reply: MessageRecord, draft: Draft, control: JobControl
    ) -> None:
        if control.lease_lost.is_set():
            log.warning("lease lost; leaving the job to its new owner", extra={"job_id": job.id})
        else:
            await self._states.requeue(job, reply, draft, delay_s=0, error="server shutting down")
        raise _Interrupted()

    async def _retry_or_wait(
        self, job: JobRecord, reply: MessageRecord, draft: Draft, control: JobControl, failures: int
    ) -> str:
        """No backend can write the reply now. After `failures` more backend failures
        of this reply: try again later with backoff, unless its attempts are spent.
        With none (every backend down, or its breaker open): wait in line for one; a
        reply the scheduler claimed past its deadline (`control.past_deadline`) ends."""
        if control.stop_requested.is_set() or await self._states.stop_asked(job):
            await self._states.finalize(job, reply, draft, STOPPED)
            return STOPPED
        attempts = job.attempts + failures
        if attempts >= job.max_attempts:
            detail = f"The model failed this reply {attempts} times."
            await self._states.fail(
                job, reply, draft, "backend_unavailable", retryable=True, detail=detail
            )
            return FAILED
        if control.past_deadline and not failures:
            detail = "No model answered within the reply's deadline."
            await self._states.fail(
                job, reply, draft, "backend_unavailable", retryable=True, detail=detail
            )
            return FAILED
        if failures:
            delay = self._settings.job_retry_base_s * 2 ** (attempts - 1)
            log.warning("reply failed, retrying", extra={"job_id": job.id, "delay_s": delay})
        else:
            delay = _BACKEND_WAIT_S
        delay = min(delay, _MAX_RETRY_DELAY_S)
        error = "waiting for an inference backend"
        await self._states.requeue(job, reply, draft, delay_s=delay, error=error, failures=failures)
        await self._states.announce_waiting_for_backend(job, reply)
        return QUEUED
