"""The personal data export: one JSON download of everything the caller owns."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import StreamingResponse

from personae.api.deps import ContainerDep, CurrentUser

router = APIRouter(prefix="/api/v1", tags=["accounts"])


@router.get("/me/export", response_class=StreamingResponse)
async def export_my_data(user: CurrentUser, container: ContainerDep) -> StreamingResponse:
    """Account, personas, characters (as cards), chats with every message, swipe and memory."""
    filename = container.exports.filename(user)
    return StreamingResponse(
        container.exports.stream(user),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )
