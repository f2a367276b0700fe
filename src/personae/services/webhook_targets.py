"""Where a webhook may post: http(s) addresses of the public internet.

A target is checked when it is registered and again at every try: the name is
resolved (on the event loop's resolver, off the loop's thread), every address it
resolves to must be allowed, and the try connects to an address so checked, with
the name kept in the Host header and TLS SNI, so that a second resolution cannot
swap a public address for an inner one (the way Synapse's IP blacklist and the
`advocate` library guard outgoing requests).
"""

from __future__ import annotations

import asyncio
import re
import socket
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx

from personae.errors import ValidationFailed

Address = IPv4Address | IPv6Address
Resolver = Callable[[str, int], Awaitable[list[Address]]]

_SCHEMES = ("http", "https")
# Instance metadata services hand out cloud credentials: never a webhook receiver,
# whatever PERSONAE_WEBHOOK_ALLOW_PRIVATE says.
_METADATA_ADDRESSES = frozenset(
    {
        IPv4Address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        IPv4Address("169.254.170.2"),  # AWS ECS task credentials
        IPv4Address("100.100.100.200"),  # Alibaba Cloud
        IPv6Address("fd00:ec2::254"),  # AWS over IPv6
    }
)
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})
_THIS_NETWORK = IPv4Network("0.0.0.0/8")
_SHARED = IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_NAT64 = IPv6Network("64:ff9b::/96")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")

_WORDS = {
    "metadata": "a cloud metadata service",
    "unspecified": "an unspecified address",
    "loopback": "a loopback address (this machine)",
    "link_local": "a link-local address",
    "multicast": "a multicast address",
    "carrier_grade_nat": "a carrier-grade NAT address",
    "reserved": "a reserved address",
    "private": "a private network address",
    "not_public": "not a public internet address",
}


class WebhookTargetRefused(ValidationFailed):
    """A webhook address that may not be posted to; `reason` in the body says why."""

    code = "webhook_target_refused"
    title = "This webhook address is not allowed"


@dataclass(frozen=True)
class Target:
    """A checked webhook URL: `url` as httpx will send it."""

    url: httpx.URL

    @property
    def host(self) -> str:
        return self.url.host

    @property
    def port(self) -> int:
        return self.url.port or (443 if self.url.scheme == "https" else 80)


def parse(url: str) -> Target:
    """The target `url` names, or WebhookTargetRefused when no try could ever be sent
    to it: a scheme other than http(s), credentials, control characters or no host."""
    if any(unicodedata.category(c)[0] in "CZ" or c == "\\" for c in url):
        _refuse("control_character", "The address contains control characters or spaces.")
    try:
        parsed = httpx.URL(url)
        authority = urlsplit(url).netloc
    except (httpx.InvalidURL, ValueError):
        _refuse("invalid", "The address cannot be read as a URL.")
    if parsed.scheme not in _SCHEMES:
        _refuse("scheme", "Webhooks are sent only to http:// or https:// addresses.")
    if parsed.userinfo or "@" in authority:
        _refuse(
            "credentials",
            "The address carries a user name or password; put a secret in the path instead.",
        )
    if not parsed.host:
        _refuse("invalid", "The address has no host.")
    return Target(parsed)


async def resolve(
    target: Target, *, resolver: Resolver, allow_private: bool, timeout_s: float
) -> list[Address]:
    """Every address `target` may be reached at, all allowed; else WebhookTargetRefused
    (a name that resolves to even one address inside is refused)."""
    name = target.host.lower().rstrip(".")
    if name in _METADATA_NAMES:
        _refuse("metadata", "The address is a cloud metadata service.")
    literal = _literal(name)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            async with asyncio.timeout(timeout_s):
                addresses = await resolver(name, target.port)
        except (OSError, UnicodeError, TimeoutError):
            addresses = []
        if not addresses:
            _refuse("unresolvable", "The address's name does not resolve.")
    for address in addresses:
        reason = refusal(address, allow_private=allow_private)
        if reason is not None:
            said = "is" if literal is not None else "resolves to"
            _refuse(reason, f"The address {said} {_WORDS[reason]}.")
    return addresses


