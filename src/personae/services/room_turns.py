"""Who speaks next in a room, durably.

A room's plan is rows of `room_turns`. A user message (or a person picking a
character, or auto-mode) plans turns under the chat's lock; `settle` starts the next
planned turn (its reply placeholder and job) only when no reply of the room is queued
or being written. `settle` runs in the transaction that stores a message, and in the
one that stores how a reply ended (services/reply_states.py), so a crash can never
leave a room with a finished reply and a next turn that nobody starts: both commit,
or neither does. One reply at a time: replies never interleave.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from personae.errors import CharacterNotInRoom, RespondWithRequired
from personae.events.base import EventLog
from personae.services import chat_events
from personae.services.chat_events import FINAL_STATES
from personae.services.send_path import JobSignals, QueuePlace, insert_reply, priority_of
from personae.settings import Settings
from personae.storage.db import Transaction
from personae.storage.repos import accounts as accounts_repo
from personae.storage.repos import characters as character_repo
from personae.storage.repos import chats as chat_repo
from personae.storage.repos import rooms as repo
from personae.storage.repos.characters import CharacterRecord
from personae.storage.repos.chats import ChatRecord, MessageRecord
from personae.storage.repos.rooms import PLANNED, STARTED, RoomCharacterRecord, TurnRecord

NATURAL, LIST, RANDOM, MANUAL = "natural", "list", "random", "manual"
TURN_MODES = (NATURAL, LIST, RANDOM, MANUAL)
# The label of a room's message that names who wrote it (kept with the message, so a
# history reads the name it was written under).
SPEAKER = "speaker"


@dataclass(frozen=True)
class CastMember:
    """One character of a room: its place in the room and its record."""

    seat: RoomCharacterRecord
    character: CharacterRecord

    @property
    def id(self) -> str:
        return self.character.id

    @property
    def name(self) -> str:
        return self.character.name


async def load_cast(tx: Transaction, chat_id: str) -> list[CastMember]:
    """The room's characters in list order (a deleted character keeps its seat)."""
    cast = []
    for seat in await repo.list_room_characters(tx, chat_id):
        character = await character_repo.get_character(tx, seat.character_id, include_deleted=True)
        if character is not None:
            cast.append(CastMember(seat, character))
    return cast


def mentioned(text: str, cast: Sequence[CastMember]) -> list[CastMember]:
    """Characters named in `text` (whole words, any case), in order of first mention."""
    found: list[tuple[int, int, CastMember]] = []
    for index, member in enumerate(cast):
        if not member.name.strip():
            continue
        pattern = r"(?<!\w)" + re.escape(member.name.strip()) + r"(?!\w)"
        hit = re.search(pattern, text, flags=re.IGNORECASE)
        if hit is not None:
            found.append((hit.start(), index, member))
    return [member for _, _, member in sorted(found, key=lambda f: (f[0], f[1]))]


def natural_order(
    text: str, cast: Sequence[CastMember], rng: random.Random, *, exclude: str | None = None
) -> list[tuple[CastMember, str]]:
    """Natural mode: those mentioned first, then each other with probability = its
    talkativeness; at least one answers (the most talkative, ties in list order)."""
    pool = [m for m in cast if m.id != exclude] or list(cast)
    first = [(m, "mention") for m in mentioned(text, pool)]
    named = {m.id for m, _ in first}
    rest = [
        (m, "talkative") for m in pool if m.id not in named and rng.random() < m.seat.talkativeness
    ]
    chosen = first + rest
    if not chosen and pool:
        best = max(pool, key=lambda m: (m.seat.talkativeness, -pool.index(m)))
        chosen = [(best, "talkative")]
    return chosen


def plan_for_mode(
    mode: str, text: str, cast: Sequence[CastMember], rng: random.Random
) -> list[tuple[CastMember, str]]:
    if mode == LIST:
        return [(m, "list") for m in cast]
    if mode == RANDOM:
        return [(rng.choice(list(cast)), "random")] if cast else []
    if mode == MANUAL:
        return []
    return natural_order(text, cast, rng)


@dataclass
class Notes:
    """What a transaction changed in a room's turns, told after it commits."""

    chat_id: str
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    started: MessageRecord | None = None

    def add(self, name: str, data: dict[str, Any]) -> None:
        self.events.append((name, data))


def turn_data(turn: TurnRecord, name: str, message_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "turn_id": turn.id,
        "character_id": turn.character_id,
        "name": name,
        "reason": turn.reason,
        "status": STARTED if message_id else turn.status,
    }
    if message_id is not None:
        data["message_id"] = message_id
    return data


def auto_data(turns_left: int, *, stopped_by: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"turns_left": turns_left, "running": turns_left > 0}
    if stopped_by is not None:
        data["stopped_by"] = stopped_by
    return data


