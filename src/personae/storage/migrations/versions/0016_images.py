"""images: avatars and card images stored as pictures with resized variants, and
characters.avatar_image_id; avatars stored as data: URLs are moved there

Revision ID: 0016
Revises: 0014
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_ID = sa.String(length=26)
_DATA_URL_PREFIX = "data:image/"
_BATCH = 200
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _new_id() -> str:
    # personae.storage.types.new_id, copied: a migration keeps working whatever the
    # code around it becomes.
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26)))


def upgrade() -> None:
    # Plain ALTER TABLE, not a batch: on SQLite a batch rebuilds the table and drops
    # the old one, which cascades to every row that refers to it.
    op.add_column("characters", sa.Column("avatar_image_id", _ID, nullable=True))
    op.create_table(
        "images",
        sa.Column("id", _ID, nullable=False),
        sa.Column("owner_id", _ID, nullable=False),
        sa.Column("character_id", _ID, nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("byte_count", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name=op.f("fk_images_owner_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["character_id"],
            ["characters.id"],
            name=op.f("fk_images_character_id_characters"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
    )
    op.create_index("ix_images_owner_id", "images", ["owner_id"])
    op.create_index("ix_images_character_id", "images", ["character_id"])
    op.create_table(
        "image_variants",
        sa.Column("image_id", _ID, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["image_id"],
            ["images.id"],
            name=op.f("fk_image_variants_image_id_images"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("image_id", "size", name=op.f("pk_image_variants")),
    )
    _move_data_url_avatars()


def _decoded(avatar: str) -> tuple[str, bytes] | None:
    """(media type, bytes) of a base64 data: URL; None for anything else."""
    head, separator, encoded = avatar.partition(",")
    if not separator or not head.endswith(";base64"):
        return None
    try:
        return head[len("data:") : -len(";base64")], base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None


def _move_data_url_avatars() -> None:
    """Avatars kept as data: URLs become stored pictures (their variants are made when
    first asked for: a migration does not decode pictures)."""
    connection = op.get_bind()
    characters = sa.table(
        "characters",
        sa.column("id", _ID),
        sa.column("owner_id", _ID),
        sa.column("avatar", sa.Text()),
        sa.column("avatar_image_id", _ID),
    )
    images = sa.table(
        "images",
        *(sa.column(name) for name in ("id", "owner_id", "character_id", "sha256")),
        *(sa.column(name) for name in ("media_type", "width", "height", "byte_count")),
        sa.column("data", sa.LargeBinary()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    after = ""
    while True:
        rows = connection.execute(
            sa.select(characters.c.id, characters.c.owner_id, characters.c.avatar)
            .where(characters.c.avatar.like(_DATA_URL_PREFIX + "%"), characters.c.id > after)
            .order_by(characters.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        for character_id, owner_id, avatar in rows:
            decoded = _decoded(avatar)
            image_id = None
            if decoded is not None:
                image_id = _new_id()
                media_type, data = decoded
                connection.execute(
                    sa.insert(images).values(
                        id=image_id, owner_id=owner_id, character_id=character_id,
                        sha256=hashlib.sha256(data).hexdigest(), media_type=media_type[:32],
                        width=0, height=0, byte_count=len(data), data=data,
                        created_at=datetime.now(UTC),
                    )
                )  # fmt: skip
            connection.execute(
                sa.update(characters)
                .where(characters.c.id == character_id)
                .values(avatar=None, avatar_image_id=image_id)
            )
        after = rows[-1][0]


def _restore_data_url_avatars() -> None:
    """Stored avatars go back into `avatar` as data: URLs (nothing shown is lost)."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT c.id, i.media_type, i.data FROM characters c "
            "JOIN images i ON i.id = c.avatar_image_id"
        )
    ).all()
    for character_id, media_type, data in rows:
        url = f"data:{media_type};base64,{base64.b64encode(bytes(data)).decode('ascii')}"
        connection.execute(
            sa.text("UPDATE characters SET avatar = :avatar WHERE id = :id"),
            {"avatar": url, "id": character_id},
        )


def downgrade() -> None:
    _restore_data_url_avatars()
    op.drop_table("image_variants")
    op.drop_index("ix_images_character_id", table_name="images")
    op.drop_index("ix_images_owner_id", table_name="images")
    op.drop_table("images")
    # Plain ALTER TABLE (SQLite 3.35 and later), not a batch: see upgrade().
    op.drop_column("characters", "avatar_image_id")
