"""The waiting room's public figures."""

from __future__ import annotations

from fastapi import APIRouter

from personae.api.deps import ContainerDep, OptionalUser
from personae.api.schemas.common import Output

router = APIRouter(prefix="/api/v1", tags=["queue"])


class TierPublic(Output):
    tier: str
    queued: int
    estimated_wait_s: float
    oldest_wait_s: float | None = None


class BackendPublic(Output):
    name: str
    role: str
    slots: int
    in_flight: int
    healthy: bool
    breaker: str
    service_s: float | None = None


class VoiceLinePublic(Output):
    kind: str
    slots: int
    busy: int
    waiting: int
    estimated_wait_s: float


class QueuePublic(Output):
    length: int
    capacity: int
    running: int
    tiers: list[TierPublic]
    backends: list[BackendPublic]
    # Synthesis and transcription wait in lines of their own (docs/voice.md).
    voice: list[VoiceLinePublic]


@router.get("/queue")
async def queue(viewer: OptionalUser, container: ContainerDep) -> QueuePublic:
    """How long the line is, the estimated wait per tier, and the capacity (staff: more)."""
    return QueuePublic.model_validate(await container.queue.view(viewer))
