"""Closed doors of the web layer: loopback bind, a read-only route table, per-IP rate limits,
request body limits. Real uvicorn servers on loopback, real sockets; see SECURITY.md."""

from __future__ import annotations

import ipaddress
import json
import socket
import time

import httpx
import pytest
from starlette.routing import Mount

from kbcore.settings import Settings
from web.asgi import create_app
from web.gradio_guard import EVENT_WRITE, SESSION_WRITES
from web.middleware import TokenBucketLimiter, _bucket_key, client_ip

SEED_QUESTION = "锦州的“三个开放”是什么？"
READS = {"GET", "HEAD"}
QUERY_ENDPOINTS = {("POST", "/api/ask"), ("POST", "/api/ask/stream"), ("POST", "/api/search"), ("POST", "/api/brief"),
                   ("POST", "/v1/chat/completions")}
# web/admin/: behind the admin key (403 while none is configured; tests/web/test_admin.py).
ADMIN_WRITES = {("POST", "/api/documents"), ("DELETE", "/api/documents/{doc_id:path}"), ("POST", "/api/reindex")}
ADMIN_PATHS = {"/api/documents", "/api/documents/{doc_id}", "/api/reindex", "/api/jobs", "/api/jobs/{job_id}",
               "/api/feedback.csv"}
# web/asgi.py's catch-all: any method on an unknown /api path is a JSON 404.
API_CATCH_ALL = {(m, f"/{prefix}/{{path:path}}") for m in ("POST", "PUT", "PATCH", "DELETE") for prefix in ("api", "v1")}
# The OpenAI-compatible request: a model name, the messages, and sampling parameters it ignores.
CHAT_FIELDS = {"model", "messages", "stream", "temperature", "top_p", "n", "max_tokens", "max_completion_tokens",
               "presence_penalty", "frequency_penalty", "seed", "stop", "user", "stream_options"}
# Gradio 6.31.0's own non-GET routes (pinned in pyproject.toml). A Gradio upgrade that adds
# one fails here on purpose: decide whether ReadOnlySurfaceMiddleware must close it.
GRADIO_WRITES = {
    "/login", "/login/",
    "/gradio_api/stream/{event_id}", "/gradio_api/stream/{event_id}/close",
    "/gradio_api/reset", "/gradio_api/reset/",
    "/gradio_api/api/{api_name}", "/gradio_api/api/{api_name}/",
    "/gradio_api/run/{api_name}", "/gradio_api/run/{api_name}/",
    "/gradio_api/call/{api_name}", "/gradio_api/call/{api_name}/",
    "/gradio_api/call/v2/{api_name}", "/gradio_api/call/v2/{api_name}/",
    "/gradio_api/queue/join", "/gradio_api/cancel",
    "/gradio_api/component_server", "/gradio_api/component_server/",
    "/gradio_api/upload", "/gradio_api/process_recording",
    "/gradio_api/vibe-edit", "/gradio_api/vibe-edit/", "/gradio_api/undo-vibe-edit", "/gradio_api/undo-vibe-edit/",
    "/gradio_api/vibe-code", "/gradio_api/vibe-code/",
    "/gradio_api/vibe-starter-queries", "/gradio_api/vibe-starter-queries/",
}


def walk_routes(routes, prefix="", under_mount=False):
    """(path, methods, under the Gradio mount) for every route, nested routers included."""
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI >= 0.165 keeps included routers as branches
            yield from walk_routes(route.original_router.routes, prefix + route.include_context.prefix, under_mount)
        elif isinstance(route, Mount):
            yield from walk_routes(route.routes, prefix + route.path, True)
        else:
            yield prefix + route.path, set(getattr(route, "methods", None) or ()), under_mount


@pytest.fixture(scope="module")
def app(seed_kb):
    return create_app(seed_kb)


# --------------------------------------------------------------------------- bind, routes


def test_default_bind_is_loopback():
    assert Settings().host == "127.0.0.1"
    assert Settings.model_fields["host"].default == "127.0.0.1"


