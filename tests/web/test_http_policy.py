"""One CORS policy for the whole app, the Host header, forwarded headers, security headers and
the server's connection limits (issue 9 §2, §5). Real uvicorn servers on loopback (the server
the app runs in, web/server.py), raw sockets where a client must misbehave; the cross-origin
case in headless Chromium too."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

SEED_QUESTION = "锦州的“三个开放”是什么？"
EVIL = "http://evil.example"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page_server():
    """A plain page on another loopback port (another origin) for the cross-origin cases."""
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def policy_app(seed_kb, start_app, page_server):
    """The app allowing one other origin (the page server's), behind a proxy named kb.example."""
    update = {"rate_limit_per_minute": 0, "allowed_origins": [page_server], "trusted_hosts": ["127.0.0.1", "kb.example"]}
    return start_app(seed_kb, seed_kb.settings.model_copy(update=update))


# --------------------------------------------------------------------------- CORS


def test_no_origin_is_allowed_by_default(app_url):
    for method, path, kwargs in (("OPTIONS", "/api/ask", {}), ("POST", "/api/ask", {"json": {"question": "x"}}),
                                 ("GET", "/config", {}), ("GET", "/gradio_api/info", {}),
                                 ("OPTIONS", "/gradio_api/queue/join", {})):
        headers = {"Origin": EVIL, "Access-Control-Request-Method": "POST"}
        response = httpx.request(method, app_url + path, headers=headers, timeout=30, **kwargs)
        assert "access-control-allow-origin" not in response.headers, (method, path)
        assert "access-control-allow-credentials" not in response.headers, (method, path)


def test_an_allowed_origin_gets_cors_on_the_preflight_and_the_response(policy_app, page_server):
    preflight = httpx.options(policy_app + "/api/ask", timeout=30, headers={
        "Origin": page_server, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == page_server
    assert "access-control-allow-credentials" not in preflight.headers
    response = httpx.post(policy_app + "/api/ask", json={"question": SEED_QUESTION}, headers={"Origin": page_server},
                          timeout=30)
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == page_server
    # An error answer is readable by the allowed page too.
    response = httpx.post(policy_app + "/api/ask", json={}, headers={"Origin": page_server}, timeout=30)
    assert response.status_code == 422 and response.headers["access-control-allow-origin"] == page_server


def test_another_origin_gets_no_cors_anywhere_even_behind_a_proxy_host(policy_app):
    """The report: with a Host that is not localhost, Gradio's own CORS answered any origin
    with credentials; one policy now covers Gradio's routes too."""
    for path in ("/api/ask", "/config", "/gradio_api/info", "/gradio_api/queue/join", "/"):
        for method in ("OPTIONS", "GET"):
            response = httpx.request(method, policy_app + path, timeout=30, headers={
                "Host": "kb.example", "Origin": EVIL, "Access-Control-Request-Method": "POST"})
            assert "access-control-allow-origin" not in response.headers, (method, path)
            assert "access-control-allow-credentials" not in response.headers, (method, path)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_a_page_on_another_origin_cannot_read_the_app_in_chromium(seed_kb, start_app, page_server):
    """From a page served on another port: the allowed origin reads /api/ask; a refused one
    can read neither the API nor Gradio's config nor replay the file request."""
    from playwright.sync_api import sync_playwright

    allowed = start_app(seed_kb, seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0,
                                                                      "allowed_origins": [page_server]}))
    refused = start_app(seed_kb, seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0}))
    script = """async ([base, question]) => {
        const out = {};
        const tries = {
          ask: () => fetch(base + '/api/ask', {method: 'POST', headers: {'content-type': 'application/json'},
                                              body: JSON.stringify({question})}).then(r => r.json()),
          config: () => fetch(base + '/config').then(r => r.text()),
          join: () => fetch(base + '/gradio_api/call/ask', {method: 'POST', headers: {'content-type': 'application/json'},
                body: JSON.stringify({data: ['x', [{role: 'user', content: [{type: 'file',
                      file: {path: '/etc/passwd', meta: {_type: 'gradio.FileData'}}}]}]]})}).then(r => r.text()),
        };
        for (const [name, run] of Object.entries(tries)) {
          try { out[name] = {ok: true, value: await run()}; } catch (e) { out[name] = {ok: false, error: String(e)}; }
        }
        return out;
    }"""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_server + "/", wait_until="load")
            ok = page.evaluate(script, [allowed, SEED_QUESTION])
            no = page.evaluate(script, [refused, SEED_QUESTION])
        finally:
            browser.close()
    assert ok["ask"]["ok"] and ok["ask"]["value"]["found"] is True, ok
    assert ok["join"]["ok"] and "root:x" not in ok["join"]["value"]  # allowed origin: still refused (422)
    assert not no["ask"]["ok"] and not no["config"]["ok"] and not no["join"]["ok"], no


