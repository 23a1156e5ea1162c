"""Client addresses and CIDR lists for the IP allowlist (C28)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ValidationError
from ipware import get_client_ip

MAX_ALLOWLIST_ENTRIES = 100


def client_ip(request) -> str | None:
    """The client's address behind the configured proxies (AXES_PROXY_COUNT).

    The same reading as the audit trail and login lockout use, so the address a rule
    refuses is the address the audit event shows.
    """
    ip, _routable = get_client_ip(
        request,
        proxy_count=settings.AXES_IPWARE_PROXY_COUNT,
        request_header_order=settings.AXES_IPWARE_META_PRECEDENCE_ORDER,
    )
    return ip


def parse_allowlist(text: str) -> list[str]:
    """CIDR ranges (or single addresses), one per line or separated by commas; normalised.

    Raises ValidationError naming every bad entry. Host bits set ("10.0.0.1/8") is an
    error rather than silently widened: the admin probably meant something else.
    """
    entries = [part.strip() for line in text.splitlines() for part in line.split(",")]
    entries = [e for e in entries if e and not e.startswith("#")]
    errors, networks = [], []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=True)
        except ValueError:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                errors.append(f"“{entry[:60]}” is not an IPv4 or IPv6 address or CIDR range (e.g. 203.0.113.0/24).")
            else:
                errors.append(
                    f"“{entry[:60]}” has host bits set: write the network address, "
                    f"e.g. {ipaddress.ip_network(entry, strict=False)}."
                )
            continue
        if network.prefixlen == 0:
            errors.append(f"“{entry}” allows every address; leave the list empty instead.")
            continue
        if str(network) not in networks:
            networks.append(str(network))
    if len(networks) > MAX_ALLOWLIST_ENTRIES:
        errors.append(f"At most {MAX_ALLOWLIST_ENTRIES} ranges.")
    if errors:
        raise ValidationError(errors)
    return networks


def ip_allowed(ip: str | None, allowlist: list[str]) -> bool:
    """True when the list is empty or the address lies in one of its ranges."""
    if not allowlist:
        return True
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:203.0.113.5 is the IPv4 client
    return any(address.version == n.version and address in n for n in _networks(tuple(allowlist)))


@lru_cache(maxsize=512)
def _networks(allowlist: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    # Parsing 100 ranges costs about as much as the rest of the check; lists rarely change.
    return tuple(ipaddress.ip_network(cidr) for cidr in allowlist)