def test_route_table_has_no_writes_but_the_query_endpoints_the_admin_ones_and_gradios_own(app):
    routes = list(walk_routes(app.routes))
    assert len(routes) > 30  # the walk did reach into the Gradio mount
    ours = {(m, path) for path, methods, gradio in routes if not gradio for m in methods - READS}
    assert ours == QUERY_ENDPOINTS | API_CATCH_ALL | ADMIN_WRITES
    gradio = {path for path, methods, under in routes if under and methods - READS}
    assert gradio == GRADIO_WRITES
    assert not [path for path, _, _ in routes if "ingest" in path.lower()]


def _concrete(path: str) -> str:
    return path.replace("{event_id}", "e1").replace("{api_name}", "ask")


def _open_write(path: str) -> bool:
    return bool(EVENT_WRITE.match(path)) or path in SESSION_WRITES


@pytest.mark.parametrize("path", sorted(p for p in GRADIO_WRITES if not _open_write(_concrete(p))))
def test_gradio_writes_the_chat_does_not_use_are_closed(app_url, path):
    response = httpx.post(app_url + _concrete(path), files={"files": ("a.txt", b"x")}, timeout=10)
    assert response.status_code == 404, response.text
    assert response.json()["error"].startswith("no such endpoint")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_methods_on_the_query_endpoints_are_404(app_url, method):
    for path in ("/api/ask", "/api/documents", "/api/ingest"):
        response = httpx.request(method, app_url + path, json={"question": "x"}, timeout=10)
        assert response.status_code in (404, 405), (method, path, response.status_code)


def test_no_endpoint_takes_a_path_or_url_to_ingest(app_url, seed_kb, monkeypatch):
    # The API's request bodies hold a question (with k and its conversation's text), a query or a
    # topic (and k), each with the knowledge base's name and filters that select, nothing else.
    spec = httpx.get(app_url + "/openapi.json", timeout=10).json()
    schemas = spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        if path in ADMIN_PATHS and path != "/api/documents":
            continue  # the admin key's (test_admin.py: 403 here, where none is configured)
        for method, operation in item.items():
            if path == "/api/documents" and method == "post":
                assert httpx.post(app_url + path, json={"url": "http://example.com/"}, timeout=10).status_code == 403
                continue
            if method == "get":
                assert "requestBody" not in operation, path
                continue
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            body = schemas[ref.rsplit("/", 1)[1]]
            assert set(body["properties"]) in (
                {"question", "k", "history", "kb", "filters"}, {"query", "k", "kb", "filters"},
                {"topic", "k", "kb", "filters", "lang"}, CHAT_FIELDS
            ), path
            assert body.get("additionalProperties") is False, path
    filters = schemas["FiltersIn"]
    assert set(filters["properties"]) == {"region", "date_from", "date_to", "source"}
    assert filters.get("additionalProperties") is False
    # The chat page: one public event ("ask": a textbox and the chat history), no file inputs.
    config = httpx.get(app_url + "/config", timeout=10).json()
    kinds = {c["type"] for c in config["components"]}
    assert not kinds & {"file", "uploadbutton", "image", "audio", "video", "model3d", "fileexplorer", "multimodaltextbox"}
    public = [d for d in config["dependencies"] if d.get("api_visibility") == "public"]
    assert [d["api_name"] for d in public] == ["ask"]

    calls: list = []
    monkeypatch.setattr(seed_kb, "ingest", lambda *a, **kw: calls.append(a))
    before = seed_kb.stats()
    payloads = ["http://127.0.0.1:9/x.html", "file:///etc/passwd", "/etc/passwd", str(seed_kb.settings.kb_dir)]
    with httpx.Client(base_url=app_url, timeout=30) as client:
        for payload in payloads:
            for path, field in (("/api/ask", "question"), ("/api/search", "query")):
                assert client.post(path, json={field: payload}).status_code == 200
                assert client.post(path, json={field: "x", "url": payload, "path": payload}).status_code == 422
            client.post("/gradio_api/run/ask", json={"data": [payload, []]})
    assert calls == [] and seed_kb.stats() == before


# --------------------------------------------------------------------------- body size


