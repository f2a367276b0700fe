"""The web app: static files from personae/web, and index.html for its deep links.

It is the router's fallback, for GET and HEAD only and never the server's own
addresses, so it cannot shadow the API, the status page or the health checks,
and other methods on unknown paths still get 404 (not 405).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
# Addresses that belong to the server; the web app never answers for them.
_RESERVED = ("api", "status", "healthz", "readyz", "metrics", "docs", "redoc", "openapi.json")
# The shell and the service worker must be fresh: the service worker keeps offline copies.
_NO_CACHE = {"Cache-Control": "no-cache"}


def _reserved(path: str) -> bool:
    first = path.lstrip("/").split("/", 1)[0]
    return first in _RESERVED


def _file_for(path: str, web_dir: Path) -> Path | None:
    """The file under web_dir this path names, if any (never outside web_dir)."""
    relative = path.lstrip("/")
    if not relative:
        return None
    candidate = (web_dir / relative).resolve()
    if not candidate.is_relative_to(web_dir.resolve()) or not candidate.is_file():
        return None
    return candidate


class WebAppFallback:
    """The router's default: answers what no route claimed, else the usual 404.

    Being the fallback rather than a route keeps it behind every route, including
    routes added after create_app().
    """

    def __init__(self, not_found: ASGIApp, web_dir: Path = WEB_DIR) -> None:
        self.not_found = not_found
        self.web_dir = web_dir

    def _serves(self, scope: Scope) -> bool:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return False
        path: str = scope["path"]
        if _reserved(path):
            return False
        # An unknown address that looks like a file is a 404, not the app.
        last = path.rsplit("/", 1)[-1]
        return "." not in last or _file_for(path, self.web_dir) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._serves(scope):
            await self.not_found(scope, receive, send)
            return
        response = self._response(Request(scope, receive).url.path)
        await response(scope, receive, send)

    def _response(self, path: str) -> Response:
        found = _file_for(path, self.web_dir)
        if found is None:
            return FileResponse(self.web_dir / "index.html", headers=_NO_CACHE)
        headers = dict(_NO_CACHE)
        if found.name == "sw.js":
            headers["Service-Worker-Allowed"] = "/"
        media_type = "application/manifest+json" if found.suffix == ".webmanifest" else None
        return FileResponse(found, headers=headers, media_type=media_type)
