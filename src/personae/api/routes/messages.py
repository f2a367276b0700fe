"""One message: swipes, continuing, edits, swipe selection, deletion, ratings, stop."""

from __future__ import annotations

from fastapi import APIRouter, status

from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas.chats import (
    MessagePublic,
    MessageUpdate,
    QueuePublic,
    RatingIn,
    ReplyPublic,
)

router = APIRouter(prefix="/api/v1/messages", tags=["messages"])


@router.post("/{message_id}/swipes", status_code=status.HTTP_202_ACCEPTED)
async def swipe(message_id: str, user: CurrentUser, container: ContainerDep) -> ReplyPublic:
    """Write another reply beside this one (it becomes the selected swipe)."""
    reply, queue = await container.messages.swipe(user, message_id)
    return ReplyPublic.model_validate(reply).model_copy(
        update={"queue": QueuePublic.model_validate(queue) if queue else None}
    )


@router.post("/{message_id}/continue", status_code=status.HTTP_202_ACCEPTED)
async def continue_reply(
    message_id: str, user: CurrentUser, container: ContainerDep
) -> ReplyPublic:
    """Go on writing the chat's last reply from its end (appended to the same message)."""
    reply, queue = await container.messages.continue_reply(user, message_id)
    return ReplyPublic.model_validate(reply).model_copy(
        update={"queue": QueuePublic.model_validate(queue) if queue else None}
    )


@router.patch("/{message_id}")
async def update_message(
    message_id: str, body: MessageUpdate, user: CurrentUser, container: ContainerDep
) -> MessagePublic:
    if body.swipe is not None:
        message = await container.messages.select_swipe(user, message_id, body.swipe)
    else:
        assert body.content is not None
        message = await container.messages.edit(user, message_id, body.content)
    return MessagePublic.model_validate(message)


@router.delete("/{message_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_message(message_id: str, user: CurrentUser, container: ContainerDep) -> None:
    await container.messages.delete(user, message_id)


@router.put("/{message_id}/rating")
async def rate_message(
    message_id: str, body: RatingIn, user: CurrentUser, container: ContainerDep
) -> MessagePublic:
    return MessagePublic.model_validate(await container.messages.rate(user, message_id, body.stars))


@router.post("/{message_id}/stop")
async def stop_reply(message_id: str, user: CurrentUser, container: ContainerDep) -> MessagePublic:
    """Stop a reply and keep what was written."""
    return MessagePublic.model_validate(await container.messages.stop(user, message_id))
