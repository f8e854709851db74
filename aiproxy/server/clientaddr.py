"""Who the client is: the socket peer, or X-Forwarded-For when the peer is a trusted proxy.

X-Forwarded-For is whatever the sender wrote, so it is believed only from addresses listed in
TRUSTED_PROXIES (addresses or CIDRs, e.g. the nginx in front). The chain is read from the right:
the first address that is not itself a trusted proxy is the client; a proxy appends the address
it saw, so everything left of that is the client's own claim and is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """"10.0.0.0/8, 127.0.0.1" → networks; raises ValueError naming the bad entry."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an address or CIDR: {item!r}") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip("[]")
    if "%" in text:  # IPv6 zone id
        text = text.split("%", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped  # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d
    return addr


def is_trusted(peer: str, trusted: Iterable[Network]) -> bool:
    addr = _address(peer)
    return addr is not None and any(addr.version == net.version and addr in net for net in trusted)


def forwarded_client(peer: str, forwarded_for: Iterable[str], trusted: tuple[Network, ...]) -> str:
    """The client address: from X-Forwarded-For (all header lines) only when `peer` is trusted."""
    if not trusted or not is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for line in forwarded_for for hop in line.split(",") if hop.strip()]
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:
            return peer  # garbage in the chain: fall back to what the socket says
        if not is_trusted(str(addr), trusted):
            return str(addr)
    return str(_address(hops[0])) if hops else peer
