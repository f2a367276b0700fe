"""Avatars: an uploaded picture (a base64 data: URL of a PNG, JPEG, GIF or WebP image,
which is what the web app's upload makes) or an https URL. Nothing else is taken,
and nothing else stored before this rule is shown.

A character's uploaded picture is stored as a picture (services/images.py) and
shown by its URL under /api/v1/images/; a persona's stays a data: URL."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlsplit

from personae import images
from personae.errors import InvalidAvatar

MAX_URL_CHARS = 2048
_DATA_URL = re.compile(r"data:(image/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/]*={0,2})")
# Control characters, spaces and backslashes: browsers strip or reinterpret them,
# which is how `java\tscript:` and ` javascript:` get past naive checks.
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f-\x9f\\\u2028\u2029]")


def _data_url_problem(value: str) -> str | None:
    match = _DATA_URL.fullmatch(value)
    if match is None:
        return "a data: URL must be a base64 PNG, JPEG, GIF or WebP image"
    encoded = match.group(2)
    if len(encoded) % 4:
        return "the picture's base64 is damaged"
    try:
        # The signature is in the first 12 bytes; the regex checked the rest.
        content = base64.b64decode(encoded[:16], validate=True)
    except (binascii.Error, ValueError):
        return "the picture's base64 is damaged"
    if images.media_type_of(content) != match.group(1):
        return f"the picture is not the {match.group(1)} image it says it is"
    return None


def _url_problem(value: str) -> str | None:
    if len(value) > MAX_URL_CHARS:
        return f"a URL may have at most {MAX_URL_CHARS} characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        return "the URL cannot be read"
    if parts.scheme != "https" or not value.startswith("https://"):
        return "only https URLs and uploaded pictures are allowed"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "the URL may not carry a user name or password"
    return None


def avatar_problem(value: str) -> str | None:
    """Why `value` cannot be an avatar, or None when it can."""
    if _UNSAFE_CHARS.search(value):
        return "it holds spaces or control characters"
    if value.startswith("data:"):
        return _data_url_problem(value)
    return _url_problem(value)


def check_avatar(value: str | None) -> None:
    """Refuse (422 `invalid_avatar`) what is neither an uploaded picture nor an https URL."""
    if value is None:
        return
    problem = avatar_problem(value)
    if problem is not None:
        raise InvalidAvatar(
            f"This avatar cannot be used: {problem}. Upload a picture, or give an https:// "
            "address of one."
        )


def shown_avatar(value: str | None) -> str | None:
    """The avatar as it may be shown: one stored before these rules that breaks them is
    shown as none."""
    if value is None or avatar_problem(value) is not None:
        return None
    return value


# --- stored pictures (services/images.py serves them) ---------------------------

IMAGE_PATH = "/api/v1/images/"
_OWN_URL = re.compile(r"/api/v1/images/([0-9A-Z]{26})(?:\?size=\d{1,4})?")


def image_url(image_id: str, size: int) -> str:
    """The URL a picture's variant is served at (relative to the server)."""
    return f"{IMAGE_PATH}{image_id}?size={size}"


def image_urls(image_id: str | None) -> dict[str, str] | None:
    """Every variant's URL by its size in pixels."""
    if image_id is None:
        return None
    return {str(size): image_url(image_id, size) for size in images.SIZES}


def shown(image_id: str | None, avatar: str | None) -> tuple[str | None, dict[str, str] | None]:
    """What a response shows of an avatar: (`avatar`, `avatar_urls`). A stored picture
    by its URLs (the largest as `avatar`); else the stored value if it is still safe."""
    if image_id is not None:
        return image_url(image_id, images.SIZES[-1]), image_urls(image_id)
    return shown_avatar(avatar), None


def own_image_id(value: str | None) -> str | None:
    """The picture id when `value` is one of our picture URLs (sent back unchanged)."""
    match = _OWN_URL.fullmatch(value) if value else None
    return match.group(1) if match else None


def data_url_bytes(value: str | None) -> bytes | None:
    """The bytes of an uploaded picture (a data: URL, already checked by
    `check_avatar`); None for anything else."""
    if value is None or not value.startswith("data:"):
        return None
    return base64.b64decode(value.partition(",")[2], validate=True)


def checked_own_image(value: str | None, current: str | None) -> bool:
    """Whether `value` is the character's current picture's URL sent back as it is
    (which changes nothing); another picture's URL is refused."""
    image_id = own_image_id(value)
    if image_id is None:
        return False
    if image_id != current:
        raise InvalidAvatar(
            "This avatar cannot be used: it is the address of another picture. Upload the "
            "picture itself, or give an https:// address of one."
        )
    return True
