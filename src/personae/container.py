"""Builds every long-lived object of a process once, and starts and stops them in order."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from personae.events.base import EventLog
from personae.events.memory import MemoryEventLog
from personae.events.presence import MemoryPresence, Presence, RedisPresence
from personae.events.redis import RedisEventLog
from personae.jobs.heartbeat import process_owner
from personae.jobs.scheduler import Scheduler
from personae.llm.base import Provider
from personae.llm.factory import open_backends
from personae.llm.fleet import FleetKeeper
from personae.llm.router import Router
from personae.llm.slots import SharedSlots
from personae.services.account_deletion import AccountDeletion
from personae.services.accounts import AccountService
from personae.services.calls import CallService
from personae.services.cards import CardService
from personae.services.characters import CharacterService
from personae.services.chats import ChatService
from personae.services.crisis import CrisisDirectory
from personae.services.demo import seed_demo_characters
from personae.services.export import ExportService
from personae.services.fleet_view import FleetView
from personae.services.generation import GenerationService
from personae.services.health import HealthService
from personae.services.images import ImageService
from personae.services.incidents import IncidentService
from personae.services.leadership import Leadership
from personae.services.loop_watch import LoopWatchdog
from personae.services.memory import RECALL_INDEX_JOB, SUMMARY_JOB, MemoryService
from personae.services.messages import MessageService
from personae.services.metrics import Metrics
from personae.services.moderation import ModerationService
from personae.services.moderator_actions import ModerationDesk
from personae.services.personas import PersonaService
from personae.services.probes import ProbeRunner
from personae.services.queue import QueueService
from personae.services.quotas import Quotas
from personae.services.ratelimit import RateLimiter, build_storage
from personae.services.recall import Recall, load_embedder
from personae.services.recall_jobs import RecallIndexJobs
from personae.services.reports import ReportService
from personae.services.room_invites import RoomInvites
from personae.services.room_sends import RoomSends
from personae.services.room_turns import RoomTurns
from personae.services.rooms import RoomService
from personae.services.speech import SpeechService
from personae.services.status import StatusService
from personae.services.streams import StreamService
from personae.services.summaries import SummaryJobs
from personae.services.transcription import TranscriptionService
from personae.services.voice_slots import VoiceSlots
from personae.services.voices import VoiceService
from personae.services.warmup import PrefixWarmer
from personae.services.webhooks import WebhookService
from personae.services.wellbeing import WellbeingService
from personae.settings import Settings, ensure_secret_key
from personae.storage import migrate
from personae.storage.db import Database
from personae.storage.leader_lock import LeaderLock
from personae.voice.factory import VoiceEngines

log = logging.getLogger("personae.container")


@dataclass
class Container:
    settings: Settings
    database: Database
    limiter: RateLimiter
    events: EventLog
    scheduler: Scheduler
    accounts: AccountService
    characters: CharacterService
    cards: CardService
    images: ImageService
    chats: ChatService
    messages: MessageService
    streams: StreamService
    rooms: RoomService
    invites: RoomInvites
    turns: RoomTurns
    presence: Presence
    queue: QueueService
    health: HealthService
    router: Router
    fleet: FleetKeeper
    # The backends as the cluster sees them (None on SQLite: one process sees all).
    fleet_view: FleetView | None
    metrics: Metrics
    incidents: IncidentService
    status: StatusService
    leadership: Leadership
    probes: ProbeRunner
    webhooks: WebhookService
    memory: MemoryService
    personas: PersonaService
    exports: ExportService
    account_deletion: AccountDeletion
    moderation: ModerationService
    reports: ReportService
    moderation_desk: ModerationDesk
    wellbeing: WellbeingService
    warmer: PrefixWarmer
    # Voice (docs/voice.md): the engines and the slots and line their work waits in;
    # the voices list, a character's voice and synthesis; read-aloud of replies,
    # push-to-talk transcription and calls.
    voice_engines: VoiceEngines
    voice_slots: VoiceSlots
    voices: VoiceService
    speech: SpeechService
    transcription: TranscriptionService
    calls: CallService
    # Set when the server begins to stop: open streams end so clients reconnect elsewhere.
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)
    # When the stop was asked (monotonic): the grace counts from then.
    _stop_asked_at: float | None = field(default=None, repr=False)
    _watchdog: LoopWatchdog | None = field(default=None, repr=False)

    async def start(self, *, run_jobs: bool = True) -> None:
        """Schema, demo data, then the model and the scheduler (unless `run_jobs` is off)."""
        self._loop = asyncio.get_running_loop()
        self._watchdog = LoopWatchdog(self.metrics)
        self._watchdog.start()
        if self.settings.auto_migrate:
            await migrate.upgrade(self.database)
        elif not (await self.health.readiness()).ready:
            log.error("the database schema is not current: run `personae migrate` (/readyz is 503)")
            return
        if self.settings.seed_demo and await seed_demo_characters(self.database):
            log.info("seeded the demo characters")
        if not run_jobs or self.settings.role == "api":
            # An api process stores sends; workers write the replies.
            if self.fleet_view is not None:
                await self.fleet_view.start()
            return
        await self.router.replace(await open_backends(self.settings))
        self.fleet.start()
        generation = GenerationService(
            self.database,
            self.events,
            self.router,
            self.settings,
            recorder=self.metrics,
            memory=self.memory,
            moderation=self.moderation,
            turns=self.turns,
        )
        self.scheduler.register(
            SUMMARY_JOB, SummaryJobs(self.database, self.router, self.settings).run
        )
        if self.memory.recall is not None:
            indexing = RecallIndexJobs(self.database, self.memory.recall)
            self.scheduler.register(RECALL_INDEX_JOB, indexing.run)
        await self.scheduler.start(
            generation,
            capacity=self.router.capacity,
            recover_all=self.database.is_sqlite,
            slots=self.router.usable_slots,
            room=self.router.room_beyond,
        )
        if self.fleet_view is not None:
            await self.fleet_view.start()  # after the first beat: slots then count
        await self.leadership.start()
        self.probes.start()
        self.webhooks.start()

    def inference_backends(self) -> list[Provider]:
        """The inference backends the status probes check, one component each."""
        return [backend.provider for backend in self.router.backends if not backend.retired]

    def begin_shutdown(self) -> None:
        """Safe from a signal handler: end open streams and stop taking new reply jobs."""
        if self._stop_asked_at is None:
            self._stop_asked_at = time.monotonic()
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.stopping.set)
            loop.call_soon_threadsafe(self.scheduler.stop_claiming)

    def _grace_left(self) -> float:
        """What is left of the grace: the wait for open connections came out of it."""
        grace = self.settings.graceful_shutdown_s
        if self._stop_asked_at is None:
            return grace
        return max(0.0, grace - (time.monotonic() - self._stop_asked_at))

    async def aclose(self) -> None:
        """Finish or checkpoint running replies, then close every connection."""
        self.stopping.set()
        if self._watchdog is not None:
            await self._watchdog.aclose()
        await self.probes.aclose()
        await self.leadership.aclose()
        await self.webhooks.aclose()
        self.router.cancel_warmups()
        await self.calls.aclose(self._grace_left())
        await self.scheduler.shutdown(self._grace_left())
        await self.warmer.settled()
        if self.fleet_view is not None:
            await self.fleet_view.aclose()
        await self.fleet.stop()
        await self.router.aclose()
        await self.moderation.aclose()
        await self.speech.aclose()
        await self.voice_engines.close()
        await self.events.aclose()
        await self.presence.aclose()
        await self.limiter.aclose()
        await self.database.dispose()


def _event_log(settings: Settings) -> EventLog:
    if settings.redis_url:
        return RedisEventLog(
            settings.redis_url,
            prefix=settings.redis_prefix,
            size=settings.event_log_size,
            timeout_s=settings.redis_timeout_s,
        )
    return MemoryEventLog(
        size=settings.event_log_size, max_bytes=settings.event_log_memory_mib * 2**20
    )


def _presence(settings: Settings) -> Presence:
    if settings.redis_url:
        return RedisPresence(
            settings.redis_url, prefix=settings.redis_prefix, timeout_s=settings.redis_timeout_s
        )
    return MemoryPresence()


def build_container(settings: Settings) -> Container:
    """Wire the objects a process needs; nothing here touches the network yet."""
    database = Database(settings.resolved_database_url)
    storage = build_storage(
        settings.redis_url,
        memory_keys=settings.rate_limit_memory_keys,
        key_prefix=settings.redis_prefix,
    )
    limiter = RateLimiter(storage, key_prefix=settings.redis_prefix)
    events = _event_log(settings)
    container: Container | None = None

    def backends() -> list[Provider]:
        return container.inference_backends() if container is not None else []

    metrics = Metrics()
    incidents = IncidentService(database)
    webhooks = WebhookService(database, settings)
    incidents.subscribe(webhooks.incident_changed)
    status = StatusService(database, settings, incidents, metrics, backends)
    # Several processes share one PostgreSQL: they count backend slots together there,
    # and estimate the waiting room from what every worker reports of the backends.
    owner = process_owner()
    shared = None if database.is_sqlite else SharedSlots(database, owner)
    router = Router([], affinity=settings.routing_affinity, shared=shared)
    fleet_view = None if database.is_sqlite else FleetView(database, router)
    scheduler = Scheduler(
        database,
        events,
        settings,
        paused=status.replies_paused,
        owner=owner,
        fleet=fleet_view,
        leads=lambda: container is not None and container.leadership.is_leader(),
        on_queued=router.cancel_warmups,
    )
    warmer = PrefixWarmer(database, router, settings)
    secret_key = ensure_secret_key(settings)
    recall = Recall(database, load_embedder(settings), cached_chats=settings.recall_cached_chats)
    memory = MemoryService(database, settings, recall)
    moderation = ModerationService(settings, router=router, recorder=metrics)
    crisis = CrisisDirectory(settings.crisis_resources_file)
    turns = RoomTurns(events, scheduler, settings)
    presence = _presence(settings)
    rooms = RoomService(database, events, presence, scheduler, settings, limiter, turns)
    chats = ChatService(
        database,
        events,
        scheduler,
        settings,
        limiter,
        memory,
        moderation,
        crisis,
        warmer=warmer,
        rooms=RoomSends(database, events, scheduler, settings, turns),
    )
    leadership = Leadership(
        LeaderLock(database), check_s=settings.leader_check_s, on_change=metrics.leading
    )
    quotas = Quotas(
        max_characters=settings.user_max_characters, asset_bytes=settings.user_asset_quota_bytes
    )
    images = ImageService(
        database, cpu_budget_s=settings.cpu_budget_s, max_pixels=settings.image_max_pixels
    )
    accounts = AccountService(database, settings, limiter, secret_key)
    messages = MessageService(database, events, scheduler, settings, moderation, turns)
    voice_slots = VoiceSlots(
        synthesis=settings.voice_synthesis_slots,
        transcription=settings.voice_transcription_slots,
        queue_max=settings.voice_queue_max,
        observer=metrics.voice_line,
    )
    voice_engines = VoiceEngines(settings)
    voices = VoiceService(voice_engines, voice_slots, limiter, settings)
    transcription = TranscriptionService(voice_engines, voice_slots, limiter, settings)
    stopping = asyncio.Event()
    calls = CallService(
        database, chats, messages, events, voices, transcription, settings, stopping=stopping
    )
    container = Container(
        settings=settings,
        database=database,
        limiter=limiter,
        events=events,
        scheduler=scheduler,
        accounts=accounts,
        characters=CharacterService(
            database,
            cpu_budget_s=settings.cpu_budget_s,
            quotas=quotas,
            images=images,
            trending_window_days=settings.trending_window_days,
            warmer=warmer,
            voices=voices,
        ),
        cards=CardService(
            database,
            max_upload_bytes=settings.max_upload_bytes,
            cpu_budget_s=settings.cpu_budget_s,
            card_assets_max_bytes=settings.card_assets_max_bytes,
            quotas=quotas,
            images=images,
        ),
        images=images,
        chats=chats,
        messages=messages,
        streams=StreamService(
            database, events, chats, presence, presence_ttl_s=settings.room_presence_ttl_s
        ),
        rooms=rooms,
        invites=RoomInvites(database, settings, rooms),
        turns=turns,
        presence=presence,
        queue=QueueService(
            database,
            scheduler,
            router,
            fleet_view,
            metrics=metrics,
            leads=leadership.is_leader,
            voice_slots=voice_slots,
        ),
        health=HealthService(database),
        router=router,
        fleet=FleetKeeper(router, settings),
        fleet_view=fleet_view,
        metrics=metrics,
        incidents=incidents,
        status=status,
        leadership=leadership,
        probes=ProbeRunner(
            database,
            events,
            settings,
            incidents,
            status,
            metrics,
            backends,
            router=router,
            leads=leadership.is_leader,
        ),
        webhooks=webhooks,
        memory=memory,
        personas=PersonaService(database),
        exports=ExportService(database, cpu_budget_s=settings.cpu_budget_s),
        account_deletion=AccountDeletion(database, accounts),
        moderation=moderation,
        reports=ReportService(database, limiter, rate_per_user=settings.report_rate_per_user),
        moderation_desk=ModerationDesk(database),
        wellbeing=WellbeingService(database, settings),
        warmer=warmer,
        voice_engines=voice_engines,
        voice_slots=voice_slots,
        voices=voices,
        speech=SpeechService(database, events, voices, settings),
        transcription=transcription,
        calls=calls,
        stopping=stopping,
    )
    return container
