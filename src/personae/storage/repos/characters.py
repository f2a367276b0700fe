"""Characters and their tags."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from personae.storage.tables import character_tags, characters, chats, messages, users
from personae.storage.types import new_id, utcnow

# new: newest first; popular: most chats ever; trending: most messages sent in the
# recent window; rated: best rated, with few ratings pulled towards the middle.
CharacterSort = Literal["new", "popular", "trending", "rated"]
# The prior of the "rated" sort: a character with few ratings counts as if it also had
# this many ratings of this many stars (a Bayesian average), so one 4-star reply does
# not put it above one with hundreds of good ones.
_PRIOR_RATINGS = 5
_PRIOR_STARS = 2.5


@dataclass(frozen=True)
class CharacterRecord:
    id: str
    owner_id: str
    owner_username: str
    name: str
    tagline: str
    description: str
    personality: str
    scenario: str
    first_message: str
    alternate_greetings: list[str]
    example_dialogues: str
    system_prompt: str
    post_history_instructions: str
    creator_notes: str
    tags: list[str]
    avatar: str | None
    visibility: str
    extensions: dict[str, Any]
    nickname: str
    creator: str
    character_version: str
    group_only_greetings: list[str]
    creation_date: int | None  # unix seconds, as Character Card V3 writes it
    character_book: dict[str, Any] | None  # normalised (personae.cards.lorebook.Lorebook)
    card: dict[str, Any] | None  # the imported card's JSON object, verbatim
    chat_count: int
    created_at: datetime
    updated_at: datetime
    featured_at: datetime | None = None  # set by a moderator; null when not featured
    # Others see the definition (system prompt, description, lorebook, ...) in a
    # reply's prompt only when the creator turned this on.
    definition_visible: bool = False
    # The content rating: "general", "teen" or "mature".
    rating: str = "general"
    # When a moderator hid it; hidden characters exist only for their owner and staff.
    hidden_at: datetime | None = None
    # Its stored picture (images); null: `avatar` is an https URL, or there is none.
    avatar_image_id: str | None = None
    # The stars of its rated replies, summed and counted.
    rating_sum: int = 0
    rating_count: int = 0

    @property
    def rating_average(self) -> float | None:
        return round(self.rating_sum / self.rating_count, 2) if self.rating_count else None

    @property
    def featured(self) -> bool:
        return self.featured_at is not None

    @property
    def hidden(self) -> bool:
        return self.hidden_at is not None


# Fields a creator writes; everything else is kept by the server.
EDITABLE_FIELDS = frozenset(
    f.name
    for f in fields(CharacterRecord)
    if f.name
    not in {
        "id",
        "owner_id",
        "owner_username",
        "chat_count",
        "created_at",
        "updated_at",
        "featured_at",
        "hidden_at",
        "avatar_image_id",
        "rating_sum",
        "rating_count",
    }
)


def _record(row: RowMapping) -> CharacterRecord:
    values = {f.name: row[f.name] for f in fields(CharacterRecord)}
    values["group_only_greetings"] = values["group_only_greetings"] or []
    return CharacterRecord(**values)


def _columns() -> list[Any]:
    return [*characters.c, users.c.username.label("owner_username")]


def _base_query(*, include_deleted: bool = False) -> Any:
    query = select(*_columns()).select_from(
        characters.join(users, users.c.id == characters.c.owner_id)
    )
    return query if include_deleted else query.where(characters.c.deleted_at.is_(None))


async def _replace_tags(tx: AsyncSession, character_id: str, tags: list[str]) -> None:
    await tx.execute(delete(character_tags).where(character_tags.c.character_id == character_id))
    unique_tags = sorted({tag.lower() for tag in tags})
    if unique_tags:
        await tx.execute(
            insert(character_tags),
            [{"character_id": character_id, "tag": tag} for tag in unique_tags],
        )


async def insert_character(tx: AsyncSession, owner_id: str, values: dict[str, Any]) -> str:
    """Insert a character with the given editable fields; returns its id."""
    now = utcnow()
    character_id = new_id()
    row = {name: values[name] for name in EDITABLE_FIELDS if name in values}
    await tx.execute(
        insert(characters).values(
            id=character_id,
            owner_id=owner_id,
            chat_count=0,
            created_at=now,
            updated_at=now,
            **row,
        )
    )
    await _replace_tags(tx, character_id, row.get("tags", []))
    return character_id


async def get_character(
    tx: AsyncSession, character_id: str, *, include_deleted: bool = False
) -> CharacterRecord | None:
    """A character by id; deleted ones only when asked (their chats still need them)."""
    query = _base_query(include_deleted=include_deleted).where(characters.c.id == character_id)
    row = (await tx.execute(query)).mappings().first()
    return _record(row) if row else None


async def update_character(tx: AsyncSession, character_id: str, values: dict[str, Any]) -> None:
    """Change the given editable fields (tags are re-indexed when they change)."""
    row = {name: values[name] for name in EDITABLE_FIELDS if name in values}
    await tx.execute(
        update(characters).where(characters.c.id == character_id).values(updated_at=utcnow(), **row)
    )
    if "tags" in row:
        await _replace_tags(tx, character_id, row["tags"])


async def soft_delete_character(tx: AsyncSession, character_id: str) -> None:
    now = utcnow()
    await tx.execute(
        update(characters)
        .where(characters.c.id == character_id)
        .values(deleted_at=now, updated_at=now)
    )
    await tx.execute(delete(character_tags).where(character_tags.c.character_id == character_id))


async def set_featured(tx: AsyncSession, character_id: str, featured_at: datetime | None) -> None:
    """Feature a character from `featured_at`, or stop featuring it (None).

    `updated_at` is left alone: featuring is not an edit of the character.
    """
    await tx.execute(
        update(characters).where(characters.c.id == character_id).values(featured_at=featured_at)
    )


async def set_hidden(tx: AsyncSession, character_id: str, hidden_at: datetime | None) -> None:
    """Hide a character from everybody but its owner (and staff), or show it again.
    A hidden character leaves the featured row too."""
    values: dict[str, Any] = {"hidden_at": hidden_at}
    if hidden_at is not None:
        values["featured_at"] = None
    await tx.execute(update(characters).where(characters.c.id == character_id).values(**values))


async def set_avatar_image(tx: AsyncSession, character_id: str, image_id: str | None) -> None:
    """Point the character at its stored picture (which replaces an https `avatar`)."""
    values: dict[str, Any] = {"avatar_image_id": image_id, "updated_at": utcnow()}
    if image_id is not None:
        values["avatar"] = None
    await tx.execute(update(characters).where(characters.c.id == character_id).values(**values))


async def change_rating(
    tx: AsyncSession, character_id: str, *, old: int | None, new: int | None
) -> None:
    """A reply's rating went from `old` to `new` stars (None: unrated)."""
    if old == new:
        return
    await tx.execute(
        update(characters)
        .where(characters.c.id == character_id)
        .values(
            rating_sum=characters.c.rating_sum + (new or 0) - (old or 0),
            # A plain integer: a Python bool would be bound as a boolean (PostgreSQL
            # has no integer + boolean).
            rating_count=characters.c.rating_count + (int(new is not None) - int(old is not None)),
        )
    )


