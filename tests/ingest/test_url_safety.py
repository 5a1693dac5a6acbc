"""SSRF guard of URL ingestion: schemes, non-public addresses on every hop, pinned connections,
a total deadline and a size bound.

No test here sends a packet anywhere but loopback: the ``network_guard`` fixture records every
connect() and every name lookup, fails the test on one that is not loopback / numeric /
"localhost", and the refused addresses (10.0.0.1, 169.254.169.254 ...) must be refused before
any connect(): the tests assert that no connection was even attempted.
"""

from __future__ import annotations

import ipaddress
import socket
import socketserver
import threading
import time

import pytest

from ingest.fetch import UnsafeURLError, is_public_address, vet_url
from ingest.loaders import is_url, iter_documents
from ingest.records import LoadFailure, SourceDocument

PAGE = "<html><head><title>数字锦州</title></head><body><p>锦州坚持“三个开放”。</p></body></html>"


# --------------------------------------------------------------------------- guard


@pytest.fixture(autouse=True)
def network_guard(monkeypatch):
    """Records connect() destinations and name lookups; only loopback traffic is allowed."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo
    seen = {"connects": [], "lookups": [], "violations": []}

    def connect(sock, address):
        host = address[0] if isinstance(address, tuple) else address
        seen["connects"].append(host)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not ipaddress.ip_address(host.split("%")[0]).is_loopback:
            seen["violations"].append(f"connect to {host}")
            raise ConnectionRefusedError(f"test guard: no traffic to {host}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        seen["lookups"].append(host)
        if host != "localhost":
            try:  # numeric hosts are parsed locally, no DNS query
                real_getaddrinfo(host, None, 0, 0, 0, socket.AI_NUMERICHOST)
            except socket.gaierror:
                seen["violations"].append(f"DNS lookup of {host}")
                raise socket.gaierror(socket.EAI_NONAME, f"test guard: no DNS lookup of {host}") from None
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield seen
    assert seen["violations"] == []


def fake_dns(monkeypatch, network_guard, answers):
    """Resolve test names: ``name -> [answer of the 1st lookup, of the 2nd ...]``, an answer
    being an address, a tuple of them, or seconds to hang. The real resolver can't answer
    these names and must not be asked; other names go on to the guard."""
    guarded = socket.getaddrinfo
    calls: dict[str, int] = {}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return guarded(host, port, *args, **kwargs)
        network_guard["lookups"].append(host)
        n = calls[host] = calls.get(host, 0) + 1
        answer = answers[host][min(n, len(answers[host])) - 1]
        if isinstance(answer, float):  # a resolver this slow
            time.sleep(answer)
            answer = "127.0.0.1"
        addresses = answer if isinstance(answer, tuple) else (answer,)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


# --------------------------------------------------------------------------- a raw test server


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(4096)
            if not chunk:
                return
            head += chunk
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split()[1]
        host = next((line.split(":", 1)[1].strip() for line in lines[1:] if line.lower().startswith("host:")), "")
        self.server.requests.append((path, host))
        try:
            self.respond(path)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def send(self, data: bytes):
        self.request.sendall(data)

    def respond(self, path: str):
        port = self.server.server_address[1]
        redirects = {
            "/to-metadata": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "/to-private": "http://10.0.0.1/admin",
            "/to-file": "file:///etc/passwd",
            "/to-localhost": f"http://localhost:{port}/page",
            "/to-ipv6-loopback": f"http://[::1]:{port}/page",
        }
        if path == "/page":
            body = PAGE.encode()
            self.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                      b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        elif path in redirects:
            self.send(f"HTTP/1.1 302 Found\r\nLocation: {redirects[path]}\r\nContent-Length: 0\r\n"
                      "Connection: close\r\n\r\n".encode())
        elif path == "/drip-body":  # headers at once, then a byte every 50 ms for 10 s
            self.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
            for _ in range(200):
                self.send(b".")
                time.sleep(0.05)
        elif path == "/drip-head":  # even the status line and headers come a byte at a time
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Padding: " + b"x" * 200:
                self.send(bytes([byte]))
                time.sleep(0.05)
        elif path == "/endless":  # no Content-Length, no end
            self.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
            block = "无尽的正文。".encode() * 1000
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                self.send(block)
        else:
            self.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


@pytest.fixture(scope="module")
def server():
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def base(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def fetch(url, **kw):
    (result,) = iter_documents([url], **kw)
    return result


# --------------------------------------------------------------------------- addresses


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.1",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "ff02::1", "fec0::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::1", "not-an-ip", "",
])
def test_non_public_addresses(address):
    assert is_public_address(address) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "172.32.0.1", "192.169.0.1", "2606:4700:4700::1111",
                                     "64:ff9b::808:808", "::ffff:8.8.8.8"])
def test_public_addresses(address):
    assert is_public_address(address) is True


# --------------------------------------------------------------------------- one hop


REFUSED = [
    "http://127.0.0.1/", "http://127.0.0.1:7860/api/documents", "http://localhost/", "http://LOCALHOST.:8000/",
    "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/", "http://10.0.0.1/", "http://192.168.0.1/",
    "http://169.254.169.254/latest/meta-data/", "https://169.254.169.254/", "http://[fe80::1%25eth0]/",
    "http://[fd00::1]/", "http://224.0.0.1/",
    # other spellings of 127.0.0.1 that the system resolver accepts
    "http://2130706433/", "http://0x7f000001/", "http://127.1/", "http://017700000001/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_non_public_hosts_are_refused_before_any_connection(url, network_guard):
    start = time.monotonic()
    with pytest.raises(UnsafeURLError, match="not a public address"):
        vet_url(url)
    result = fetch(url, url_timeout=5)
    assert isinstance(result, LoadFailure) and "not a public address" in result.reason, result
    assert network_guard["connects"] == []  # nothing was even attempted
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/pub", "gopher://127.0.0.1:70/_GET", "dict://x:11211/",
                                 "javascript:alert(1)", "//127.0.0.1/x"])
def test_only_http_and_https(url, network_guard):
    with pytest.raises(UnsafeURLError, match="scheme"):
        vet_url(url, allow_private=True)
    if "://" in url and not url.startswith("//"):
        result = fetch(url, allow_private_urls=True)
        assert isinstance(result, LoadFailure) and "unsupported URL scheme" in result.reason
    assert network_guard["connects"] == [] and network_guard["lookups"] == []


@pytest.mark.parametrize("value,expected", [
    ("http://example.org/a", True), ("HTTPS://example.org", True), (" https://example.org ", True),
    ("file:///etc/passwd", True), ("ftp://127.0.0.1/pub", True), ("svn+ssh://host/repo", True),
    ("/etc/passwd", False), ("notes.txt", False), ("kb/", False), ("~/docs", False),
    ("javascript:alert(1)", False), ("//127.0.0.1/x", False), ("c://x", False),
])
def test_any_scheme_makes_an_input_a_url_for_the_loader_and_the_pipeline(value, expected):
    """One rule (``ingest.loaders.is_url``) for both: ``ftp://`` or ``file://`` given as an input is a
    URL, refused for its scheme by the fetcher, never a local path to read, prune or compare."""
    assert is_url(value) is expected


def test_a_name_that_resolves_to_loopback_is_refused_though_a_server_is_there(server):
    before = len(server.requests)
    result = fetch(f"http://localhost:{server.server_address[1]}/page")
    assert isinstance(result, LoadFailure) and "localhost" in result.reason and "not a public address" in result.reason
    assert len(server.requests) == before


def test_any_non_public_address_of_a_name_refuses_it(monkeypatch, network_guard):
    fake_dns(monkeypatch, network_guard, {"mixed.test": [("93.184.216.34", "10.0.0.7")]})  # one public, one not
    with pytest.raises(UnsafeURLError, match=r"mixed\.test \(10\.0\.0\.7\)"):
        vet_url("http://mixed.test/")
    result = fetch("http://mixed.test/")
    assert isinstance(result, LoadFailure) and "10.0.0.7" in result.reason
    assert network_guard["connects"] == []  # not even to the public one


def test_allow_private_true_or_a_list_of_networks():
    assert vet_url("http://127.0.0.1:8080/a?b=1", allow_private=True).addresses == ("127.0.0.1",)
    vetted = vet_url("http://localhost:8080/a?b=1", allow_private=["127.0.0.0/8"])
    assert (vetted.host, vetted.port, vetted.target, vetted.addresses) == ("localhost", 8080, "/a?b=1", ("127.0.0.1",))
    with pytest.raises(UnsafeURLError):
        vet_url("http://169.254.169.254/", allow_private=["127.0.0.0/8", "10.0.0.0/8"])
    assert vet_url("http://[::1]:1/", allow_private=["::1/128"]).host_header == "[::1]:1"


# --------------------------------------------------------------------------- every hop


@pytest.mark.parametrize("path, refused", [
    ("/to-metadata", "169.254.169.254"),
    ("/to-private", "10.0.0.1"),
    ("/to-file", "unsupported URL scheme file:"),
    ("/to-ipv6-loopback", "::1"),
])
def test_every_redirect_hop_is_vetted(server, network_guard, path, refused):
    # The first hop is allowed (loopback only, to reach the test server); where it redirects is not.
    result = fetch(base(server) + path, allow_private_urls=["127.0.0.0/8"], url_timeout=5)
    assert isinstance(result, LoadFailure), result
    assert result.reason.startswith("redirect to ") and refused in result.reason, result.reason
    assert set(network_guard["connects"]) == {"127.0.0.1"}  # never toward the redirect target


def test_a_redirect_within_the_allowed_networks_is_followed(server, network_guard):
    doc = fetch(base(server) + "/to-localhost", allow_private_urls=["127.0.0.0/8"])
    assert isinstance(doc, SourceDocument) and "三个开放" in doc.raw_text
    assert network_guard["lookups"].count("localhost") == 1


def test_the_connection_goes_to_the_vetted_address_not_a_second_lookup(server, monkeypatch, network_guard):
    # A DNS-rebinding name: first answer loopback (allowed here), every later one 10.0.0.1.
    # The fetch resolves once and connects to that address; a second lookup at connect time
    # (as plain httpx would do) would reach for 10.0.0.1, which the guard would report.
    calls = fake_dns(monkeypatch, network_guard, {"rebind.test": ["127.0.0.1", "10.0.0.1"]})
    port = server.server_address[1]
    doc = fetch(f"http://rebind.test:{port}/page", allow_private_urls=["127.0.0.0/8"])
    assert isinstance(doc, SourceDocument), doc
    assert calls == {"rebind.test": 1}
    assert network_guard["connects"] == ["127.0.0.1"]
    assert server.requests[-1] == ("/page", f"rebind.test:{port}")  # the Host header names the host


# --------------------------------------------------------------------------- time and size


@pytest.mark.parametrize("path", ["/drip-body", "/drip-head"])
def test_a_slow_drip_is_cut_at_the_total_deadline(server, path):
    # A byte every 50 ms for 10 s never trips a per-read timeout of 0.5 s; the total deadline does.
    start = time.monotonic()
    result = fetch(base(server) + path, allow_private_urls=True, url_timeout=0.5)
    elapsed = time.monotonic() - start
    assert isinstance(result, LoadFailure) and "timed out" in result.reason, result
    assert 0.45 < elapsed < 2.0, elapsed


def test_slow_name_resolution_counts_against_the_deadline(monkeypatch, network_guard):
    fake_dns(monkeypatch, network_guard, {"slow.test": [2.0]})
    start = time.monotonic()
    result = fetch("http://slow.test/", allow_private_urls=True, url_timeout=0.3)
    assert isinstance(result, LoadFailure) and "timed out" in result.reason, result
    assert time.monotonic() - start < 1.5  # the resolver would take 2 s
    assert network_guard["connects"] == []


def test_an_endless_body_is_cut_at_max_bytes(server):
    start = time.monotonic()
    result = fetch(base(server) + "/endless", allow_private_urls=True, max_bytes=100_000, url_timeout=5)
    assert isinstance(result, LoadFailure) and "too large" in result.reason, result
    assert time.monotonic() - start < 3.0  # the server would send for 10 s
