"""The SSRF-safe URL fetcher: :func:`fetch_url` GETs one http(s) URL for ingestion.

Every hop, redirects included, goes through :func:`vet_url` first: only http(s), only public
addresses unless ``allow_private``, and the connection pinned to the vetted address (no second
DNS lookup a rebinding answer could change). One total deadline covers the whole fetch (DNS,
connect, TLS, redirects, body) and one size bound the body. Problems come back as a
``LoadFailure`` (errors as values), never as an exception.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import httpcore

from ingest.records import LoadFailure

URL_MAX_REDIRECTS = 5
USER_AGENT = "kbqa-ingest/1.0 (+knowledge-base indexer)"


class UnsafeURLError(ValueError):
    """A URL that ingestion refuses to fetch: not http(s), or a host that is not public."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# True: any address; False: public ones only; networks: public ones and those.
AllowPrivate = bool | Iterable[str | ipaddress.IPv4Network | ipaddress.IPv6Network]


def is_public_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True only for a globally routable unicast address.

    False for loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), shared (100.64/10),
    link-local (169.254/16 with the cloud metadata address 169.254.169.254, fe80::/10),
    multicast, unspecified, reserved and documentation ranges, and for anything that is not
    an IP address. IPv6 forms that carry an IPv4 address (::ffff:a.b.c.d, NAT64, 6to4, Teredo)
    are judged by that address too.
    """
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
            return is_public_address(ip.ipv4_mapped)
        if ip in _NAT64:  # a NAT64 gateway connects to the IPv4 address in the low 32 bits
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(not is_public_address(v4) for v4 in (ip.sixtofour, *(ip.teredo or ())) if v4 is not None):
            return False
        if ip.is_site_local:  # deprecated fec0::/10, still routed inside some networks
            return False
    return ip.is_global and not (
        ip.is_multicast or ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified
    )


def _allowed(address: str, allow_private: bool | tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    if allow_private is True or is_public_address(address):
        return True
    if allow_private is False:
        return False
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return any(ip.version == net.version and ip in net for net in allow_private)


@dataclass(frozen=True)
class VettedURL:
    """A URL whose every resolved address passed the policy: connect to ``addresses`` only."""

    url: str
    scheme: str  # "http" | "https"
    host: str  # as in the Host header and TLS server name: ASCII (IDNA), no brackets
    port: int
    target: str  # path and query, percent-encoded
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}[self.scheme]
        return host if self.port == default else f"{host}:{self.port}"


def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """Addresses of ``host`` from the system resolver, within ``timeout`` (None: its own)."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc

    # A daemon thread: getaddrinfo cannot be cancelled, and a slow resolver must not hold up
    # the deadline (nor, if it hangs, the interpreter's exit).
    worker = threading.Thread(target=work, name="kbqa-resolve", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"resolving {host} took longer than {timeout:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return list(dict.fromkeys(info[4][0] for info in outcome["infos"]))


def vet_url(url: str, *, allow_private: AllowPrivate = False, timeout: float | None = None) -> VettedURL:
    """Check one hop before anything connects; raises :class:`UnsafeURLError` when refused.

    Only http and https. The host is resolved here (a literal IP as is) and the URL is refused
    when ANY of its addresses is not public, unless ``allow_private`` is True (any address) or
    a list of networks that address lies in (e.g. ``["10.1.0.0/16"]`` for an intranet server).
    Fetch the result only from ``addresses``: resolving again at connect time would let a
    DNS answer that changed in between (DNS rebinding) pick another address.
    Resolver failures raise OSError (``socket.gaierror``) or TimeoutError.
    """
    import httpx

    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UnsafeURLError(f"invalid URL ({exc})") from None
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURLError(f"unsupported URL scheme {scheme + ':' if scheme else '(none)'} (only http and https)")
    try:
        host = parsed.raw_host.decode("ascii").rstrip(".").lower()
    except UnicodeDecodeError:
        raise UnsafeURLError("invalid host name") from None
    if not host:
        raise UnsafeURLError("URL has no host")
    port = parsed.port or (443 if scheme == "https" else 80)
    if not isinstance(allow_private, bool):
        allow_private = tuple(ipaddress.ip_network(net, strict=False) for net in allow_private)
    try:
        addresses = [str(ipaddress.ip_address(host))]  # a literal IP: nothing to resolve
    except ValueError:
        addresses = _resolve(host, port, timeout)
    if not addresses:
        raise OSError(f"{host} has no address")
    refused = [a for a in addresses if not _allowed(a, allow_private)]
    if refused:
        what = host if refused == [host] else f"{host} ({', '.join(refused)})"
        raise UnsafeURLError(
            f"refused to fetch {what}: not a public address (loopback, private, link-local, reserved ...);"
            " allow_private_urls lets ingestion reach it"
        )
    target = parsed.raw_path.decode("ascii") or "/"
    return VettedURL(str(parsed), scheme, host, port, target, tuple(addresses))


class _DeadlineStream(httpcore.NetworkStream):
    """Every read and write waits at most until the fetch's deadline, not a fresh timeout each."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def _timeout(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise error("deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._timeout(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._timeout(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = self._timeout(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects a host only to the addresses :func:`vet_url` approved for it (no DNS here),
    and bounds connecting, TLS and every read and write by the fetch's deadline."""

    def __init__(self, deadline: float) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline
        self._pins: dict[tuple[str, int], tuple[str, ...]] = {}

    def pin(self, vetted: VettedURL) -> None:
        self._pins[(vetted.host, vetted.port)] = vetted.addresses

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._pins.get((host, port))
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not vetted")
        error: Exception = httpcore.ConnectError(f"cannot connect to {host}:{port}")
        for address in addresses:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("deadline passed")
            try:
                stream = self._inner.connect_tcp(
                    address, port, timeout=left if timeout is None else min(timeout, left),
                    local_address=local_address, socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:  # try the next address; timeouts end the fetch
                error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _fetch(
    url: str, max_bytes: int, timeout: float, allow_private: AllowPrivate, content_types: Collection[str]
) -> tuple[str, bytes] | LoadFailure:
    """GET ``url`` following up to URL_MAX_REDIRECTS redirects, vetting every hop; returns the
    Content-Type and the body. All of it, DNS included, ends by ``timeout`` seconds from now.

    httpcore (under httpx) rather than httpx: its network backend is the one place where the
    connection can be pinned to the vetted addresses and held to a total deadline. Direct
    connections only: proxy environment variables are not used (a proxy would connect for us).
    """
    import httpx

    deadline = time.monotonic() + timeout
    backend = _PinnedBackend(deadline)
    current = url
    with httpcore.ConnectionPool(network_backend=backend, max_connections=2, http1=True, http2=False) as pool:
        for hop in range(URL_MAX_REDIRECTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("deadline passed")
            try:
                vetted = vet_url(current, allow_private=allow_private, timeout=left)
            except UnsafeURLError as exc:
                return LoadFailure(url, f"{'redirect to ' + current + ': ' if hop else ''}{exc}")
            backend.pin(vetted)
            request_url = httpcore.URL(scheme=vetted.scheme.encode(), host=vetted.host.encode("ascii"),
                                       port=vetted.port, target=vetted.target.encode("ascii"))
            headers = [(b"Host", vetted.host_header.encode("ascii")), (b"User-Agent", USER_AGENT.encode()),
                       (b"Accept", b"text/html,text/plain;q=0.9,*/*;q=0.5"), (b"Accept-Encoding", b"identity")]
            timeouts = {"connect": left, "read": left, "write": left, "pool": left}
            with pool.stream("GET", request_url, headers=headers, extensions={"timeout": timeouts}) as resp:
                response_headers = httpx.Headers(resp.headers)
                if resp.status in _REDIRECTS and response_headers.get("location"):
                    try:
                        current = str(httpx.URL(vetted.url).join(response_headers["location"]).copy_with(fragment=None))
                    except (httpx.InvalidURL, TypeError, ValueError) as exc:
                        return LoadFailure(url, f"invalid redirect Location ({exc})")
                    continue
                if resp.status >= 400:
                    reason = resp.extensions.get("reason_phrase", b"").decode("ascii", "replace")
                    return LoadFailure(url, f"HTTP {resp.status} {reason}".strip())
                encoding = response_headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    return LoadFailure(url, f"unsupported content encoding {encoding!r}")
                content_type = response_headers.get("content-type", "")
                declared_len = response_headers.get("content-length", "")
                if declared_len.isdigit() and int(declared_len) > max_bytes:
                    return LoadFailure(url, f"response too large ({int(declared_len):,} bytes > limit {max_bytes:,})")
                mime = content_type.split(";", 1)[0].strip().lower()
                if mime and mime not in content_types:
                    return LoadFailure(url, f"unsupported content type {mime!r}")
                buf = bytearray()
                for piece in resp.iter_stream():
                    buf += piece
                    if len(buf) > max_bytes:
                        return LoadFailure(url, f"response too large (> {max_bytes:,} bytes)")
                return content_type, bytes(buf)
    return LoadFailure(url, f"too many redirects (more than {URL_MAX_REDIRECTS})")


def fetch_url(
    url: str, *, max_bytes: int, timeout: float, allow_private: AllowPrivate = False, content_types: Collection[str]
) -> tuple[str, bytes] | LoadFailure:
    """(Content-Type, body) of ``url``, or a LoadFailure saying why not.

    ``content_types``: the MIME types worth reading; a response declaring another one is
    refused before its body is read. ``timeout`` bounds the whole fetch, ``max_bytes`` the body.
    """
    try:
        return _fetch(url, max_bytes, timeout, allow_private, content_types)
    except httpcore.TimeoutException:
        return LoadFailure(url, f"timed out after {timeout:g}s")
    except TimeoutError as exc:
        return LoadFailure(url, f"timed out after {timeout:g}s ({exc})")
    except socket.gaierror as exc:
        return LoadFailure(url, f"cannot resolve host ({exc.strerror or exc})")
    except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
        return LoadFailure(url, f"request failed ({type(exc).__name__}: {exc})")