class RoomTurns:
    """Plans and starts the turns of rooms (every call inside the caller's transaction,
    with the chat locked by it or by `settle`), and tells the room afterwards."""

    def __init__(
        self,
        events: EventLog,
        signals: JobSignals,
        settings: Settings,
        rng: random.Random | None = None,
    ) -> None:
        self._events = events
        self._signals = signals
        self._settings = settings
        self._rng = rng or random.Random()

    async def plan(
        self,
        tx: Transaction,
        chat: ChatRecord,
        cast: Sequence[CastMember],
        picks: Sequence[tuple[CastMember, str]],
        *,
        requested_by: str,
        parent_id: str | None,
        notes: Notes,
    ) -> list[TurnRecord]:
        """Plan `picks` after the turns already planned."""
        planned = []
        for member, reason in picks:
            turn = await repo.insert_turn(
                tx,
                chat_id=chat.id,
                character_id=member.id,
                requested_by=requested_by,
                reason=reason,
                parent_id=parent_id,
            )
            planned.append(turn)
            notes.add("turn", turn_data(turn, member.name))
        return planned

    async def plan_message(
        self,
        tx: Transaction,
        chat: ChatRecord,
        message: MessageRecord,
        *,
        respond_with: str | None,
        respond: bool,
        notes: Notes,
    ) -> list[TurnRecord]:
        """A new user message re-plans: the turns not started are dropped (auto-mode
        stops), then the message's turns are planned."""
        await self.interrupt(tx, chat, notes)
        if not respond:
            return []
        cast = await load_cast(tx, chat.id)
        if respond_with is not None:
            member = next((m for m in cast if m.id == respond_with), None)
            if member is None:
                raise CharacterNotInRoom("respond_with names no character of this room.")
            picks = [(member, "manual")]
        elif chat.turn_mode == MANUAL:
            raise RespondWithRequired(
                "This room's turn order is manual: say who answers with respond_with "
                "(or send respond: false)."
            )
        else:
            picks = plan_for_mode(chat.turn_mode, message.content, cast, self._rng)
        assert message.author_id is not None
        return await self.plan(
            tx, chat, cast, picks, requested_by=message.author_id, parent_id=message.id, notes=notes
        )

    async def interrupt(self, tx: Transaction, chat: ChatRecord, notes: Notes) -> None:
        """Drop the turns not started and stop auto-mode."""
        await repo.drop_planned(tx, chat.id)
        if chat.auto_turns_left:
            await chat_repo.update_chat(tx, chat.id, auto_turns_left=0)
            notes.add("auto", auto_data(0))

    async def speak_now(
        self, tx: Transaction, chat: ChatRecord, character_id: str, user_id: str, notes: Notes
    ) -> TurnRecord:
        """A person picks who speaks next: the plan not started gives way to it."""
        cast = await load_cast(tx, chat.id)
        member = next((m for m in cast if m.id == character_id), None)
        if member is None:
            raise CharacterNotInRoom("This character is not in the room.")
        await repo.drop_planned(tx, chat.id)
        turns = await self.plan(
            tx, chat, cast, [(member, "manual")], requested_by=user_id, parent_id=None, notes=notes
        )
        return turns[0]

    async def start_auto(
        self, tx: Transaction, chat: ChatRecord, turns: int, user_id: str, notes: Notes
    ) -> None:
        """Characters carry on among themselves for up to `turns` replies (the first is
        planned now, charged to `user_id`; each next one when the one before ends)."""
        await repo.drop_planned(tx, chat.id, reason="auto")
        cast = await load_cast(tx, chat.id)
        last = await self._last_speaker(tx, chat.id)
        pick = self._auto_pick(cast, last)
        await chat_repo.update_chat(tx, chat.id, auto_turns_left=turns - 1)
        notes.add("auto", auto_data(turns))
        if pick is not None:
            await self.plan(
                tx, chat, cast, [pick], requested_by=user_id, parent_id=None, notes=notes
            )

    async def stop_auto(
        self, tx: Transaction, chat: ChatRecord, user_id: str, notes: Notes
    ) -> None:
        await repo.drop_planned(tx, chat.id, reason="auto")
        await chat_repo.update_chat(tx, chat.id, auto_turns_left=0)
        notes.add("auto", auto_data(0, stopped_by=user_id))

    async def _last_speaker(self, tx: Transaction, chat_id: str) -> TurnRecord | None:
        for turn in await repo.last_turns(tx, chat_id, 8):
            if turn.status in (STARTED, repo.DONE):
                return turn
        return None

    def _auto_pick(
        self, cast: Sequence[CastMember], last: TurnRecord | None, text: str = ""
    ) -> tuple[CastMember, str] | None:
        exclude = last.character_id if last is not None and len(cast) > 1 else None
        order = natural_order(text, cast, self._rng, exclude=exclude)
        return (order[0][0], "auto") if order else None

    async def settle(self, tx: Transaction, chat_id: str) -> Notes:
        """Close the turns whose reply ended; start the next planned one if no reply of
        the room is open (locks the chat)."""
        notes = Notes(chat_id)
        chat = await chat_repo.lock_chat(tx, chat_id)
        if chat is None or not chat.is_room:
            return notes
        turns = await repo.open_turns(tx, chat_id)
        finished: TurnRecord | None = None
        for turn in (t for t in turns if t.status == STARTED):
            reply = await chat_repo.get_message(tx, turn.message_id) if turn.message_id else None
            if reply is not None and reply.status not in FINAL_STATES:
                return notes  # one reply at a time
            await repo.set_turn(tx, turn.id, status=repo.DONE)
            finished = turn
        if await chat_repo.unfinished_replies(tx, chat_id):
            return notes  # a swipe or a continuation is being written
        planned = [t for t in turns if t.status == PLANNED]
        if not planned and finished is not None and finished.reason == "auto":
            planned = await self._next_auto(tx, chat, finished, notes)
        for turn in planned:
            started = await self._start(tx, chat, turn, notes)
            if started:
                break
        return notes

    async def _next_auto(
        self, tx: Transaction, chat: ChatRecord, finished: TurnRecord, notes: Notes
    ) -> list[TurnRecord]:
        if chat.auto_turns_left <= 0:
            notes.add("auto", auto_data(0))
            return []
        cast = await load_cast(tx, chat.id)
        reply = await chat_repo.get_message(tx, finished.message_id or "")
        pick = self._auto_pick(cast, finished, reply.content if reply else "")
        if pick is None:
            return []
        await chat_repo.update_chat(tx, chat.id, auto_turns_left=chat.auto_turns_left - 1)
        notes.add("auto", auto_data(chat.auto_turns_left))
        return await self.plan(
            tx, chat, cast, [pick], requested_by=finished.requested_by, parent_id=None, notes=notes
        )

    async def _start(
        self, tx: Transaction, chat: ChatRecord, turn: TurnRecord, notes: Notes
    ) -> bool:
        """Start a planned turn: its reply's place, placeholder and job. A turn whose
        character left the room is dropped instead."""
        seat = await repo.get_room_character(tx, chat.id, turn.character_id)
        character = await character_repo.get_character(tx, turn.character_id, include_deleted=True)
        if seat is None or character is None:
            await repo.set_turn(tx, turn.id, status=repo.DROPPED)
            return False
        locked = await chat_repo.lock_chat(tx, chat.id)
        assert locked is not None
        position = await chat_repo.reserve_positions(tx, locked, 1)
        requester = await accounts_repo.get_user(tx, turn.requested_by)
        reply, _job = await insert_reply(
            tx,
            chat_id=chat.id,
            user_id=turn.requested_by,
            position=position,
            parent_id=turn.parent_id,
            max_attempts=self._settings.job_max_attempts,
            priority=priority_of(requester) if requester is not None else 0,
            character_id=character.id,
            labels={SPEAKER: character.name},
        )
        await repo.set_turn(tx, turn.id, status=STARTED, message_id=reply.id)
        notes.add("turn", turn_data(turn, character.name, reply.id))
        notes.started = reply
        return True

    async def announce(self, notes: Notes, queue: QueuePlace | None = None) -> None:
        """Tell the room what changed, then wake the scheduler (after the commit)."""
        await self.tell(notes, queue)
        self.wake(notes)

    async def tell(self, notes: Notes, queue: QueuePlace | None = None) -> None:
        """Publish what changed. Called inside the transaction, right before its
        commit, while the chat row is still locked: two transactions of one room then
        publish in the order they commit, and no runner can claim a started reply (and
        say it is generating) before the reply that ended before it is told ended.
        The price: a commit failing after this (rare) leaves events of nothing stored."""
        stream = chat_events.chat_stream(notes.chat_id)
        for name, data in notes.events:
            await self._events.publish(stream, name, data)
        if notes.started is not None:
            await chat_events.publish_reply_state(self._events, notes.started)
            if queue is not None:
                await chat_events.publish_queue_place(
                    self._events,
                    notes.chat_id,
                    notes.started.id,
                    queue.position,
                    queue.estimated_start_s,
                    reason=queue.reason,
                )

    def wake(self, notes: Notes) -> None:
        """Hand a started reply to the scheduler, once its job is committed."""
        if notes.started is not None:
            self._signals.job_queued(notes.started.id)
