"""Chats: start, list, read, rename, delete; history; sending; the live stream."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, status
from starlette.responses import StreamingResponse

from personae.api.deps import ContainerDep, CurrentUser, client_ip
from personae.api.schemas.chats import (
    ChatCreate,
    ChatPage,
    ChatPublic,
    ChatSummaryPublic,
    ChatUpdate,
    ContentWarningPublic,
    CrisisResourcePublic,
    MessagePage,
    MessagePublic,
    PlannedTurnPublic,
    QueuePublic,
    ReplyPublic,
    SendAccepted,
    SendRequest,
)
from personae.api.sse import event_stream_response
from personae.services.crisis import accepted_languages
from personae.services.send_path import SendResult

router = APIRouter(prefix="/api/v1/chats", tags=["chats"])

ClientId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def send_accepted(result: SendResult) -> SendAccepted:
    queue = QueuePublic.model_validate(result.queue) if result.queue else None
    reply = (
        ReplyPublic.model_validate(result.reply).model_copy(update={"queue": queue})
        if result.reply is not None
        else None
    )
    return SendAccepted(
        message=MessagePublic.model_validate(result.message),
        reply=reply,
        turns=[PlannedTurnPublic.model_validate(t) for t in result.turns],
        warnings=[ContentWarningPublic.model_validate(w) for w in result.warnings],
        crisis_resources=[CrisisResourcePublic.model_validate(r) for r in result.crisis_resources],
    )


@router.post("", status_code=status.HTTP_201_CREATED)
async def start_chat(body: ChatCreate, user: CurrentUser, container: ContainerDep) -> ChatPublic:
    chat = await container.chats.start_chat(
        user,
        body.character_id,
        persona_name=body.persona.name if body.persona else None,
        persona_description=body.persona.description if body.persona else "",
        persona_id=body.persona_id,
    )
    return ChatPublic.model_validate(chat)


@router.get("")
async def list_chats(
    user: CurrentUser,
    container: ContainerDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 30,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> ChatPage:
    chats = await container.chats.list_chats(user, limit=limit, offset=offset)
    return ChatPage(
        items=[ChatSummaryPublic.model_validate(c) for c in chats], limit=limit, offset=offset
    )


@router.get("/{chat_id}")
async def get_chat(chat_id: str, user: CurrentUser, container: ContainerDep) -> ChatPublic:
    return ChatPublic.model_validate(await container.chats.open_chat(user, chat_id))


@router.patch("/{chat_id}")
async def rename_chat(
    chat_id: str, body: ChatUpdate, user: CurrentUser, container: ContainerDep
) -> ChatPublic:
    """Rename the chat and/or choose another of one's personas for it."""
    chat = None
    if body.persona_id is not None:
        chat = await container.chats.choose_persona(user, chat_id, body.persona_id)
    if body.title is not None:
        chat = await container.chats.rename_chat(user, chat_id, body.title)
    assert chat is not None
    return ChatPublic.model_validate(chat)


@router.delete("/{chat_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_chat(chat_id: str, user: CurrentUser, container: ContainerDep) -> None:
    await container.chats.delete_chat(user, chat_id)


@router.get("/{chat_id}/messages")
async def list_messages(
    chat_id: str,
    user: CurrentUser,
    container: ContainerDep,
    before: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> MessagePage:
    page, has_more = await container.chats.history(user, chat_id, before=before, limit=limit)
    return MessagePage(items=[MessagePublic.model_validate(m) for m in page], has_more=has_more)


@router.put("/{chat_id}/messages/{client_id}", status_code=status.HTTP_202_ACCEPTED)
async def send_message(
    chat_id: str,
    client_id: ClientId,
    body: SendRequest,
    request: Request,
    user: CurrentUser,
    container: ContainerDep,
    accept_language: Annotated[str | None, Header()] = None,
) -> SendAccepted:
    """Store the message and queue its reply; the same client_id again returns the same pair.
    A message the content rules refuse is answered 422 content_refused, nothing stored."""
    result = await container.chats.send(
        user,
        chat_id,
        client_id,
        body.content,
        ip=client_ip(request),
        languages=accepted_languages(accept_language),
        respond_with=body.respond_with,
        respond=body.respond,
    )
    return send_accepted(result)


@router.get("/{chat_id}/events", response_class=StreamingResponse)
async def chat_events(
    chat_id: str,
    user: CurrentUser,
    container: ContainerDep,
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    last_event_id_query: Annotated[str | None, Query(alias="last_event_id", max_length=64)] = None,
) -> StreamingResponse:
    """Server-Sent Events: token, reply_state, queue, error, message; in a room also
    member, room, turn, auto, access_revoked, and typing and presence (live only, no
    id). Resume with Last-Event-ID."""
    items = await container.streams.open(
        user,
        chat_id,
        last_event_id or last_event_id_query,
        heartbeat_s=container.settings.sse_heartbeat_s,
        stop=container.stopping,
    )
    return event_stream_response(items)
