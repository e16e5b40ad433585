"""The client's address, for per-address throttling and the ops endpoints' allow-list.

X-Forwarded-For is believed only when the connection comes from a proxy listed in
TRUSTED_PROXIES, and then only as far as the chain stays within trusted proxies: the
client is the right-most address not itself a trusted proxy (anything left of it could
have been written by the client)."""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(specs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(spec.strip(), strict=False) for spec in specs if spec)


def in_networks(address: str, specs: list[str] | tuple[str, ...]) -> bool:
    """True when `address` parses and lies in one of the CIDRs `specs`."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in _networks(tuple(specs)))


def client_ip(request: HttpRequest) -> str:
    """REMOTE_ADDR, or the last untrusted hop of X-Forwarded-For behind a trusted proxy."""
    peer = request.META.get("REMOTE_ADDR", "")
    trusted = settings.TRUSTED_PROXIES
    if not trusted or not in_networks(peer, trusted):
        return peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if not in_networks(hop, trusted):
            return hop
    return peer