# --------------------------------------------------------------------------- Host and forwarded headers


def test_a_host_not_served_is_refused_and_never_reflected(app_url):
    for path in ("/", "/config", "/api/health"):
        response = httpx.get(app_url + path, headers={"Host": "evil.example"}, timeout=30)
        assert response.status_code == 400 and "evil.example" not in response.text


def test_forwarded_host_is_believed_only_from_a_trusted_proxy(seed_kb, start_app):
    forged = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"}
    untrusted = start_app(seed_kb, seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0}))
    for path in ("/config", "/"):
        response = httpx.get(untrusted + path, headers=forged, timeout=30)
        assert response.status_code == 200 and "evil.example" not in response.text, path
    proxied = start_app(seed_kb, seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0,
                                                                      "trusted_proxies": ["127.0.0.1"]}))
    response = httpx.get(proxied + "/config", headers={"X-Forwarded-Host": "kb.example"}, timeout=30)
    assert "kb.example" in response.text  # the operator's proxy names the public host


# --------------------------------------------------------------------------- security headers


def test_every_response_carries_the_security_headers(policy_app, page_server):
    cases = [("GET", "/", None), ("GET", "/config", None), ("GET", "/widget.js", None), ("GET", "/widget", None),
             ("GET", "/api/health", None), ("POST", "/api/ask", {"question": SEED_QUESTION}),
             ("POST", "/api/ask", {}), ("GET", "/api/nope", None), ("GET", "/gradio_api/file=/etc/passwd", None),
             ("GET", "/openapi.json", None), ("HEAD", "/", None)]
    for method, path, body in cases:
        response = httpx.request(method, policy_app + path, json=body, timeout=30)
        csp = response.headers.get("content-security-policy", "")
        assert f"frame-ancestors 'self' {page_server}" in csp, (method, path, csp)
        assert "object-src 'none'" in csp and "connect-src 'self'" in csp and "base-uri 'self'" in csp
        assert response.headers["x-content-type-options"] == "nosniff", (method, path)
        assert response.headers["referrer-policy"] == "same-origin", (method, path)


def test_the_default_app_may_only_be_framed_by_itself(app_url):
    csp = httpx.get(app_url + "/", timeout=30).headers["content-security-policy"]
    assert csp.endswith("frame-ancestors 'self'"), csp


# --------------------------------------------------------------------------- connection limits


