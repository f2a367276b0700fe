"""Character cards: import a JSON/PNG/CHARX card, export one, upload a lorebook."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.responses import Response

from personae.api.deps import ContainerDep, CurrentUser, OptionalUser
from personae.api.schemas.characters import CharacterPublic, Visibility
from personae.services.cards import CardDownload

router = APIRouter(prefix="/api/v1/characters", tags=["cards"])

# Bodies on these paths may be as large as PERSONAE_MAX_UPLOAD_BYTES (see app.py).
UPLOAD_PATHS = re.compile(r"/api/v1/characters/(import|[^/]+/lorebook)")


def _download(download: CardDownload) -> Response:
    return Response(
        download.content,
        media_type=download.media_type,
        headers={"Content-Disposition": f'attachment; filename="{download.filename}"'},
    )


@router.post("/import", status_code=status.HTTP_201_CREATED)
async def import_card(
    user: CurrentUser,
    container: ContainerDep,
    file: Annotated[UploadFile, File(description="A card: .json, .png or .charx")],
    visibility: Annotated[Visibility, Form()] = "public",
) -> CharacterPublic:
    character = await container.cards.import_card(user, await file.read(), visibility=visibility)
    return CharacterPublic.model_validate(character)


@router.get("/{character_id}/card.json")
async def export_card_json(
    character_id: str,
    viewer: OptionalUser,
    container: ContainerDep,
    spec: Literal["v2", "v3"] = "v3",
) -> Response:
    return _download(await container.cards.export_card(character_id, viewer, "json", spec=spec))


def _binary(media_type: str) -> dict[int | str, dict[str, Any]]:
    """The document's word for a file download (FastAPI would say application/json)."""
    schema = {"type": "string", "format": "binary"}
    return {200: {"content": {media_type: {"schema": schema}}, "description": "The file"}}


@router.get("/{character_id}/card.png", response_class=Response, responses=_binary("image/png"))
async def export_card_png(
    character_id: str, viewer: OptionalUser, container: ContainerDep
) -> Response:
    return _download(await container.cards.export_card(character_id, viewer, "png"))


@router.get(
    "/{character_id}/card.charx", response_class=Response, responses=_binary("application/zip")
)
async def export_card_charx(
    character_id: str, viewer: OptionalUser, container: ContainerDep
) -> Response:
    return _download(await container.cards.export_card(character_id, viewer, "charx"))


@router.put("/{character_id}/lorebook")
async def upload_lorebook(
    character_id: str,
    user: CurrentUser,
    container: ContainerDep,
    file: Annotated[UploadFile, File(description="A lorebook_v3 JSON file")],
) -> CharacterPublic:
    character = await container.cards.set_lorebook(character_id, user, await file.read())
    return CharacterPublic.model_validate(character)
