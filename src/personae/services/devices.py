"""Readable device names for the sessions list ("Chrome on Android") from a User-Agent.

Plain substring tests on a bounded, lower-cased copy: no regular expression, so no
input can make it slow (a User-Agent is whatever the client sent).
"""

from __future__ import annotations

# Stored user agents are cut to 256 characters; anything longer is cut here too.
_MAX_CHARS = 256

# (what the User-Agent contains, the name), first match wins: the order matters,
# since Edge and Opera also say "chrome/", Chrome also says "safari/", and so on.
_CLIENTS: tuple[tuple[str, str], ...] = (
    ("personae-client", "personae terminal client"),
    ("edg/", "Edge"),
    ("edga/", "Edge"),
    ("edgios/", "Edge"),
    ("opr/", "Opera"),
    ("opera", "Opera"),
    ("samsungbrowser/", "Samsung Internet"),
    ("firefox/", "Firefox"),
    ("fxios/", "Firefox"),
    ("crios/", "Chrome"),
    ("chrome/", "Chrome"),
    ("chromium/", "Chromium"),
    ("safari/", "Safari"),
    ("curl/", "curl"),
    ("python-httpx/", "A Python script (httpx)"),
    ("python-requests/", "A Python script (requests)"),
)
_SYSTEMS: tuple[tuple[str, str], ...] = (
    ("android", "Android"),
    ("iphone", "iPhone"),
    ("ipad", "iPad"),
    ("windows", "Windows"),
    ("cros", "ChromeOS"),
    ("macintosh", "macOS"),
    ("mac os x", "macOS"),
    ("linux", "Linux"),
)
# Programs that name no system worth showing.
_NO_SYSTEM = frozenset(
    {"personae terminal client", "curl", "A Python script (httpx)", "A Python script (requests)"}
)


def _first(text: str, table: tuple[tuple[str, str], ...]) -> str | None:
    return next((name for needle, name in table if needle in text), None)


def device_name(user_agent: str | None) -> str:
    """ "Chrome on Android", "Firefox on Linux", "personae terminal client", or
    "Unknown device" when nothing is recognised."""
    text = (user_agent or "")[:_MAX_CHARS].lower()
    client = _first(text, _CLIENTS)
    system = _first(text, _SYSTEMS)
    if client and system and client not in _NO_SYSTEM:
        return f"{client} on {system}"
    if client:
        return client
    if system:
        return f"A browser on {system}"
    return "Unknown device"