def _raw(url: str, data: bytes, *, read_timeout: float = 10.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


def test_oversized_headers_are_refused(app_url):
    host = app_url.removeprefix("http://")
    big = f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nX-Big: {'a' * 1_000_000}\r\n\r\n".encode()
    assert _raw(app_url, big).startswith(b"HTTP/1.1 431")
    many = f"GET /api/health HTTP/1.1\r\nHost: {host}\r\n".encode() + b"".join(
        f"X-H{i}: v\r\n".encode() for i in range(20_000)) + b"\r\n"
    assert _raw(app_url, many).startswith(b"HTTP/1.1 431")
    fine = f"GET /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    assert _raw(app_url, fine).startswith(b"HTTP/1.1 200")


@pytest.fixture(scope="module")
def impatient_app(seed_kb, start_app):
    update = {"rate_limit_per_minute": 0, "header_timeout_seconds": 1.0, "body_timeout_seconds": 1.0}
    return start_app(seed_kb, seed_kb.settings.model_copy(update=update))


def test_slow_headers_are_cut_off(impatient_app):
    host, port = impatient_app.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /api/health HTTP/1.1\r\n")
        closed = False
        try:
            for _ in range(8):  # a header line every 0.5 s: it never finishes within 1 s
                time.sleep(0.5)
                sock.sendall(b"X-Slow: 1\r\n")
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if not closed:
            closed = sock.recv(1024) == b""
    assert closed and time.monotonic() - start < 6
    # An idle connection that never sends a byte is closed too.
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        t0 = time.monotonic()
        assert sock.recv(1024) == b"" and time.monotonic() - t0 < 5


def test_a_slow_body_is_a_408(impatient_app):
    host, port = impatient_app.removeprefix("http://").split(":")
    head = (f"POST /api/ask HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n").encode()
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + b'{"question": ')
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 408") and time.monotonic() - start < 5
    # Header and body deadlines leave a normal request alone.
    response = httpx.post(impatient_app + "/api/ask", json={"question": SEED_QUESTION}, timeout=30)
    assert response.status_code == 200


# --------------------------------------------------------------------------- API docs offline


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
@pytest.mark.parametrize("path, ready", [("/docs", ".opblock-summary-path"), ("/redoc", "[role='menuitem']")])
def test_the_api_docs_render_with_no_request_leaving_the_machine(app_url, path, ready):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            requested: list[str] = []
            blocked: dict[str, str | None] = {}
            page.on("request", lambda request: requested.append(request.url))
            page.on("requestfailed", lambda request: blocked.__setitem__(request.url, request.failure))
            page.goto(app_url + path, wait_until="load")
            page.locator(ready).first.wait_for(timeout=30_000)
            text = page.locator("body").inner_text()
        finally:
            browser.close()
    assert "/api/ask" in text
    # Nothing at all is asked of another host (Redoc's bundle asked a CDN for its maker's logo;
    # the CSP stopped it, but the page still tried: issue 21).
    outside = [url for url in requested if not url.startswith((app_url, "data:", "blob:"))]
    assert outside == [], (outside, blocked)



# --------------------------------------------------------------------------- issue 18: what SECURITY.md promised


def _one_write(url: str, head: bytes) -> bytes:
    """``head`` sent in one write; the reply's first bytes."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        sock.sendall(head)
        return sock.recv(65536)


def test_the_header_bound_holds_when_the_headers_arrive_in_one_write(app_url):
    """The report: a 70,000-byte header or 6,000 headers sent at once got a 200 (h11 bounds only
    a head still incomplete)."""
    host = app_url.removeprefix("http://")
    start = f"GET /api/health HTTP/1.1\r\nHost: {host}\r\n".encode()
    for extra in (f"X-Big: {'a' * 70_000}\r\n".encode(), b"".join(f"X-H{i}: v\r\n".encode() for i in range(6_000))):
        reply = _one_write(app_url, start + extra + b"\r\n")
        assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
    fine = start + b"X-Fine: " + b"a" * 15_000 + b"\r\nConnection: close\r\n\r\n"  # within 16 KiB
    assert _one_write(app_url, fine).startswith(b"HTTP/1.1 200")


def test_x_gradio_server_cannot_write_a_host_into_the_page_and_pages_are_not_cached(app_url):
    for path in ("/", "/config"):
        response = httpx.get(app_url + path, headers={"X-Gradio-Server": EVIL}, timeout=30)
        assert response.status_code == 200 and "evil.example" not in response.text, path
        assert response.headers["cache-control"] == "no-store", path


def test_ipv6_loopback_is_a_trusted_host(app_url):
    port = app_url.rsplit(":", 1)[1]
    for host in (f"[::1]:{port}", "[::1]"):
        response = httpx.get(app_url + "/api/health", headers={"Host": host}, timeout=30)
        assert response.status_code == 200, (host, response.text)
    assert httpx.get(app_url + "/api/health", headers={"Host": f"[::2]:{port}"}, timeout=30).status_code == 400