async def add_chat_count(tx: AsyncSession, character_id: str, delta: int) -> None:
    await tx.execute(
        update(characters)
        .where(characters.c.id == character_id)
        .values(chat_count=characters.c.chat_count + delta)
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _recent_activity(since: datetime) -> Any:
    """Messages people sent to each character since `since`, one grouped scan of the
    window (ix_messages_created_at) instead of a count per character."""
    return (
        select(chats.c.character_id, func.count().label("activity"))
        .select_from(messages.join(chats, chats.c.id == messages.c.chat_id))
        .where(messages.c.created_at >= since, messages.c.role == "user")
        .group_by(chats.c.character_id)
        .subquery("recent_activity")
    )


def _sorted(statement: Any, sort: CharacterSort, since: datetime) -> Any:
    if sort == "popular":
        return statement.order_by(characters.c.chat_count.desc(), characters.c.id.desc())
    if sort == "trending":
        activity = _recent_activity(since)
        return statement.outerjoin(activity, activity.c.character_id == characters.c.id).order_by(
            func.coalesce(activity.c.activity, 0).desc(),
            characters.c.chat_count.desc(),
            characters.c.id.desc(),
        )
    if sort == "rated":
        score = (characters.c.rating_sum + _PRIOR_RATINGS * _PRIOR_STARS) / (
            characters.c.rating_count + float(_PRIOR_RATINGS)
        )
        return statement.order_by(
            score.desc(), characters.c.rating_count.desc(), characters.c.id.desc()
        )
    return statement.order_by(characters.c.id.desc())


async def search_characters(
    tx: AsyncSession,
    *,
    viewer_id: str | None,
    query: str | None,
    tag: str | None,
    sort: CharacterSort,
    owner_id: str | None,
    limit: int,
    offset: int,
    featured: bool | None = None,
    include_mature: bool = True,
    trending_since: datetime | None = None,
) -> list[CharacterRecord]:
    """Public characters (or one owner's, all of them when the viewer is that owner);
    `featured` keeps only featured ones (True) or only the others (False). Without
    `include_mature`, mature characters are left out except the viewer's own. The
    "trending" sort counts the messages people sent since `trending_since`."""
    statement = _base_query()
    if not include_mature:
        not_mature = characters.c.rating != "mature"
        statement = statement.where(
            or_(not_mature, characters.c.owner_id == viewer_id) if viewer_id else not_mature
        )
    if owner_id is not None and owner_id == viewer_id:
        statement = statement.where(characters.c.owner_id == owner_id)
    else:
        statement = statement.where(
            characters.c.visibility == "public", characters.c.hidden_at.is_(None)
        )
        if owner_id is not None:
            statement = statement.where(characters.c.owner_id == owner_id)
    if query:
        pattern = f"%{_escape_like(query.lower())}%"
        statement = statement.where(
            or_(
                *(
                    func.lower(column).like(pattern, escape="\\")
                    for column in (
                        characters.c.name,
                        characters.c.tagline,
                        characters.c.description,
                    )
                )
            )
        )
    if tag:
        statement = statement.where(
            characters.c.id.in_(
                select(character_tags.c.character_id).where(character_tags.c.tag == tag.lower())
            )
        )
    if featured is not None:
        column = characters.c.featured_at
        statement = statement.where(column.is_not(None) if featured else column.is_(None))
    statement = _sorted(statement, sort, trending_since or utcnow())
    statement = statement.limit(limit).offset(offset)
    return [_record(row) for row in (await tx.execute(statement)).mappings()]


async def list_owned(
    tx: AsyncSession, owner_id: str, *, after: str | None, limit: int
) -> list[CharacterRecord]:
    """One owner's characters (whatever their visibility) in id order, after the id `after`."""
    statement = _base_query().where(characters.c.owner_id == owner_id)
    if after is not None:
        statement = statement.where(characters.c.id > after)
    statement = statement.order_by(characters.c.id).limit(limit)
    return [_record(row) for row in (await tx.execute(statement)).mappings()]


async def count_owned(tx: AsyncSession, owner_id: str) -> int:
    query = select(func.count()).where(
        characters.c.owner_id == owner_id, characters.c.deleted_at.is_(None)
    )
    return int((await tx.execute(query)).scalar_one())


@dataclass(frozen=True)
class CreatorStats:
    character_id: str
    name: str
    visibility: str
    chat_count: int
    message_count: int
    rating_sum: int
    rating_count: int

    @property
    def rating_average(self) -> float | None:
        return round(self.rating_sum / self.rating_count, 2) if self.rating_count else None


async def creator_stats(tx: AsyncSession, owner_id: str) -> list[CreatorStats]:
    """Each of the owner's characters with its chats, messages and ratings, newest
    first, in one grouped query. Messages are read from each chat's next position
    (greetings and replies, swipes and deleted ones not told apart), so the cost grows
    with the number of chats, not of messages."""
    messages_sent = func.coalesce(func.sum(chats.c.next_position), 0)
    query = (
        select(
            characters.c.id,
            characters.c.name,
            characters.c.visibility,
            characters.c.chat_count,
            characters.c.rating_sum,
            characters.c.rating_count,
            messages_sent.label("message_count"),
        )
        .select_from(characters.outerjoin(chats, chats.c.character_id == characters.c.id))
        .where(characters.c.owner_id == owner_id, characters.c.deleted_at.is_(None))
        .group_by(
            characters.c.id,
            characters.c.name,
            characters.c.visibility,
            characters.c.chat_count,
            characters.c.rating_sum,
            characters.c.rating_count,
        )
        .order_by(characters.c.id.desc())
    )
    return [
        CreatorStats(
            character_id=row["id"],
            name=row["name"],
            visibility=row["visibility"],
            chat_count=row["chat_count"],
            message_count=int(row["message_count"]),
            rating_sum=row["rating_sum"],
            rating_count=row["rating_count"],
        )
        for row in (await tx.execute(query)).mappings()
    ]
