"""Who the client is behind a reverse proxy: the one place that decides it.

`X-Forwarded-For` and `X-Forwarded-Proto` are anyone's to send, so they count
only on connections from `PERSONAE_TRUSTED_PROXIES`; from anywhere else they are
ignored and the connection's own address is the client. Everything downstream
(rate limits, logs, session records, the cookies' `Secure` flag) reads the
rewritten `scope["client"]` and `scope["scheme"]`. uvicorn's own proxy header
handling stays off (`personae serve` starts it with `proxy_headers=False`), so
this is the only rule.
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_SECURE_SCHEMES = {"http": "https", "ws": "wss"}


def _header(scope: Scope, name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in scope["headers"] if key == name]
    return ",".join(values) if values else None


class ForwardedHeadersMiddleware:
    """Take the client address and scheme from the headers of trusted proxies."""

    def __init__(self, app: ASGIApp, *, trusted: tuple[Network, ...]) -> None:
        self.app = app
        self.trusted = trusted

    def _is_trusted(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self.trusted)

    def _client(self, peer: str, forwarded_for: str) -> str:
        """Walk the hops from the nearest back: the first that is not a trusted proxy
        is the client (what lies left of it could be made up by that client)."""
        client = peer
        for hop in reversed([hop.strip() for hop in forwarded_for.split(",")]):
            if not self._is_trusted(client):
                break
            try:
                client = str(ipaddress.ip_address(hop))
            except ValueError:
                break  # garbage from a trusted hop: the hop that passed it is the client
        return client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        if scope["type"] in ("http", "websocket") and peer and self._is_trusted(peer[0]):
            scope = dict(scope)
            forwarded_for = _header(scope, b"x-forwarded-for")
            if forwarded_for:
                scope["client"] = (self._client(peer[0], forwarded_for), 0)
            proto = _header(scope, b"x-forwarded-proto")
            # The nearest proxy's word counts: the last value, set by the one we trust.
            if proto and proto.split(",")[-1].strip().lower() == "https":
                scope["scheme"] = _SECURE_SCHEMES.get(scope["scheme"], scope["scheme"])
        await self.app(scope, receive, send)
