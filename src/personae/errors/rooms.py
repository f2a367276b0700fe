"""Errors of group rooms (docs/rooms.md)."""

from __future__ import annotations

from personae.errors.base import AppError, Conflict, Forbidden


class NotARoom(Conflict):
    """A room's action on a one-on-one chat."""

    code = "not_a_room"
    title = "This chat is not a room"


class RoomRoleForbidden(Forbidden):
    """A viewer sends, or a member does what only the room's owner may."""

    code = "room_role_forbidden"
    title = "Your role in this room does not allow this"


class MemberMuted(Forbidden):
    code = "member_muted"
    title = "You are muted in this room for now"


class RemovedFromRoom(Forbidden):
    """Someone the room's owner removed follows an invite link again."""

    code = "removed_from_room"
    title = "The room's owner removed you from this room"


class InviteGone(AppError):
    status = 410


class InviteExpired(InviteGone):
    code = "invite_expired"
    title = "This invite link has expired"


class InviteRevoked(InviteGone):
    code = "invite_revoked"
    title = "This invite link was revoked"


class InviteUsedUp(InviteGone):
    code = "invite_used_up"
    title = "This invite link has been used as often as it may"


class RoomFull(Conflict):
    code = "room_full"
    title = "This room is full"


class RoomNeedsACharacter(Conflict):
    code = "room_needs_a_character"
    title = "A room keeps at least one character"


class CharacterNotInRoom(AppError):
    """A character named for a turn, or changed, is not one of the room's."""

    code = "character_not_in_room"
    status = 422
    title = "This character is not in the room"


class RespondWithRequired(AppError):
    """Manual turn order: a message that asks for a reply names who answers."""

    code = "respond_with_required"
    status = 422
    title = "Say which character answers (manual turn order)"
