"""Which IP addresses the proxy may connect to when it fetches a URL a client named (SSRF guard).

Only globally routable unicast addresses pass. Several IPv6 forms carry an IPv4 address inside
them and reach it when routed: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, 6to4
`2002:AABB:CCDD::/48` (the IPv4 in bits 16-48), NAT64's well-known prefix `64:ff9b::/96` (the
IPv4 in the last 32 bits) and Teredo `2001::/32` (the server's IPv4, and the client's, stored
inverted). Each of those is judged by what it embeds: `2002:7f00:1::` is 127.0.0.1 and refused,
`64:ff9b::808:808` is 8.8.8.8 and allowed. The NAT64 local-use prefix `64:ff9b:1::/48` is
refused outright: where the IPv4 sits in it depends on the operator's prefix length, and it is a
site's own translator by definition.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address

NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(addr: IPv6Address) -> list[IPv4Address] | None:
    """The IPv4 addresses an IPv6 address carries (Teredo: server and client), or None."""
    if addr.ipv4_mapped is not None:
        return [addr.ipv4_mapped]
    if addr.sixtofour is not None:
        return [addr.sixtofour]
    if addr.teredo is not None:
        return list(addr.teredo)  # (server, client); the client's bits are already un-inverted
    if addr in NAT64_WELL_KNOWN or addr in IPV4_COMPATIBLE:
        return [IPv4Address(int(addr) & 0xFFFF_FFFF)]
    return None


def _is_global_unicast(addr: IPv4Address | IPv6Address) -> bool:
    return addr.is_global and not (addr.is_multicast or addr.is_reserved or addr.is_link_local
                                   or addr.is_loopback or addr.is_private or addr.is_unspecified)


def is_public_address(ip: str) -> bool:
    """True only for globally routable unicast addresses; IPv6 forms that embed an IPv4 address
    are judged as that address (all of them, for Teredo's two)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, IPv6Address):
        if addr in NAT64_LOCAL_USE:
            return False
        embedded = embedded_ipv4(addr)
        if embedded is not None:
            return all(_is_global_unicast(v4) for v4 in embedded)
    return _is_global_unicast(addr)
