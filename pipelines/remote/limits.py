"""The HTTP side of one remote call, held to its promises:

* time: every request of the exchange runs under the call's deadline and cancel flag. Its timeouts are capped at the
  time left, and the call is checked before each request and between received chunks, so a body that drips one byte
  at a time ends at the deadline or at Stop.
* bytes: each answer is counted as it streams and refused past the exchange's cap (a Content-Length over it is
  refused before anything is read). gzip and deflate are the only encodings asked for; they are inflated here, in
  bounded steps, and counted after inflating, so a compressed bomb is refused too.
* keys: the deployer's key headers go only to the configured origins (scheme, host and port). Any other origin (a
  status, result or cancel URL from the provider's answer, an output file, a redirect) gets the request without
  them.
* addresses: a URL for the app itself, or one whose host resolves to a loopback, private, link-local, shared,
  multicast, reserved or unspecified address, is refused unless its host or host:port is in the deployer's
  allow-list (PLAYGROUND_REMOTE_ALLOW_HOSTS). Direct connections are checked again when they are opened, on the
  addresses actually dialled, so a name cannot resolve to a public address for the check and a private one for the
  connection (DNS rebinding). Through a proxy only the URL check applies (the proxy resolves the name).

`GuardedTransport` wraps an httpx transport (the vendor calls) or an httpx2 one (huggingface_hub's shared session,
which InferenceClient uses); outside a remote exchange it passes requests through unchanged."""
from __future__ import annotations

import contextlib
import ipaddress
import socket
import tempfile
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import httpx
import httpx2

from .calls import Busy, Call, Malformed, Oversized, Unsafe

MB = 1_000_000
SPOOL_BYTES = 8 * MB  # a body read here stays in memory up to this size, then goes to a temporary file
INFLATE_STEP = 1 << 20  # inflate at most this much per step
CLEANUP_TIMEOUT_S = 5.0  # a provider-side cancel after the call ended

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: Any) -> Origin:
    """(scheme, host, port) with the scheme's default port filled in."""
    parsed = url if isinstance(url, (httpx.URL, httpx2.URL)) else httpx.URL(str(url))
    scheme = parsed.scheme.lower()
    return scheme, (parsed.host or "").lower(), parsed.port or _DEFAULT_PORTS.get(scheme, 0)


def parse_hosts(value: str | Iterable[str] | None) -> frozenset[str]:
    """An allow-list as given ("a.example, 127.0.0.1:8000, [::1]:9000, http://10.0.0.5:8080"): lower-case host or
    host:port entries (a URL counts as its host:port)."""
    if not value:
        return frozenset()
    items = value.split(",") if isinstance(value, str) else value
    found = set()
    for item in items:
        item = item.strip().lower().rstrip("/")
        if not item:
            continue
        if "://" in item:
            _, host, port = origin(item)
            item = _host_port(host, port)
        found.add(item)
    return frozenset(found)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_public(address: str) -> bool:
    """Whether an IP address is one the public internet routes (an IPv4-mapped IPv6 address counts as its IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


def resolve(host: str, port: int) -> list[str]:
    """The addresses a host name resolves to (an IP literal resolves to itself, without DNS)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class AddressPolicy:
    """Which hosts a remote call may reach: any public address; a non-public one, or the app itself, only when the
    deployer listed its host (or host:port)."""

    allow_hosts: frozenset[str] = frozenset()
    self_hosts: frozenset[str] = frozenset()  # the app's own public host names (SPACE_HOST on Spaces)

    def listed(self, host: str, port: int) -> bool:
        host = host.lower().strip("[]").rstrip(".")
        return bool({host, f"[{host}]", _host_port(host, port)} & self.allow_hosts)

    def addresses(self, host: str, port: int) -> list[str] | None:
        """None for an allow-listed host (connect as usual); else the host's addresses, all of them public.
        Raises Unsafe for the app itself or any non-public address, Busy when the name does not resolve."""
        host = host.lower().strip("[]").rstrip(".")
        if self.listed(host, port):
            return None
        if host in self.self_hosts:
            raise Unsafe("the URL points at this app itself")
        try:
            found = resolve(host, port)
        except (OSError, UnicodeError) as exc:
            raise Busy(503, f"cannot resolve {host}") from exc
        if not found:
            raise Busy(503, f"cannot resolve {host}")
        if not all(is_public(address) for address in found):
            raise Unsafe("the URL resolves to a private, loopback or link-local address")
        return found

    def check_url(self, url: Any) -> None:
        scheme, host, port = origin(url)
        if scheme not in ("http", "https"):
            raise Unsafe(f"a {scheme or 'relative'} URL")
        self.addresses(host, port)


