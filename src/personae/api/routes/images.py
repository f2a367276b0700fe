"""Pictures (avatars, card images) by URL, in resized variants."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from personae.api.deps import ContainerDep, OptionalUser
from personae.images import SIZES

router = APIRouter(prefix="/api/v1/images", tags=["images"])

ONE_YEAR_S = 31_536_000
_WEBP: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/webp": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The picture, resized (aspect kept, never enlarged)",
    },
    304: {"description": "Not modified: the picture named in If-None-Match is still it"},
}


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in tags or etag in tags


@router.get("/{image_id}", response_class=Response, responses=_WEBP)
async def get_image(
    image_id: str,
    viewer: OptionalUser,
    container: ContainerDep,
    size: Annotated[
        int,
        Query(
            ge=1,
            le=4096,
            description=f"Pixels of the longest side; served by the nearest of {SIZES} "
            "at least that large (or the largest).",
        ),
    ] = 256,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    """What an id holds never changes, so a browser keeps it for a year. A private,
    unlisted, hidden or mature character's pictures are for the browser's cache only."""
    served = await container.images.get(image_id, size, viewer)
    etag = f'"{served.variant.etag}"'
    scope = "public" if served.shared_cache else "private"
    headers = {"ETag": etag, "Cache-Control": f"{scope}, max-age={ONE_YEAR_S}, immutable"}
    if _matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    return Response(served.variant.data, media_type=served.variant.media_type, headers=headers)
