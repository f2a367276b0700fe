"""Avatars: an uploaded picture (a base64 data: URL of a PNG, JPEG, GIF or WebP image,
which is what the web app's upload makes) or an https URL. Nothing else is stored,
and nothing else stored before this rule is shown."""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlsplit

from personae.cards import png
from personae.errors import InvalidAvatar

MAX_URL_CHARS = 2048
_DATA_URL = re.compile(r"data:(image/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/]*={0,2})")
# Control characters, spaces and backslashes: browsers strip or reinterpret them,
# which is how `java\tscript:` and ` javascript:` get past naive checks.
_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f-\x9f\\\u2028\u2029]")


def _image_type(content: bytes) -> str | None:
    """The image type the bytes' signature says, among those an avatar may be."""
    if content.startswith(png.SIGNATURE):
        return "image/png"
    if content.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if content.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp"
    return None


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
    if _image_type(content) != match.group(1):
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
