"""The SSRF address check, one row per address form: IPv6 forms that embed IPv4 are judged as it."""

from __future__ import annotations

import pytest

from aiproxy.media.public_address import is_public_address

# Teredo stores the client's IPv4 inverted: 8.8.8.8 -> f7f7:f7f7, 10.0.0.1 -> f5ff:fffe,
# 127.0.0.1 -> 80ff:fffe. The server's IPv4 (65.54.227.120 = 4136:e378) is stored as is.
ROWS = [
    # (address, public?, what it is)
    ("8.8.8.8", True, "public IPv4"),
    ("2606:4700:4700::1111", True, "public IPv6"),
    ("127.0.0.1", False, "loopback"),
    ("10.1.2.3", False, "private"),
    ("169.254.169.254", False, "link-local (cloud metadata)"),
    ("100.64.0.1", False, "shared address space (CGNAT)"),
    ("::1", False, "IPv6 loopback"),
    ("fe80::1%eth0", False, "IPv6 link-local with a zone"),
    ("fd00::1", False, "IPv6 unique local"),
    ("::ffff:127.0.0.1", False, "IPv4-mapped loopback"),
    ("::ffff:8.8.8.8", True, "IPv4-mapped public"),
    ("::10.0.0.1", False, "IPv4-compatible private"),
    ("::8.8.8.8", True, "IPv4-compatible public"),
    ("::", False, "unspecified"),
    ("2002:7f00:1::", False, "6to4 of 127.0.0.1"),
    ("2002:a00:1::1", False, "6to4 of 10.0.0.1"),
    ("2002:a9fe:a9fe::", False, "6to4 of 169.254.169.254"),
    ("2002:c0a8:101:1234::1", False, "6to4 of 192.168.1.1, with subnet and host bits"),
    ("2002:808:808::1", True, "6to4 of 8.8.8.8"),
    ("64:ff9b::7f00:1", False, "NAT64 well-known prefix, 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", False, "NAT64 well-known prefix, 169.254.169.254"),
    ("64:ff9b::10.0.0.1", False, "NAT64 well-known prefix, 10.0.0.1 (dotted form)"),
    ("64:ff9b::808:808", True, "NAT64 well-known prefix, 8.8.8.8"),
    ("64:ff9b:1::808:808", False, "NAT64 local-use prefix: never"),
    ("64:ff9b:1:abcd::a00:1", False, "NAT64 local-use prefix with a /64 inside"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False, "Teredo, client 10.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", False, "Teredo, client 127.0.0.1"),
    ("2001:0:a00:1:8000:63bf:f7f7:f7f7", False, "Teredo, server 10.0.0.1"),
    ("2001:0:4136:e378:8000:63bf:f7f7:f7f7", True, "Teredo, both public"),
]


@pytest.mark.parametrize("address, public, _what", ROWS, ids=[row[2] for row in ROWS])
def test_address_is_judged_by_the_ipv4_it_embeds(address: str, public: bool, _what: str) -> None:
    assert is_public_address(address) is public
