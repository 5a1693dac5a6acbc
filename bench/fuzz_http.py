"""``python -m bench.fuzz_http``: the longer fuzz of the HTTP surface that CI's
tests/web/test_fuzz_openapi.py samples (issue 18's "done when").

Against the real app (seed knowledge base, uvicorn on loopback, rate limits off, an admin key
configured), within a time budget:

* schemathesis over ``/openapi.json`` (its CLI: examples, coverage, fuzzing and stateful
  phases), once without the admin key and once with it;
* a fuzz of every Gradio route the guard leaves open (``queue/join``, ``run/ call/ api/``,
  ``cancel``, ``reset``, ``queue/data``, ``heartbeat``, call results): valid bodies of the
  page's events with values, keys, session ids and event indexes swapped for random JSON.

Prints every status count and each 5xx (method, path, body), and exits 1 if there was one.
``--minutes`` is the budget of each schemathesis run; the Gradio fuzz gets the same.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ADMIN_KEY = "bench-fuzz-admin-key-0123456789"


def serve(app, settings):
    import uvicorn

    from web.server import server_config

    server = uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


def schemathesis(url: str, seconds: int, key: str | None, out: Path) -> dict:
    """One schemathesis CLI run; its counts from the NDJSON events it writes."""
    events = out / f"schemathesis-{'admin' if key else 'anonymous'}.ndjson"
    command = [str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/openapi.json",
               "--checks", "not_a_server_error", "--max-time", str(seconds), "--request-timeout", "60",
               "--phases", "examples,coverage,fuzzing,stateful", "--continue-on-failure",
               "--report", "ndjson", "--report-ndjson-path", str(events)]
    if key:
        command += ["--header", f"Authorization: Bearer {key}"]
    t0 = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    tail = done.stdout.strip().splitlines()[-12:]
    statuses: Counter[int] = Counter()
    server_errors = []
    for line in events.read_text(encoding="utf-8").splitlines() if events.exists() else []:
        for interaction in _interactions(json.loads(line)):
            status = (interaction.get("response") or {}).get("status_code")
            if status is not None:
                statuses[status] += 1
                if status >= 500:
                    request = interaction.get("request", {})
                    body = request.get("body")
                    if isinstance(body, dict) and "$base64" in body:
                        body = base64.b64decode(body["$base64"]).decode("utf-8", "replace")
                    server_errors.append((request.get("method"), request.get("uri"), str(body)[:300]))
    return {"seconds": round(time.monotonic() - t0), "exit": done.returncode, "statuses": dict(sorted(statuses.items())),
            "server_errors": server_errors, "summary": tail}


def _interactions(event):
    """Every recorded request/response of an NDJSON event, wherever the event nests them."""
    stack = [event]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("request"), dict) and isinstance(item.get("response"), dict):
                yield item
            else:
                stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def random_json(rng: random.Random, depth: int = 0):
    choice = rng.randrange(12 if depth < 3 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, 1, -1, 99, 2**31, 10**30, -(10**30)])
    if choice == 3:
        return rng.choice([0.5, -1e308, 1e308])
    if choice in (4, 5, 6, 7):
        return rng.choice(["", "锦州", "\ud800", "x" * 5000, "../../etc/passwd", "<script>", "\x00", "数字政府" * 600,
                           "".join(rng.choices(string.printable, k=rng.randrange(40)))])
    if choice in (8, 9):
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["path", "url", "meta", "x", "data", "role", "content"]): random_json(rng, depth + 1)
            for _ in range(rng.randrange(3))}


def session(rng: random.Random):
    return rng.choice(["abcdefgh12", "0c4e2b7a-5d1f-4a8e-9b3c-2f6d8e1a7b90", "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=11)),
                       "", "a", "A" * 11, None, 5, "x y", "abcdefgh12\n", random_json(rng)])


def gradio_fuzz(url: str, seconds: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    config = httpx.get(url + "/config", timeout=30).json()
    events = {d["id"]: len(d["inputs"]) for d in config["dependencies"]}
    routes = ["/gradio_api/queue/join", "/gradio_api/run/ask", "/gradio_api/run/predict", "/gradio_api/call/ask",
              "/gradio_api/api/ask", "/gradio_api/api/predict", "/gradio_api/call/predict", "/gradio_api/cancel",
              "/gradio_api/reset", "/gradio_api/call/v2/ask"]
    statuses: Counter[int] = Counter()
    server_errors = []
    deadline = time.monotonic() + seconds
    n = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.monotonic() < deadline:
            n += 1
            fn_index = rng.choice([*events, *events, -1, 99, 10**30, "1", None])
            size = events.get(fn_index, rng.randrange(9)) if isinstance(fn_index, int) else rng.randrange(9)
            data = [rng.choice([None, "锦州的“三个开放”是什么？", "default", "", 0, 1]) for _ in range(size)]
            for _ in range(rng.randrange(3)):
                if data:
                    data[rng.randrange(len(data))] = random_json(rng)
            body = {"data": data if rng.random() < 0.9 else random_json(rng), "fn_index": fn_index,
                    "session_hash": session(rng), "event_data": None if rng.random() < 0.8 else random_json(rng),
                    "event_id": rng.choice(["abc", None, random_json(rng)])}
            for key in [k for k in body if rng.random() < 0.15]:
                del body[key]
            if rng.random() < 0.1:
                body[rng.choice(["trigger_id", "batched", "x"])] = random_json(rng)
            method = "POST"
            if rng.random() < 0.2:
                method, path = "GET", rng.choice([
                    f"/gradio_api/queue/data?session_hash={rng.choice(['abcdefgh12', '', 'zz', '%00'])}",
                    f"/gradio_api/heartbeat/{rng.choice(['abcdefgh12', 'x', '%0a', '..%2f'])}",
                    f"/gradio_api/call/ask/{rng.choice(['abc', 'x' * 80])}", "/config", "/gradio_api/info"])
                request = client.build_request(method, path)
            else:
                path = rng.choice(routes)
                content = json.dumps(body).encode() if rng.random() < 0.95 else b"[" * 2000 + b"]" * 2000
                request = client.build_request(method, path, content=content, headers={"content-type": "application/json"})
            # Streams (heartbeat, queue/data, call results) may stay open: read the status only.
            response = client.send(request, stream=True)
            status = response.status_code
            response.close()
            statuses[status] += 1
            if status >= 500:
                server_errors.append((method, path, json.dumps(body, ensure_ascii=True)[:300]))
    return {"requests": n, "statuses": dict(sorted(statuses.items())), "server_errors": server_errors}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="budget of each of the three runs")
    args = parser.parse_args()
    seconds = max(10, int(args.minutes * 60))

    from kbqa.knowledge_base import KnowledgeBase
    from kbcore.settings import Settings
    from web.asgi import create_app

    work = Path(tempfile.mkdtemp(prefix="kbqa-fuzz-"))
    settings = Settings(store=work / "store", lexical_cache=work / "bm25", rate_limit_per_minute=0,
                        admin_rate_limit_per_minute=0, admin_key=ADMIN_KEY)
    kb = KnowledgeBase(settings)
    kb.ensure_seeded()
    kb.ready()
    server, thread, url = serve(create_app(kb, settings), settings)
    results = {}
    try:
        results["schemathesis, no key"] = schemathesis(url, seconds, None, work)
        results["schemathesis, admin key"] = schemathesis(url, seconds, ADMIN_KEY, work)
        results["gradio routes"] = gradio_fuzz(url, seconds)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    print(json.dumps(results, ensure_ascii=False, indent=1))
    return 1 if any(r["server_errors"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