@dataclass
class Exchange:
    """The HTTP requests of one remote call: its deadline and cancel flag (`call`), who may receive the key, which
    addresses it may reach and how large one answer may be."""

    call: Call
    policy: AddressPolicy
    max_bytes: int  # per answer, after inflating
    key_origins: frozenset[Origin] = frozenset()
    key_headers: frozenset[str] = frozenset()  # lower-case header names that carry the key
    request_timeout_s: float | None = None  # the most one blocking step (connect, one read, one write) may take
    # Take each answer whole (to a temporary file past SPOOL_BYTES) before handing it on: for a client that reads
    # answers into memory itself (huggingface_hub), so that a refused answer is never held there.
    spool: bool = False
    cleaning_up: bool = False

    def check(self) -> None:
        if not self.cleaning_up:
            self.call.check()

    def time_left(self) -> float:
        if self.cleaning_up:
            return CLEANUP_TIMEOUT_S
        left = max(0.05, self.call.remaining)
        return min(left, self.request_timeout_s) if self.request_timeout_s else left

    @contextlib.contextmanager
    def cleanup(self) -> Iterator[None]:
        """A best-effort request after the call has ended (a provider-side cancel): held to a short timeout and to the
        key, address and byte rules, not to the deadline or the cancel flag."""
        self.cleaning_up = True
        try:
            yield
        finally:
            self.cleaning_up = False

    def prepare(self, request: Any) -> None:
        """Before a request leaves: the call is still on, the key only for its origins, the address allowed, gzip or
        deflate at most, and no step longer than the time left."""
        self.check()
        if origin(request.url) not in self.key_origins:
            for name in self.key_headers:
                if name in request.headers:
                    del request.headers[name]
        self.policy.check_url(request.url)
        request.headers["Accept-Encoding"] = "gzip, deflate"
        limit = self.time_left()
        given = dict(request.extensions.get("timeout") or {})
        request.extensions["timeout"] = {
            step: limit if given.get(step) is None else min(given[step], limit) for step in ("connect", "read", "write", "pool")}

    def client(self) -> httpx.Client:
        """An httpx client whose every request (redirects included) goes through this exchange."""
        client = httpx.Client(follow_redirects=True, timeout=self.request_timeout_s)
        guard_client(client, lambda: self)
        return client


_active = threading.local()  # the exchange of the request being sent on this thread (for the connect-time check)
_hub = threading.local()  # the exchange huggingface_hub's session serves on this thread


class GuardedTransport(httpx.BaseTransport, httpx2.BaseTransport):
    """An httpx or httpx2 transport that holds each request to the current exchange (none: passes it through)."""

    def __init__(self, inner: Any, exchange_of: Callable[[], Exchange | None]):
        self.inner, self.exchange_of = inner, exchange_of
        _check_connections(inner)

    def handle_request(self, request: Any) -> Any:
        exchange = self.exchange_of()
        if exchange is None:
            return self.inner.handle_request(request)
        exchange.prepare(request)
        previous = getattr(_active, "exchange", None)
        _active.exchange = exchange
        try:
            response = self.inner.handle_request(request)
        finally:
            _active.exchange = previous
        try:
            _limit(response, exchange)
        except BaseException:
            response.close()
            raise
        return response

    def close(self) -> None:
        self.inner.close()


def guard_client(client: Any, exchange_of: Callable[[], Exchange | None]) -> None:
    """Route an httpx/httpx2 client's transports (its own and any proxy mounts) through GuardedTransport."""
    client._transport = GuardedTransport(client._transport, exchange_of)
    client._mounts = {pattern: None if transport is None else GuardedTransport(transport, exchange_of)
                      for pattern, transport in client._mounts.items()}


def _limit(response: Any, exchange: Exchange) -> None:
    declared = response.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > exchange.max_bytes:
        raise Oversized(f"it declares {int(declared) / MB:,.0f} MB; the limit is {exchange.max_bytes / MB:g} MB")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise Malformed(f"an answer in an encoding that was not asked for ({encoding[:40]})")
    inflate = encoding not in ("", "identity")
    if inflate:  # inflated here, bounded; the client must not inflate it again
        del response.headers["content-encoding"]
        if "content-length" in response.headers:
            del response.headers["content-length"]
    response.stream = LimitedStream(response.stream, exchange, inflate)