def raw_exchange(url: str, head: bytes, body_pieces=(), read_timeout: float = 5.0) -> tuple[int, dict, bytes]:
    """Send a request by hand on a socket; returns the status, headers and body of the reply."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout) as sock:
        sock.sendall(head)
        try:
            for piece in body_pieces:
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while the body was still coming: read the answer
        data = b""
        while b"\r\n\r\n" not in data or len(data) < data.index(b"\r\n\r\n") + 4 + _length(data):
            chunk = sock.recv(65536)  # socket.timeout here: the server kept waiting for the body
            if not chunk:
                break
            data += chunk
    head_part, _, body = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _length(data: bytes) -> int:
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    for line in head.split(b"\r\n"):
        if line.startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def _head(port_url: str, extra: str) -> bytes:
    host = port_url.removeprefix("http://")
    return (f"POST /api/ask HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}\r\n").encode()


def test_a_body_over_the_limit_is_a_json_413(app_url):
    response = httpx.post(app_url + "/api/ask", json={"question": "问" * 30_000}, timeout=10)  # ~90 kB
    assert response.status_code == 413
    assert response.json() == {"error": response.json()["error"], "detail": []}
    assert "65536" in response.json()["error"]
    # Gradio's own endpoints are behind the same limit.
    response = httpx.post(app_url + "/gradio_api/queue/join", content=b"{" + b" " * 70_000 + b"}", timeout=10)
    assert response.status_code == 413 and "65536" in response.json()["error"]


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_sent(app_url):
    start = time.monotonic()
    status, headers, body = raw_exchange(app_url, _head(app_url, "Content-Length: 100000000\r\n"))  # sends no body
    assert status == 413 and json.loads(body)["error"]
    assert headers.get("connection") == "close"
    assert time.monotonic() - start < 4  # well before the 5 s recv timeout


def test_a_chunked_body_is_cut_off_at_the_limit_while_it_arrives(app_url):
    # 65 kB in 1 kB chunks and never the final 0-size chunk: a server that read the whole body
    # first would wait for the rest forever (recv times out); this one answers 413 as soon as
    # the count passes 64 KiB.
    chunk = b"400\r\n" + b" " * 1024 + b"\r\n"
    start = time.monotonic()
    status, _, body = raw_exchange(app_url, _head(app_url, "Transfer-Encoding: chunked\r\n"), [chunk] * 65)
    assert status == 413 and "65536" in json.loads(body)["error"]
    assert time.monotonic() - start < 4.5


def test_a_chunked_body_within_the_limit_goes_through(app_url):
    payload = json.dumps({"question": SEED_QUESTION}).encode()
    pieces = [f"{len(payload[:10]):x}\r\n".encode() + payload[:10] + b"\r\n",
              f"{len(payload[10:]):x}\r\n".encode() + payload[10:] + b"\r\n", b"0\r\n\r\n"]
    status, _, body = raw_exchange(app_url, _head(app_url, "Transfer-Encoding: chunked\r\n"), pieces, read_timeout=30)
    assert status == 200 and json.loads(body)["found"] is True


# --------------------------------------------------------------------------- rate limits


@pytest.fixture
def limited_url(seed_kb, start_app):
    """A fresh app (full buckets): a burst of 3, then 6 requests a minute (one every 10 s, so
    a slow request under load does not refill a token in the middle of a test)."""

    def start(**update) -> str:
        update = {"rate_limit_per_minute": 6, "rate_limit_burst": 3} | update
        return start_app(seed_kb, seed_kb.settings.model_copy(update=update))

    return start


def _spend(client: httpx.Client, n: int, headers=None) -> list[int]:
    # An empty body is a quick 422 that still costs a token (nothing reaches the KB).
    return [client.post("/api/search", json={}, headers=headers).status_code for _ in range(n)]


def test_rate_limit_gives_429_with_retry_after(limited_url):
    with httpx.Client(base_url=limited_url(), timeout=30) as client:
        assert client.post("/api/ask", json={"question": SEED_QUESTION}).status_code == 200
        assert _spend(client, 2) == [422, 422]
        for path in ("/api/ask", "/api/ask/stream", "/api/search", "/gradio_api/queue/join"):  # one bucket
            response = client.post(path, json={"question": SEED_QUESTION})
            assert response.status_code == 429, path
            assert response.headers["retry-after"].isdigit() and 1 <= int(response.headers["retry-after"]) <= 10
            assert response.json()["error"] and response.json()["detail"] == []
        # Reads are not limited.
        assert client.get("/api/health").status_code == 200 and client.get("/").status_code == 200


def test_rate_limit_refills_after_retry_after(limited_url):
    with httpx.Client(base_url=limited_url(rate_limit_per_minute=60, rate_limit_burst=1), timeout=30) as client:
        assert _spend(client, 1) == [422]
        refused = client.post("/api/search", json={})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"  # a token a second
        time.sleep(1.05)
        assert _spend(client, 1) == [422]


def test_x_forwarded_for_is_ignored_from_an_untrusted_peer(limited_url):
    with httpx.Client(base_url=limited_url(), timeout=30) as client:
        codes = [client.post("/api/search", json={}, headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
                 for i in range(5)]
    assert codes == [422, 422, 422, 429, 429]  # every "client" is really 127.0.0.1


def test_x_forwarded_for_names_the_client_behind_a_trusted_proxy(limited_url):
    with httpx.Client(base_url=limited_url(trusted_proxies=["127.0.0.1"]), timeout=30) as client:
        alice = {"X-Forwarded-For": "203.0.113.7"}
        assert _spend(client, 4, alice) == [422, 422, 422, 429]
        # Another client behind the same proxy has its own bucket...
        assert _spend(client, 1, {"X-Forwarded-For": "198.51.100.2"}) == [422]
        # ... and alice cannot get a fresh one by writing a fake address in front of hers.
        assert _spend(client, 1, {"X-Forwarded-For": "192.0.2.99, 203.0.113.7"}) == [429]


def _scope(peer: str, xff: str | None = None) -> dict:
    headers = [(b"x-forwarded-for", xff.encode())] if xff is not None else []
    return {"type": "http", "client": (peer, 5555), "headers": headers}


@pytest.mark.parametrize(
    "peer, xff, trusted, expected",
    [
        ("203.0.113.5", "1.2.3.4", [], "203.0.113.5"),
        ("203.0.113.5", "1.2.3.4", ["10.0.0.0/8"], "203.0.113.5"),  # peer is not a proxy of ours
        ("10.0.0.2", "1.2.3.4", ["10.0.0.0/8"], "1.2.3.4"),
        ("10.0.0.2", "6.6.6.6, 1.2.3.4, 10.0.0.9", ["10.0.0.0/8"], "1.2.3.4"),  # right to left, past our hops
        ("10.0.0.2", "not-an-ip", ["10.0.0.0/8"], "10.0.0.2"),
        ("10.0.0.2", None, ["10.0.0.0/8"], "10.0.0.2"),
        ("::1", "[2001:db8::1]:443", ["::1"], "2001:db8::1"),
        ("10.0.0.2", "1.2.3.4:8080", ["10.0.0.2"], "1.2.3.4"),
    ],
)
def test_client_ip(peer, xff, trusted, expected):
    assert client_ip(_scope(peer, xff), [ipaddress.ip_network(t) for t in trusted]) == expected


def test_ipv6_clients_share_a_bucket_per_64():
    assert _bucket_key("2001:db8:1:2::1") == _bucket_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert _bucket_key("2001:db8:1:3::1") != _bucket_key("2001:db8:1:2::1")
    assert _bucket_key("198.51.100.1") == "198.51.100.1"


def test_token_bucket_burst_refill_and_bounded_memory():
    now = [0.0]
    bucket = TokenBucketLimiter(per_minute=120, burst=3, max_keys=2, clock=lambda: now[0])
    assert [bucket.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.acquire("a") == pytest.approx(0.5)  # 2 tokens a second
    now[0] = 0.5
    assert bucket.acquire("a") == 0.0 and bucket.acquire("a") > 0
    now[0] = 100.0
    assert [bucket.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # refilled, capped at the burst
    bucket.acquire("b"), bucket.acquire("c")
    assert len(bucket._buckets) == 2 and "a" not in bucket._buckets  # least recently seen dropped


# --------------------------------------------------------------------------- issue 18: the anonymous 500s

LONE = "\ud800"  # JSON's "\ud800": a lone surrogate, which no encoding holds
ASK = ["锦州", None, None, None, "default", "", "", ""]  # the chat's ask event: question, state slots, kb, filters
DEEP = b"[" * 1500 + b"]" * 1500


def _events(url: str) -> dict[str, int]:
    return {d["api_name"]: d["id"] for d in httpx.get(url + "/config", timeout=30).json()["dependencies"]}


def _post_raw(url: str, path: str, body: bytes) -> httpx.Response:
    return httpx.post(url + path, content=body, headers={"content-type": "application/json"}, timeout=60)


def _json(value) -> bytes:
    return json.dumps(value).encode()  # ensure_ascii: "\ud800" goes over the wire as the escape


def test_lone_surrogates_are_refused_everywhere_text_is_taken(app_url):
    events = _events(app_url)
    user = {"role": "user", "content": "锦州" + LONE}
    cases = [
        ("/v1/chat/completions", {"model": "default", "messages": [user]}),
        ("/v1/chat/completions", {"model": "default", "messages": [{"role": "user", "content": [{"type": "text", "text": "锦" + LONE}]}]}),
        ("/v1/chat/completions", {"model": "default", "messages": [user, {"role": "assistant", "content": "好"},
                                                                   {"role": "user", "content": "锦州"}]}),
        ("/api/ask", {"question": "锦州", "history": [user]}),
        ("/api/ask", {"question": "锦州" + LONE}),
        ("/gradio_api/run/predict", {"data": ["锦州" + LONE, *ASK[1:]], "fn_index": events["ask"], "session_hash": "abcdefgh12"}),
        ("/gradio_api/run/predict", {"data": ["锦州" + LONE, None, "default"], "fn_index": events["brief"],
                                     "session_hash": "abcdefgh12"}),
        ("/gradio_api/run/ask", {"data": ["锦州" + LONE, *ASK[1:]]}),
    ]
    for path, body in cases:
        response = _post_raw(app_url, path, _json(body))
        assert response.status_code == 422 and response.json()["error"], (path, response.status_code, response.text[:200])


def test_json_nested_1000_deep_is_a_400_on_gradios_routes_as_on_the_apis(app_url):
    for path, body in (("/gradio_api/queue/join", b'{"data":' + DEEP + b',"fn_index":1,"session_hash":"abcdefgh12"}'),
                       ("/gradio_api/call/ask", b'{"data":' + DEEP + b"}"), ("/gradio_api/run/ask", DEEP),
                       ("/api/ask", b'{"question":' + DEEP + b"}")):
        response = _post_raw(app_url, path, body)
        assert response.status_code == 400 and response.json()["error"], (path, response.status_code, response.text[:200])


def test_gradio_routes_that_answered_500_are_a_clean_4xx(app_url):
    events = _events(app_url)
    cases = [
        ("/gradio_api/call/v2/ask", {"question": "锦州"}, 404),  # neither the page nor gradio_client sends it
        ("/gradio_api/call/v2/ask", {"data": ASK}, 404),
        ("/gradio_api/call/predict", {"data": ASK, "fn_index": events["ask"]}, 404),  # call/ has no fn_index
        ("/gradio_api/call/predict", {"data": ASK}, 404),
    ]
    for value in (99, 10**30, -1):  # the briefing's examples: two
        cases.append(("/gradio_api/run/predict", {"data": [value], "fn_index": events["load_example"],
                                                  "session_hash": "abcdefgh12"}, 422))
        cases.append(("/gradio_api/queue/join", {"data": [value], "fn_index": events["load_example"],
                                                 "session_hash": "abcdefgh12"}, 422))
    for path, body, status in cases:
        response = _post_raw(app_url, path, _json(body))
        assert response.status_code == status and response.json()["error"], (path, body, response.status_code, response.text[:200])
    # The page's own example click still loads the example.
    response = _post_raw(app_url, "/gradio_api/run/predict", _json({"data": [1], "fn_index": events["load_example"],
                                                                     "session_hash": "abcdefgh12"}))
    assert response.status_code == 200 and "锦州云计算产业" in response.text