def refusal(address: Address, *, allow_private: bool) -> str | None:
    """Why a webhook may not connect to `address` (a reason code), or None."""
    forms = list(_forms(address))
    if any(form in _METADATA_ADDRESSES for form in forms):
        return "metadata"
    if allow_private:
        return None
    for form in forms:
        reason = _kind(form)
        if reason is not None:
            return reason
    return None


def pinned(target: Target, address: Address) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
    """The URL, headers and request extensions of a try that connects to `address`
    while the receiver sees the name it was registered with (Host header, TLS SNI)."""
    host = str(address).split("%")[0]
    headers = {"Host": target.url.netloc.decode("ascii")}
    extensions: dict[str, Any] = {}
    if target.url.scheme == "https" and _literal(target.host) is None:
        extensions["sni_hostname"] = target.host
    return target.url.copy_with(host=host), headers, extensions


async def system_resolver(host: str, port: int) -> list[Address]:
    """The addresses of `host` from the event loop's getaddrinfo (run in a thread)."""
    found = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    families = (socket.AF_INET, socket.AF_INET6)
    return list(dict.fromkeys(ip_address(info[4][0]) for info in found if info[0] in families))


def redacted(url: str) -> str:
    """`url` as a log may show it: scheme, host and port only (never credentials,
    nor a path or query that may carry a secret), printable characters only."""
    try:
        parts = urlsplit(url)
        shown = f"{parts.scheme}://{parts.hostname or ''}"
        if parts.port is not None:
            shown += f":{parts.port}"
    except ValueError:
        shown = "(an unreadable address)"
    return "".join(c if c.isprintable() else "?" for c in shown)


def _refuse(reason: str, detail: str) -> NoReturn:
    raise WebhookTargetRefused(detail, extra={"reason": reason})


def _literal(host: str) -> Address | None:
    """The address a host written as a number means: IPv6, dotted IPv4, or the decimal,
    hex, octal and shortened IPv4 spellings that inet_aton (and so getaddrinfo) reads."""
    try:
        return ip_address(host)
    except ValueError:
        pass
    parts = host.split(".")
    if len(parts) > 4 or not all(_NUMBER.fullmatch(part) for part in parts):
        return None
    values = [_number(part) for part in parts]
    *head, last = values
    if any(value > 255 for value in head) or last >= 256 ** (4 - len(head)):
        return None
    number = sum(value << (8 * (3 - place)) for place, value in enumerate(head)) + last
    return IPv4Address(number)


def _number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if part.startswith("0"):
        return int(part, 8)
    return int(part)


def _forms(address: Address) -> Iterator[Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, compatible, 6to4, Teredo,
    NAT64), then the address itself: a packet to either can end at the IPv4 one."""
    if isinstance(address, IPv6Address):
        number = int(address)
        if address in _NAT64:  # a translator's prefix: only the IPv4 address counts
            yield IPv4Address(number & 0xFFFFFFFF)
            return
        if address.ipv4_mapped is not None:
            yield address.ipv4_mapped
        if number >> 32 == 0 and number > 1:
            yield IPv4Address(number)
        if address.sixtofour is not None:
            yield address.sixtofour
        if address.teredo is not None:
            yield address.teredo[1]
    yield address


def _kind(address: Address) -> str | None:
    if address.is_unspecified or (isinstance(address, IPv4Address) and address in _THIS_NETWORK):
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link_local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, IPv4Address) and address in _SHARED:
        return "carrier_grade_nat"
    if address.is_reserved:
        return "reserved"
    if address.is_private or (isinstance(address, IPv6Address) and address.is_site_local):
        return "private"
    if not address.is_global:
        return "not_public"
    return None
