"""Dependencies shared by routes: the container, the caller, CSRF."""

from __future__ import annotations

import hmac
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response, WebSocket
from starlette.requests import HTTPConnection

from personae.container import Container
from personae.errors import AccountSuspended, CsrfFailed, NotAuthenticated, SessionExpired
from personae.services.accounts import Principal
from personae.storage.repos.accounts import UserRecord

SESSION_COOKIE = "personae_session"
CSRF_COOKIE = "personae_csrf"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def client_ip(request: Request) -> str | None:
    """The client's address: behind a trusted proxy, the one it forwarded (api/forwarded.py)."""
    return request.client.host if request.client else None


def set_session_cookies(
    request: Request, response: Response, container: Container, token: str, csrf_token: str
) -> None:
    """The session cookie is HttpOnly; the CSRF one is readable by the page on purpose.
    Both are `Secure` when so configured or when the client came over HTTPS."""
    settings = container.settings
    secure = settings.cookie_secure or request.url.scheme == "https"
    for name, value, http_only in ((SESSION_COOKIE, token, True), (CSRF_COOKIE, csrf_token, False)):
        response.set_cookie(
            name,
            value,
            max_age=settings.session_ttl_s,
            secure=secure,
            httponly=http_only,
            samesite="lax",
            path="/",
        )


def clear_session_cookies(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


def _bearer_token(request: HTTPConnection) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def _principal_or_none(
    request: Request, response: Response, container: ContainerDep
) -> Principal | None:
    bearer = _bearer_token(request)
    if bearer is not None:
        return await container.accounts.authenticate_token(bearer)
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    principal = await container.accounts.authenticate_session(cookie)
    assert principal.session is not None
    if request.method not in _SAFE_METHODS:
        sent = request.headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), principal.session.csrf_token.encode()):
            raise CsrfFailed(
                "Cookie-authenticated writes need the X-CSRF-Token header "
                "(the value of the personae_csrf cookie)."
            )
    if principal.session_renewed:
        set_session_cookies(request, response, container, cookie, principal.session.csrf_token)
    return principal


async def _require_principal(
    principal: Annotated[Principal | None, Depends(_principal_or_none)],
) -> Principal:
    if principal is None:
        raise NotAuthenticated("Log in, or send an API token as 'Authorization: Bearer ...'.")
    return principal


async def _require_user(principal: Annotated[Principal, Depends(_require_principal)]) -> UserRecord:
    return principal.user


async def _optional_user(
    request: Request, response: Response, container: ContainerDep
) -> UserRecord | None:
    """The caller if known; a stale session cookie on a public page is just a visitor."""
    try:
        principal = await _principal_or_none(request, response, container)
    except AccountSuspended:
        return None  # a suspended account browses public pages as a visitor
    except (NotAuthenticated, SessionExpired):
        if _bearer_token(request) is not None:
            raise
        clear_session_cookies(response)
        return None
    return principal.user if principal else None


CurrentPrincipal = Annotated[Principal, Depends(_require_principal)]
CurrentUser = Annotated[UserRecord, Depends(_require_user)]
OptionalUser = Annotated[UserRecord | None, Depends(_optional_user)]


async def websocket_user(websocket: WebSocket, container: Container) -> UserRecord:
    """The caller of a WebSocket: an API token, or the session cookie of a page of this
    site. Browsers send cookies with a WebSocket from any page and CSRF headers cannot
    be set on one, so a cookie counts only when the Origin header names this host (as
    the CSRF token does for writes)."""
    bearer = _bearer_token(websocket)
    if bearer is not None:
        return (await container.accounts.authenticate_token(bearer)).user
    cookie = websocket.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise NotAuthenticated("Log in, or send an API token as 'Authorization: Bearer ...'.")
    origin = urlsplit(websocket.headers.get("origin", "")).netloc.lower()
    if not origin or origin != websocket.headers.get("host", "").lower():
        raise CsrfFailed("A call with the session cookie must come from a page of this site.")
    return (await container.accounts.authenticate_session(cookie)).user
