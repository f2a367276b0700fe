"""{{char}} / {{user}} macros (and the older <BOT> / <USER>), case-insensitive."""

from __future__ import annotations

import re

_CHAR = re.compile(r"\{\{char\}\}|<bot>", re.IGNORECASE)
_USER = re.compile(r"\{\{user\}\}|<user>", re.IGNORECASE)


def substitute(text: str, *, char: str, user: str) -> str:
    """Replace the character and user macros; other text is left as written."""
    text = _CHAR.sub(lambda _match: char, text)
    return _USER.sub(lambda _match: user, text)
