"""Who is connecting: the client address is derived here, once, from the direct peer and X-Forwarded-For, trusting
the header only as far as the deployment says (PLAYGROUND_PROXY_HOPS and PLAYGROUND_TRUSTED_PROXIES), never
loopback by default. Starting grants and admin-key throttling are keyed on `grant_key`: an IPv4 address, or the
/64 network of an IPv6 address (one subscriber usually holds a whole /64)."""
from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass, field

IPV6_PREFIX = 64


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    address = (address or "").strip()
    if address.startswith("[") and "]" in address:  # [v6]:port
        address = address[1 : address.index("]")]
    elif address.count(":") == 1:  # v4:port
        address = address.split(":")[0]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def grant_key(address: str) -> str:
    """What per-network limits count: the IPv4 address, or the IPv6 /64 (anything unparsable counts as itself)."""
    ip = _parse(address)
    if ip is None:
        return (address or "").strip()[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


@dataclass(frozen=True)
class ProxyTrust:
    """How far to believe X-Forwarded-For.

    hops: the number of reverse proxies in front of the app that each append the address they saw (Hugging Face
    Spaces: 1). trusted: addresses or networks of those proxies; when given, the peer must be one of them for the
    header to count at all, and trusted entries are skipped from the right.
    """

    hops: int = 0
    trusted: tuple[str, ...] = ()
    _networks: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        networks = []
        for item in self.trusted:
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"PLAYGROUND_TRUSTED_PROXIES: {item!r} is not an IP address or network") from exc
        object.__setattr__(self, "_networks", tuple(networks))

    def _is_trusted(self, address: str) -> bool:
        ip = _parse(address)
        return ip is not None and any(ip in net for net in self._networks)

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The client's address for this connection."""
        peer = (peer or "").strip()
        if self.hops <= 0 and not self._networks:
            return peer
        if self._networks and not self._is_trusted(peer):
            return peer  # the header came from someone who is not our proxy
        entries = [p.strip() for p in (forwarded_for or "").split(",") if p.strip()]
        if self._networks:
            while entries and self._is_trusted(entries[-1]):
                entries.pop()
            if self.hops > 0:
                return entries[-self.hops] if len(entries) >= self.hops else peer
            return entries[-1] if entries else peer
        return entries[-self.hops] if len(entries) >= self.hops else peer


@dataclass
class Throttle:
    """Slows repeated failures per key: the first `free` failures cost nothing (typos); after n > free failures the
    next attempt must wait base * 2**(n - free - 1) s (capped)."""

    free: int = 0
    base_s: float = 1.0
    cap_s: float = 300.0
    clock: object = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_s(self, key: str) -> float:
        with self._lock:
            count, last = self._failures.get(key, (0, 0.0))
        if count <= self.free:
            return 0.0
        delay = min(self.cap_s, self.base_s * 2 ** (count - self.free - 1))
        return max(0.0, last + delay - self.clock())

    def failed(self, key: str) -> None:
        with self._lock:
            count, _ = self._failures.get(key, (0, 0.0))
            self._failures[key] = (count + 1, self.clock())
            if len(self._failures) > 100_000:  # bounded memory: forget the oldest half
                for old in sorted(self._failures, key=lambda k: self._failures[k][1])[:50_000]:
                    del self._failures[old]

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)
