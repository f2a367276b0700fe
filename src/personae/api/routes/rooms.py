"""Group rooms: the room, its characters, invite links, members, who speaks, typing.
The room's messages and stream are a chat's (routes/chats.py). See docs/rooms.md."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, status

from personae.api.deps import ContainerDep, CurrentUser
from personae.api.schemas.rooms import (
    AutoPublic,
    AutoRequest,
    InviteCreate,
    InviteCreated,
    InvitePublic,
    MemberUpdate,
    MyMembershipUpdate,
    RoomCharacterAdd,
    RoomCharacterPublic,
    RoomCharacterUpdate,
    RoomCreate,
    RoomMemberPublic,
    RoomPublic,
    RoomUpdate,
    TurnPublic,
    TurnRequest,
)
from personae.services.rooms import RoomView, character_data, member_data
from personae.storage.repos.accounts import UserRecord

router = APIRouter(prefix="/api/v1", tags=["rooms"])

Token = Annotated[str, Path(min_length=8, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


def room_public(view: RoomView, user: UserRecord) -> RoomPublic:
    chat = view.chat
    return RoomPublic(
        id=chat.id,
        title=chat.title,
        owner_id=chat.owner_id,
        turn_mode=chat.turn_mode,
        auto_turns_left=chat.auto_turns_left,
        my_role=view.my_role,
        members=[RoomMemberPublic.model_validate(member_data(m, view.here)) for m in view.members],
        characters=[RoomCharacterPublic.model_validate(character_data(c, user)) for c in view.cast],
        created_at=chat.created_at,
        updated_at=chat.updated_at,
    )


@router.post("/rooms", status_code=status.HTTP_201_CREATED)
async def create_room(body: RoomCreate, user: CurrentUser, container: ContainerDep) -> RoomPublic:
    view = await container.rooms.create(user, body.title, body.character_ids, body.turn_mode)
    return room_public(view, user)


@router.get("/rooms/{room_id}")
async def get_room(room_id: str, user: CurrentUser, container: ContainerDep) -> RoomPublic:
    return room_public(await container.rooms.view(user, room_id), user)


@router.patch("/rooms/{room_id}")
async def update_room(
    room_id: str, body: RoomUpdate, user: CurrentUser, container: ContainerDep
) -> RoomPublic:
    view = await container.rooms.update(user, room_id, title=body.title, turn_mode=body.turn_mode)
    return room_public(view, user)


@router.post("/rooms/{room_id}/characters")
async def add_room_character(
    room_id: str, body: RoomCharacterAdd, user: CurrentUser, container: ContainerDep
) -> RoomPublic:
    return room_public(await container.rooms.add_character(user, room_id, body.character_id), user)


@router.patch("/rooms/{room_id}/characters/{character_id}")
async def update_room_character(
    room_id: str,
    character_id: str,
    body: RoomCharacterUpdate,
    user: CurrentUser,
    container: ContainerDep,
) -> RoomPublic:
    view = await container.rooms.update_character(
        user, room_id, character_id, talkativeness=body.talkativeness, position=body.position
    )
    return room_public(view, user)


@router.delete("/rooms/{room_id}/characters/{character_id}")
async def remove_room_character(
    room_id: str, character_id: str, user: CurrentUser, container: ContainerDep
) -> RoomPublic:
    return room_public(await container.rooms.remove_character(user, room_id, character_id), user)


@router.post("/rooms/{room_id}/invites", status_code=status.HTTP_201_CREATED)
async def create_invite(
    room_id: str, body: InviteCreate, user: CurrentUser, container: ContainerDep
) -> InviteCreated:
    invite, token = await container.invites.create_invite(
        user, room_id, role=body.role, expires_in_s=body.expires_in_s, max_uses=body.max_uses
    )
    return InviteCreated(
        id=invite.id,
        token=token,
        url=f"/join/{token}",
        role=invite.role,
        expires_at=invite.expires_at,
        max_uses=invite.max_uses,
    )


@router.get("/rooms/{room_id}/invites")
async def list_invites(
    room_id: str, user: CurrentUser, container: ContainerDep
) -> list[InvitePublic]:
    return [
        InvitePublic.model_validate(i) for i in await container.invites.list_invites(user, room_id)
    ]


@router.delete("/rooms/{room_id}/invites/{invite_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_invite(
    room_id: str, invite_id: str, user: CurrentUser, container: ContainerDep
) -> None:
    await container.invites.revoke_invite(user, room_id, invite_id)


@router.post("/invites/{token}/accept")
async def accept_invite(token: Token, user: CurrentUser, container: ContainerDep) -> RoomPublic:
    return room_public(await container.invites.accept(user, token), user)


# Before /members/{member_id}: "me" is not a member id.
@router.patch("/rooms/{room_id}/members/me")
async def update_my_membership(
    room_id: str, body: MyMembershipUpdate, user: CurrentUser, container: ContainerDep
) -> RoomPublic:
    view = await container.rooms.update_me(
        user,
        room_id,
        persona_id=body.persona_id,
        persona_name=body.persona_name,
        persona_description=body.persona_description,
        default_persona="persona_id" in body.model_fields_set and body.persona_id is None,
    )
    return room_public(view, user)


@router.patch("/rooms/{room_id}/members/{member_id}")
async def update_member(
    room_id: str, member_id: str, body: MemberUpdate, user: CurrentUser, container: ContainerDep
) -> RoomPublic:
    view = await container.rooms.update_member(
        user,
        room_id,
        member_id,
        role=body.role,
        muted_until=body.muted_until,
        set_mute="muted_until" in body.model_fields_set,
    )
    return room_public(view, user)


@router.delete("/rooms/{room_id}/members/{member_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(
    room_id: str, member_id: str, user: CurrentUser, container: ContainerDep
) -> None:
    await container.rooms.remove_member(user, room_id, member_id)


@router.post("/rooms/{room_id}/leave", status_code=status.HTTP_204_NO_CONTENT)
async def leave_room(room_id: str, user: CurrentUser, container: ContainerDep) -> None:
    await container.rooms.leave(user, room_id)


@router.post("/rooms/{room_id}/turns", status_code=status.HTTP_202_ACCEPTED)
async def speak_now(
    room_id: str, body: TurnRequest, user: CurrentUser, container: ContainerDep
) -> TurnPublic:
    return TurnPublic.model_validate(await container.rooms.speak(user, room_id, body.character_id))


@router.post("/rooms/{room_id}/auto", status_code=status.HTTP_202_ACCEPTED)
async def start_auto(
    room_id: str, body: AutoRequest, user: CurrentUser, container: ContainerDep
) -> AutoPublic:
    turns = await container.rooms.start_auto(user, room_id, body.turns)
    return AutoPublic(turns_left=turns, running=True)


@router.delete("/rooms/{room_id}/auto")
async def stop_auto(room_id: str, user: CurrentUser, container: ContainerDep) -> AutoPublic:
    await container.rooms.stop_auto(user, room_id)
    return AutoPublic(turns_left=0, running=False)


@router.post("/rooms/{room_id}/typing", status_code=status.HTTP_204_NO_CONTENT)
async def typing(room_id: str, user: CurrentUser, container: ContainerDep) -> None:
    await container.rooms.typing(user, room_id)
