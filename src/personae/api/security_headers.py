"""Security headers on every response: a Content-Security-Policy that allows no inline
script and no other origin, no MIME sniffing, no framing, a careful referrer, and HSTS
when the request came over https (as the trusted proxy says).

The status page's one inline style is allowed by its hash; Swagger UI (/docs) styles
its own elements inline, so its pages also allow inline styles (still no inline script).
"""

from __future__ import annotations

import base64
import hashlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from personae.api.status_render import STYLE


def _hash(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def _policy(style: str) -> bytes:
    return (
        "default-src 'self'; script-src 'self'; "
        f"style-src {style}; img-src 'self' data: blob: https:; "
        "connect-src 'self'; font-src 'self'; manifest-src 'self'; worker-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ).encode()


_POLICY = _policy(f"'self' {_hash(STYLE)}")
_DOCS_POLICY = _policy("'self' 'unsafe-inline'")
_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        docs = scope["path"] == "/docs" or scope["path"].startswith("/docs/")
        added = [
            (b"content-security-policy", _DOCS_POLICY if docs else _POLICY),
            *_HEADERS,
            *([_HSTS] if scope.get("scheme") == "https" else []),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in added if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