class LimitedStream(httpx.SyncByteStream, httpx2.SyncByteStream):
    """An answer's body, checked against the call between chunks and refused past the exchange's byte cap."""

    def __init__(self, inner: Any, exchange: Exchange, inflate: bool):
        self.inner, self.exchange = inner, exchange
        self.inflater = zlib.decompressobj(32 + zlib.MAX_WBITS) if inflate else None  # gzip or zlib, detected
        self.received = self.produced = 0

    def __iter__(self) -> Iterator[bytes]:
        if not self.exchange.spool:
            yield from self._checked()
            return
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as file:
            for chunk in self._checked():
                file.write(chunk)
            file.seek(0)
            while block := file.read(INFLATE_STEP):
                yield block

    def _checked(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.exchange.check()
            self.received += len(chunk)
            if self.inflater is None:
                self._count(len(chunk))
                yield chunk
                continue
            self._over(self.received)
            yield from self._inflate(chunk)
        if self.inflater is not None:
            tail = self.inflater.flush()
            if tail:
                self._count(len(tail))
                yield tail

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        assert self.inflater is not None
        while data and not self.inflater.eof:
            try:
                out = self.inflater.decompress(data, INFLATE_STEP)
            except zlib.error as exc:
                raise Malformed("a compressed answer that does not inflate") from exc
            data = self.inflater.unconsumed_tail
            if out:
                self._count(len(out))
                yield out

    def _count(self, n: int) -> None:
        self.produced += n
        self._over(self.produced)

    def _over(self, n: int) -> None:
        if n > self.exchange.max_bytes:
            raise Oversized(f"more than {self.exchange.max_bytes / MB:g} MB")

    def close(self) -> None:
        self.inner.close()


class CheckedBackend:
    """An httpcore/httpcore2 network backend that, within an exchange, dials only the checked addresses of a host."""

    def __init__(self, inner: Any):
        self.inner = inner

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Any = None) -> Any:
        exchange = getattr(_active, "exchange", None)
        found = None if exchange is None else exchange.policy.addresses(host, port)
        if found is None:
            return self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        error: Exception | None = None
        for address in found:
            try:
                return self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except Exception as exc:  # the next address, as socket.create_connection would
                error = exc
        assert error is not None
        raise error

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _check_connections(transport: Any) -> None:
    """Give a direct transport's connection pool the connect-time address check (a proxy pool keeps its own: it dials
    the proxy, which the deployer chose)."""
    pool = getattr(transport, "_pool", None)
    if pool is None or type(pool).__name__ != "ConnectionPool":
        return
    backend = getattr(pool, "_network_backend", None)
    if backend is not None and not isinstance(backend, CheckedBackend):
        pool._network_backend = CheckedBackend(backend)


def read_limited(response: Any, limit: int, truncate: bool = False) -> bytes:
    """A streamed response's body, at most `limit` bytes; it stays in memory up to SPOOL_BYTES and goes to a
    temporary file past that, so a refused answer is never held whole. Over the limit: Oversized (or, with truncate,
    its first `limit` bytes, for error details)."""
    declared = response.headers.get("content-length", "")
    if not truncate and declared.strip().isdigit() and int(declared) > limit:
        raise Oversized(f"it declares {int(declared) / MB:,.0f} MB; the limit is {limit / MB:g} MB")
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        for chunk in response.iter_bytes():
            if size + len(chunk) > limit:
                if truncate:
                    spool.write(chunk[: limit - size])
                    break
                raise Oversized(f"more than {limit / MB:g} MB")
            size += len(chunk)
            spool.write(chunk)
        spool.seek(0)
        return spool.read()


# -- huggingface_hub's shared session (InferenceClient) ------------------------------------------------------------
_install_lock = threading.Lock()


def hub_exchange() -> Exchange | None:
    return getattr(_hub, "exchange", None)


@contextlib.contextmanager
def serving_hub(exchange: Exchange) -> Iterator[None]:
    """huggingface_hub's requests on this thread belong to `exchange` (InferenceClient runs in the call's worker)."""
    previous = hub_exchange()
    _hub.exchange = exchange
    try:
        yield
    finally:
        _hub.exchange = previous


def install_hub_guard() -> None:
    """Wrap huggingface_hub's client factory (once per process) so its shared session goes through GuardedTransport;
    requests outside a remote exchange (a weights download) pass through unchanged."""
    import huggingface_hub
    from huggingface_hub.utils import _http as hub_http

    with _install_lock:
        previous = getattr(hub_http, "_GLOBAL_CLIENT_FACTORY", hub_http.default_client_factory)
        if getattr(previous, "playground_guard", False):
            return

        def factory() -> Any:
            client = previous()
            guard_client(client, hub_exchange)
            return client

        factory.playground_guard = True  # type: ignore[attr-defined]
        huggingface_hub.set_client_factory(factory)
