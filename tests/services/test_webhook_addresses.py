"""Which addresses a webhook may reach, in every spelling of them."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_address

import httpx
import pytest

from personae.services import webhook_targets as targets
from personae.services.webhook_targets import WebhookTargetRefused


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),  # 6to4
        ("64:ff9b::7f00:1", "loopback"),  # NAT64
        ("169.254.169.254", "metadata"),
        ("::ffff:169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("100.64.0.1", "carrier_grade_nat"),
        ("169.254.0.1", "link_local"),
        ("fe80::1", "link_local"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("64:ff9b::808:808", None),
    ],
)
def test_addresses_refused_and_why(address: str, reason: str | None) -> None:
    assert targets.refusal(ip_address(address), allow_private=False) == reason


def test_allowing_private_addresses_keeps_metadata_services_refused() -> None:
    assert targets.refusal(ip_address("127.0.0.1"), allow_private=True) is None
    assert targets.refusal(ip_address("10.0.0.1"), allow_private=True) is None
    metadata = ip_address("::ffff:169.254.169.254")
    assert targets.refusal(metadata, allow_private=True) == "metadata"


async def _no_lookup(host: str, port: int) -> list[IPv4Address | IPv6Address]:
    raise AssertionError(f"{host} is an address, not a name to look up")


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "0x7F.0.0.1", "0177.0.01", "017700000001", "127.1", "127.0.1"],
)
async def test_every_ipv4_spelling_is_read_as_the_address_it_means(host: str) -> None:
    target = targets.parse(f"http://{host}:5432/")
    with pytest.raises(WebhookTargetRefused) as refused:
        await targets.resolve(target, resolver=_no_lookup, allow_private=False, timeout_s=1)
    assert refused.value.extra == {"reason": "loopback"}


async def test_a_name_is_refused_when_any_of_its_addresses_is() -> None:
    async def mixed(host: str, port: int) -> list[IPv4Address | IPv6Address]:
        return [ip_address("93.184.215.14"), ip_address("10.0.0.1")]

    target = targets.parse("https://hooks.example.org/")
    with pytest.raises(WebhookTargetRefused) as refused:
        await targets.resolve(target, resolver=mixed, allow_private=False, timeout_s=1)
    assert refused.value.extra == {"reason": "private"}


def test_a_try_connects_to_the_address_and_names_the_host() -> None:
    target = targets.parse("https://hooks.example.org/hook")
    url, headers, extensions = targets.pinned(target, IPv6Address("2606:4700::1"))
    assert url == httpx.URL("https://[2606:4700::1]/hook")
    assert headers == {"Host": "hooks.example.org"}
    assert extensions == {"sni_hostname": "hooks.example.org"}


def test_logs_see_only_scheme_host_and_port() -> None:
    shown = targets.redacted("https://user:pw@hooks.example.org:8443/t/secret?key=x")
    assert shown == "https://hooks.example.org:8443"
    assert targets.redacted("http://hooks.example.org/\x1b[2J") == "http://hooks.example.org"
