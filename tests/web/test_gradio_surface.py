"""What the Gradio half of the app accepts (issue 9 §1, §5), through real HTTP against the real
app: no request reads a file of the host, names a file, runs an event the page does not have,
or gets a 5xx; the app keeps answering while such requests arrive. See web/gradio_guard.py."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from web.asgi import create_app

SEED_QUESTION = "锦州的“三个开放”是什么？"
SECRET = "kbqa-test-secret-7f3a9c"
CHOICE = ["default", "", "", ""]
SESSION = "k3j9x0q2ab"  # a session id of the page's shape (Math.random().toString(36).substring(2))  # the knowledge base and the filters (region, date from, date to)


def ask_data(question: object) -> list:
    """The chat event's inputs: the question, history, turns and language (server-side state:
    null), the knowledge base and the filters."""
    return [question, None, None, None, *CHOICE]


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """A file outside anything the app serves, holding a marker no response may contain."""
    path = tmp_path_factory.mktemp("outside") / "secret.txt"
    path.write_text(SECRET * 10, encoding="utf-8")
    return path


def file_ref(path: str | Path) -> dict:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


def attack_bodies(path: str | Path) -> list[tuple[str, dict]]:
    """The reported request and its variants: every write route of Gradio's, the file in the
    history slot, in the question slot, bare, inside a message, and with the fn_index route."""
    ref = file_ref(path)
    in_history = [{"role": "user", "content": [{"type": "file", "file": ref}]}]
    bodies = []
    for route in ("call/ask", "call/v2/ask", "run/ask", "api/ask", "run/predict"):
        for data in (["锦州", in_history], [ref, None], [ref, []], [{"path": str(path)}, None]):
            body = {"data": data}
            if route == "run/predict":
                body["fn_index"] = 1
            bodies.append((f"/gradio_api/{route}", body))
    for data in (["锦州", in_history], [ref, None], [[ref], None]):
        bodies.append(("/gradio_api/queue/join", {"data": data, "fn_index": 1, "session_hash": "attacker01"}))
    bodies.append(("/gradio_api/queue/join",
                   {"data": ["x", None, None, None], "fn_index": 1, "session_hash": "attacker01", "event_data": ref}))
    return bodies


def assert_refused_and_nothing_leaks(client: httpx.Client, path: str, body: dict, marker: str) -> None:
    response = client.post(path, json=body)
    assert 400 <= response.status_code < 500, (path, body, response.status_code, response.text[:300])
    assert response.json()["error"]
    assert marker not in response.text
    event_id = response.json().get("event_id")
    assert event_id is None  # refused before Gradio queued anything


def test_the_reported_file_read_is_refused_on_every_route(app_url, planted, seed_kb):
    with httpx.Client(base_url=app_url, timeout=30) as client:
        for path, body in attack_bodies(planted) + attack_bodies("/etc/passwd"):
            assert_refused_and_nothing_leaks(client, path, body, SECRET)
            assert_refused_and_nothing_leaks(client, path, body, "root:x:0:0")
        # The file-serving routes are closed whatever the path.
        for url in (f"/gradio_api/file={planted}", "/gradio_api/file=/etc/passwd", f"/gradio_api/file/{planted}",
                    "/gradio_api/file=/tmp/gradio/x/passwd", "/gradio_api/proxy=http://127.0.0.1:9/x",
                    "/file=/etc/passwd", "/gradio_api/stream/abc/0/1/playlist.m3u8", "/monitoring",
                    "/gradio_api/run-history/records", "/gradio_api/dev/reload", "/gradio_api/upload_progress"):
            response = client.get(url)
            assert response.status_code == 404, (url, response.status_code)
            assert SECRET not in response.text and "root:x:0:0" not in response.text


def test_the_app_keeps_answering_while_dev_zero_is_requested(app_url):
    """``/dev/zero`` once pinned a core and stopped the app (health silent 90 s+)."""
    stop = threading.Event()
    statuses: list[int] = []

    def attack() -> None:
        with httpx.Client(base_url=app_url, timeout=30) as client:
            while not stop.is_set():
                for path, body in attack_bodies("/dev/zero"):
                    statuses.append(client.post(path, json=body).status_code)

    attackers = [threading.Thread(target=attack, daemon=True) for _ in range(2)]
    for thread in attackers:
        thread.start()
    try:
        time.sleep(0.5)
        with httpx.Client(base_url=app_url, timeout=5) as client:
            for _ in range(5):
                t0 = time.monotonic()
                assert client.get("/api/health").status_code == 200
                assert time.monotonic() - t0 < 1.0
                time.sleep(0.2)
    finally:
        stop.set()
        for thread in attackers:
            thread.join(timeout=30)
    assert statuses and all(400 <= s < 500 for s in statuses), set(statuses)


def test_gradio_writes_nothing_to_its_cache(seed_kb, start_app, planted):
    """The app's Gradio cache is its own folder and stays empty: the attacks above, the chat and
    a briefing through the page's own events write nothing there."""
    app = create_app(seed_kb, seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0}))
    from web.gradio_guard import GradioGuard

    demo = next(route.app.demo for route in app.routes if isinstance(getattr(route, "app", None), GradioGuard))
    assert demo.has_launched is True and demo.allowed_paths == []  # Gradio's own path check runs
    cache = Path(demo.GRADIO_CACHE)
    assert cache.is_dir() and "kbqa-gradio-" in cache.name and not any(cache.iterdir())
    from tests.web.conftest import serve

    with serve(app, seed_kb.settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        for path, body in attack_bodies(planted):
            client.post(path, json=body)
        brief = next(d["id"] for d in client.get("/config").json()["dependencies"] if d["api_name"] == "brief")
        for fn_index, data in ((1, ask_data(SEED_QUESTION)), (brief, ["锦州数字政府建设", None, "default"])):
            joined = client.post("/gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": "cachetest01"})
            assert joined.status_code == 200, joined.text
            with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": "cachetest01"}) as stream:
                for line in stream.iter_lines():
                    if '"process_completed"' in line:
                        assert '"success":true' in line.replace(" ", ""), line[:300]
                        break
    assert [p for p in cache.rglob("*")] == []


def test_the_chat_event_works_through_gradio_client(app_url):
    from gradio_client import Client

    client = Client(app_url + "/", verbose=False)
    question, chatbot, sources = client.predict(SEED_QUESTION, api_name="/ask")  # state is not an output
    assert question == "" and "开放数据资源" in chatbot[-1]["content"][0]["text"] and 'id="kb-src-1-1"' in sources
    # The server keeps the conversation: a second question in the same session shows both.
    _, chatbot, _ = client.predict("华为与锦州在2017年签署了什么协议？", api_name="/ask")
    assert len(chatbot) == 4


@pytest.mark.parametrize(
    "path, body, status",
    [
        ("/gradio_api/queue/join", {"data": ["x", None], "fn_index": 99, "session_hash": SESSION}, 404),
        ("/gradio_api/queue/join", {"data": ["x", None], "fn_index": -1, "session_hash": SESSION}, 404),
        ("/gradio_api/queue/join", {"data": ["x", None], "fn_index": "1", "session_hash": SESSION}, 404),
        ("/gradio_api/queue/join", {"data": ["x", None], "session_hash": SESSION}, 422),
        ("/gradio_api/queue/join", {"data": ask_data(None), "fn_index": 1, "session_hash": SESSION}, 422),
        ("/gradio_api/queue/join", {"data": ask_data(123), "fn_index": 1, "session_hash": SESSION}, 422),
        ("/gradio_api/queue/join", {"data": [SEED_QUESTION, None, None, None], "fn_index": 1, "session_hash": SESSION}, 422),
        # The knowledge base's and the filters' slots take text only, like the question's.
        ("/gradio_api/queue/join", {"data": [*ask_data("x")[:4], 1, "", "", ""], "fn_index": 1, "session_hash": SESSION}, 422),
        ("/gradio_api/queue/join", {"data": [*ask_data("x")[:4], ["default"], "", "", ""], "fn_index": 1,
                                    "session_hash": SESSION}, 422),
        ("/gradio_api/queue/join", {"data": [*ask_data("x")[:5], {"path": "/etc/passwd"}, "", ""], "fn_index": 1,
                                    "session_hash": SESSION}, 422),
        ("/gradio_api/queue/join", {"data": "x", "fn_index": 1, "session_hash": SESSION}, 422),
        ("/gradio_api/queue/join", {"data": ["x"], "fn_index": 1, "session_hash": SESSION}, 422),
        ("/gradio_api/queue/join", [1, 2], 422),
        ("/gradio_api/call/brief", {"data": ["x"]}, 404),
        ("/gradio_api/run/brief", {"data": ["x"]}, 404),
        ("/gradio_api/api/brief", {"data": ["x"]}, 404),
        ("/gradio_api/run/ask", {"data": [0], "fn_index": 0}, 404),  # an fn_index wins over the name in Gradio
        ("/gradio_api/call/nonexistent", {"data": ["x"]}, 404),
        ("/gradio_api/run/nonexistent", {"data": ["x"]}, 404),
        ("/gradio_api/api/nonexistent", {"data": ["x"]}, 404),
    ],
)
def test_unknown_events_and_odd_data_are_4xx_with_a_plain_message(app_url, path, body, status):
    response = httpx.post(app_url + path, json=body, timeout=30)
    assert response.status_code == status, response.text
    assert response.json()["error"] and "Traceback" not in response.text


def test_a_body_that_is_not_json_is_a_422(app_url):
    response = httpx.post(app_url + "/gradio_api/queue/join", content=b"\xff\xfe{", timeout=30,
                          headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]


@pytest.mark.parametrize("url", ["/gradio_api/queue/data?session_hash=abcdefgh12", "/gradio_api/call/ask/x",
                                 "/gradio_api/call/v2/ask/x", "/gradio_api/call/brief/x"])
def test_streams_of_unknown_sessions_and_events_are_404(app_url, url):
    response = httpx.get(app_url + url, timeout=30)
    assert response.status_code == 404 and response.json()["error"]


def test_error_events_do_not_leak_internals(app_url, seed_kb, monkeypatch):
    """An exception inside the chat's event reaches the page as a sentence of the page's own
    (issue 21 §2: it was a bare "Error"), never the exception's text."""
    def broken(*args, **kwargs):
        raise RuntimeError("internal detail: /srv/secret/path 'NoneType' object has no attribute 'strip'")

    monkeypatch.setattr(seed_kb, "ask_stream", broken)
    with httpx.Client(base_url=app_url, timeout=30) as client:
        event_id = client.post("/gradio_api/call/ask", json={"data": ask_data(SEED_QUESTION)}).json()["event_id"]
        text = client.get(f"/gradio_api/call/ask/{event_id}").text
    assert "event: complete" in text and json.dumps("抱歉，回答这个问题时出了问题")[1:-1] in text  # JSON escapes it
    assert "internal detail" not in text and "NoneType" not in text and "/srv/secret" not in text


def test_the_event_table_the_guard_knows_is_the_pages(seed_kb):
    """The guard's view of the page: ask is the one public event; every event's inputs are
    text, an example's index or server-side state."""
    import gradio as gr

    from kbqa.knowledge_base import KnowledgeBases
    from web.chat.layout import build_chat
    from web.feedback import FeedbackStore
    from web.gradio_guard import INPUT_TYPES, GradioGuard

    kbs = KnowledgeBases.serving(seed_kb)
    for demo, extra in ((build_chat(kbs), []),
                        (build_chat(kbs, feedback=FeedbackStore(Path("/nonexistent/f.db")), admin=True), ["feedback"])):
        guard = GradioGuard(lambda *a: None, demo=demo)
        assert list(guard.public) == ["ask"]
        # The vote's one input is the server-side history (a gr.State); the knowledge base's
        # selector is a dropdown, whose value is its choice's name.
        assert {type(block) for fn in guard.events.values() for block in fn.inputs} <= set(INPUT_TYPES)
        assert INPUT_TYPES == {gr.Textbox: (str,), gr.Dropdown: (str,), gr.Dataset: (int,), gr.State: (type(None),)}
        assert json.dumps(sorted(fn.api_name for fn in guard.events.values())) == json.dumps(
            sorted(["ask", "ask_example", "brief", "clear", "kb_examples", "language", "load_example", "load_page", *extra])
        )  # the admin tab adds no event: its script calls the JSON API
        assert isinstance(demo, gr.Blocks)


@pytest.fixture(scope="module")
def vote_app(seed_kb, start_app, tmp_path_factory):
    """The app on the seed KB with its votes in a file of this module's."""
    db = tmp_path_factory.mktemp("feedback") / "feedback.sqlite3"
    url = start_app(seed_kb, seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0, "feedback_db": db}))
    config = httpx.get(url + "/config", timeout=30).json()
    fn_index = next(d["id"] for d in config["dependencies"] if d["api_name"] == "feedback")
    return url, fn_index, db


def run_event(client: httpx.Client, session: str, body: dict) -> str:
    """Join the queue and read the session's stream until the event completes; its last line."""
    joined = client.post("/gradio_api/queue/join", json=body | {"session_hash": session})
    assert joined.status_code == 200, joined.text
    with client.stream("GET", "/gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if '"process_completed"' in line:
                return line
    raise AssertionError("no process_completed")


def test_a_vote_stores_the_servers_own_question_and_answer(vote_app):
    import sqlite3

    url, fn_index, db = vote_app
    with httpx.Client(base_url=url, timeout=60) as client:
        run_event(client, "voter0001", {"data": ask_data(SEED_QUESTION), "fn_index": 1})
        # The page's value says anything; what is stored is the server's history at that index.
        vote = {"index": 1, "value": ["<b>forged answer</b>"], "liked": False}
        line = run_event(client, "voter0001", {"data": [None], "fn_index": fn_index, "event_data": vote})
        assert '"success":true' in line.replace(" ", "")
        # A vote on the question's index, or past the end, stores nothing.
        for index in (0, 7, [99, 0]):
            run_event(client, "voter0001", {"data": [None], "fn_index": fn_index,
                                        "event_data": {"index": index, "value": "x", "liked": True}})
    rows = sqlite3.connect(db).execute("SELECT question, answer, vote FROM feedback").fetchall()
    assert len(rows) == 1
    question, answer, vote = rows[0]
    assert question == SEED_QUESTION and "开放数据资源" in answer and "[1]" in answer and vote == -1
    assert "<" not in answer and "forged" not in answer


@pytest.mark.parametrize("event_data", [
    None, "x", [], {"index": 1, "liked": True}, {"index": 1, "value": "x", "liked": True, "extra": 1},
    {"index": "1", "value": "x", "liked": True}, {"index": [1, 2, 3], "value": "x", "liked": True},
    {"index": 1, "value": {"path": "/etc/passwd"}, "liked": True}, {"index": 1, "value": [{"x": 1}], "liked": True},
    {"index": 1, "value": "x", "liked": "maybe"}, {"index": 1, "value": "x", "liked": 1},
    {"index": 1, "value": [{"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}], "liked": True},
])
def test_a_vote_carries_gradios_like_data_and_nothing_else(vote_app, event_data):
    url, fn_index, _ = vote_app
    body = {"data": [None], "fn_index": fn_index, "session_hash": "voter0002", "event_data": event_data}
    response = httpx.post(url + "/gradio_api/queue/join", json=body, timeout=30)
    assert response.status_code == 422, response.text
    assert response.json()["error"]
    # And the vote's one input is state: text there is refused as for any state slot.
    body = {"data": ["x"], "fn_index": fn_index, "session_hash": "voter0002",
            "event_data": {"index": 1, "value": "x", "liked": True}}
    assert httpx.post(url + "/gradio_api/queue/join", json=body, timeout=30).status_code == 422


def test_an_example_is_asked_by_its_index_and_the_language_switch_takes_state_only(app_url):
    """The page's example click and 中文/English switch through the guard: an example is an
    index into the questions this session's page load offered (an index it was not offered
    asks nothing), the switch sends nothing but state slots; anything else is a 4xx."""
    with httpx.Client(base_url=app_url, timeout=60) as client:
        events = {d["api_name"]: d["id"] for d in client.get("/config").json()["dependencies"]}
        example, language, load = events["ask_example"], events["language"], events["load_page"]
        assert '"success":true' in run_event(client, "examples01", {"data": [], "fn_index": load}).replace(" ", "")
        line = run_event(client, "examples01", {"data": [0, None, None, None, None, *CHOICE], "fn_index": example})
        assert '"success":true' in line.replace(" ", "") and "kb-cite" in line and "kb-src-1-1" in line
        line = run_event(client, "examples01", {"data": [None, None, None, "default"], "fn_index": language})
        assert "Ask" in line and "Briefing" in line and "Q1: " in line  # the panel drawn again, in English
        line = run_event(client, "examples01", {"data": [99, None, None, None, None, *CHOICE], "fn_index": example})
        assert '"success":true' in line.replace(" ", "") and "kb-cite" not in line  # not offered: nothing asked
        for data in (["锦州", None, None, None, None, *CHOICE], [{"path": "/etc/passwd"}, None, None, None, None, *CHOICE],
                     [0, "zh", None, None, None, *CHOICE], [0, None, None, None, ["x"], *CHOICE],
                     [0, None, None, None, None, None, "", "", ""]):
            response = client.post("/gradio_api/queue/join", json={"data": data, "fn_index": example, "session_hash": "examples01"})
            assert response.status_code == 422, (data, response.text)
        for data in (["en", None, None, "default"], [None, [], None, "default"], [None, None, None, 0]):
            response = client.post("/gradio_api/queue/join", json={"data": data, "fn_index": language, "session_hash": "examples01"})
            assert response.status_code == 422, (data, response.text)


def test_a_knowledge_base_the_page_does_not_offer_is_not_asked(app_url):
    """The selector's value must be one of the choices the session's page offers, as Gradio's
    dropdown checks too (its check answered run/ and api/ with a 500: the fuzz's find)."""
    events = _events_of(app_url)
    with httpx.Client(base_url=app_url, timeout=60) as client:
        for path, body in (("/gradio_api/queue/join", {"data": [*ask_data(SEED_QUESTION)[:4], "/etc/passwd", "", "", ""],
                                                       "fn_index": 1, "session_hash": "forgedkb01"}),
                           ("/gradio_api/run/predict", {"data": ["锦州", None, ""], "fn_index": events["brief"]}),
                           ("/gradio_api/api/predict", {"data": ["锦州", None], "fn_index": events["kb_examples"]})):
            response = client.post(path, json=body)
            assert response.status_code == 422 and "choices" in response.json()["error"], (path, response.text)
        line = run_event(client, "forgedkb02", {"data": ask_data(SEED_QUESTION), "fn_index": 1})
        assert "开放数据资源" in line  # the offered one is asked


def _events_of(url: str) -> dict[str, int]:
    return {d["api_name"]: d["id"] for d in httpx.get(url + "/config", timeout=30).json()["dependencies"]}


# --------------------------------------------------------------------------- issue 18: sessions, the queue, heartbeats


def guarded(app):
    """The GradioGuard of an app made by create_app."""
    from web.gradio_guard import GradioGuard

    return next(route.app for route in app.routes if isinstance(getattr(route, "app", None), GradioGuard))


@pytest.fixture
def own_app(seed_kb):
    """A fresh app and its server (its own Gradio queue: these tests stop or fill it)."""
    from tests.web.conftest import serve

    def start(**update):
        settings = seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0, **update})
        app = create_app(seed_kb, settings)
        return app, serve(app, settings)

    return start


def test_the_reported_empty_session_requests_no_longer_stop_the_queue(own_app):
    """The report: ten joins of the briefing event with sessions "filler<i>", then two with "":
    the second empty one ended Gradio's queue loop (a KeyError), and every queue/join after
    was a 503 "Queue is stopped." for every visitor until a restart."""
    app, server = own_app()
    with server as url, httpx.Client(base_url=url, timeout=60) as client:
        brief = next(d["id"] for d in client.get("/config").json()["dependencies"] if d["api_name"] == "brief")
        body = {"data": ["锦州数字政府建设和云计算产业", None, "default"], "fn_index": brief}
        statuses = [client.post("/gradio_api/queue/join", json=body | {"session_hash": f"filler{i}"}).status_code
                    for i in range(10)]
        statuses += [client.post("/gradio_api/queue/join", json=body | {"session_hash": ""}).status_code for _ in range(2)]
        assert statuses == [422] * 12
        time.sleep(0.5)
        assert client.get("/api/health").status_code == 200
        line = run_event(client, "k3j9x0q2ab", {"data": ["锦州数字政府建设", None, "default"], "fn_index": brief})
        assert '"success":true' in line.replace(" ", "")
        line = run_event(client, "0c4e2b7a-5d1f-4a8e-9b3c-2f6d8e1a7b90", {"data": ask_data(SEED_QUESTION), "fn_index": 1})
        assert "开放数据资源" in line  # gradio_client's uuid4 sessions too


BAD_SESSIONS = ["", "filler0", "a" * 21, "../../x", "abc def123", "ABCDEFGH12", "abcdefgh12\n", "ｆｕｌｌｗｉｄｔｈ１２", 12345678]


@pytest.mark.parametrize("session", BAD_SESSIONS, ids=[repr(s) for s in BAD_SESSIONS])
def test_a_session_id_not_of_gradios_shape_is_refused_on_every_route(app_url, session):
    with httpx.Client(base_url=app_url, timeout=30) as client:
        writes = [("/gradio_api/queue/join", {"data": ask_data("x"), "fn_index": 1}),
                  ("/gradio_api/run/ask", {"data": ask_data("x")}), ("/gradio_api/call/ask", {"data": ask_data("x")}),
                  ("/gradio_api/api/ask", {"data": ask_data("x")}),
                  ("/gradio_api/run/predict", {"data": ask_data("x"), "fn_index": 1}),
                  ("/gradio_api/cancel", {"event_id": "abc", "fn_index": 1}), ("/gradio_api/reset", {"event_id": "abc"})]
        for path, body in writes:
            response = client.post(path, json=body | {"session_hash": session})
            assert response.status_code == 422 and "session" in response.json()["error"], (path, response.text)
        if isinstance(session, str):
            for url, params in (("/gradio_api/queue/data", {"session_hash": session}),
                                (f"/gradio_api/heartbeat/{quote(session, safe='')}", None)):
                response = client.get(url, params=params)
                assert response.status_code in (404, 422) and response.json()["error"], (url, response.text)
        # Two values: Gradio would read the last one, so neither is taken on trust.
        response = client.get("/gradio_api/queue/data?session_hash=abcdefgh12&session_hash=")
        assert response.status_code == 422


def test_health_fails_once_the_queue_loop_has_stopped_for_any_reason(own_app):
    """Whatever ends Gradio's queue loop (here: an exception where it picks the next event),
    /api/health answers 503 from then on, so an orchestrator restarts the app."""
    app, server = own_app()
    queue = guarded(app).demo._queue
    with server as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/api/health").status_code == 200

        def broken():
            raise RuntimeError("the queue loop fails")

        queue.get_events = broken
        client.post("/gradio_api/queue/join", json={"data": ask_data("x"), "fn_index": 1, "session_hash": "abcdefgh12"})
        deadline = time.monotonic() + 10
        while not queue.stopped and time.monotonic() < deadline:
            time.sleep(0.05)
        health = client.get("/api/health")
        assert health.status_code == 503 and "queue has stopped" in health.json()["error"], health.text
        joined = client.post("/gradio_api/queue/join", json={"data": ask_data("x"), "fn_index": 1,
                                                             "session_hash": "abcdefgh13"})
        assert joined.status_code == 503


def test_session_ids_stay_out_of_the_access_log(seed_kb):
    """A session id is the key of a visitor's conversation: uvicorn's access log (on in
    app.py) shows the path and query of queue/data and heartbeat requests without it."""
    import logging

    import uvicorn

    from web.server import server_config

    settings = seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0})
    config = server_config(create_app(seed_kb, settings), settings, host="127.0.0.1", port=0, log_level="info")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    logging.getLogger("uvicorn.access").addHandler(handler)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        with httpx.Client(base_url=url, timeout=30) as client:
            line = run_event(client, "secret0session", {"data": ask_data(SEED_QUESTION), "fn_index": 1})
            assert "开放数据资源" in line
            with client.stream("GET", "/gradio_api/heartbeat/secret1session") as stream:
                assert stream.status_code == 200
        time.sleep(0.2)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        logging.getLogger("uvicorn.access").removeHandler(handler)
    assert any("queue/data?session_hash=<redacted>" in line for line in lines), lines
    assert any("/heartbeat/<redacted>" in line for line in lines), lines
    assert not any("secret0session" in line or "secret1session" in line for line in lines), lines


def _open_files() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def test_held_heartbeats_are_bounded_per_client_and_in_all(own_app):
    """The report: 100 held GET /gradio_api/heartbeat/<anything> streams, open for ever (open
    files 45 -> 145). Now a client holds at most max_heartbeats_per_client, all clients
    max_heartbeats; the extra ones are refused at once."""
    from contextlib import ExitStack

    app, server = own_app(max_heartbeats_per_client=3, max_heartbeats=5, trusted_proxies=["127.0.0.1"])
    guard = guarded(app)
    with server as url, ExitStack() as held:

        def heartbeat(client_ip: str, n: int) -> httpx.Response:
            client = held.enter_context(httpx.Client(base_url=url, timeout=5, headers={"X-Forwarded-For": client_ip}))
            return held.enter_context(client.stream("GET", f"/gradio_api/heartbeat/abcdefgh{n:02d}"))

        assert [heartbeat("198.51.100.1", n).status_code for n in range(3)] == [200] * 3
        before = _open_files()
        t0 = time.monotonic()
        for n in range(30):  # each refused at once, its connection closed by this client
            with httpx.Client(base_url=url, timeout=5, headers={"X-Forwarded-For": "198.51.100.1"}) as client:
                response = client.get(f"/gradio_api/heartbeat/abcdefgh{n:02d}")
            assert response.status_code == 429 and response.json()["error"]
        assert time.monotonic() - t0 < 10
        assert _open_files() <= before + 4
        assert [heartbeat("198.51.100.2", n).status_code for n in range(2)] == [200] * 2
        refused = heartbeat("198.51.100.3", 0)
        assert refused.status_code == 503
        assert sum(guard.heartbeats.values()) == 5
    deadline = time.monotonic() + 10  # closed streams are counted out
    while sum(guard.heartbeats.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not guard.heartbeats



def test_the_config_shows_no_memory_address(app_url):
    """The report: /config held "<function default_delete_callback at 0x7f…>" (a gr.State's prop)."""
    import re

    for path in ("/config", "/"):
        text = httpx.get(app_url + path, timeout=30).text
        assert not re.search(r"0x[0-9a-f]{6,}", text), re.search(r".{60}0x[0-9a-f]{6,}", text)
    assert httpx.get(app_url + "/config", timeout=30).json()["components"]  # the config itself is whole


def test_one_client_cannot_fill_the_briefings_queue(own_app, seed_kb, monkeypatch):
    """The report: the briefing event ran one at a time for everyone, and 30 briefings queued by
    one client slowed everyone's. A client now has at most max_events_per_client events in the
    queue (the rest 429 at once), and another client's briefing runs meanwhile."""
    brief_now = seed_kb.brief

    def slow_brief(*args, **kwargs):  # every briefing takes 2 s: none ends while the flood arrives
        time.sleep(2)
        return brief_now(*args, **kwargs)

    monkeypatch.setattr(seed_kb, "brief", slow_brief)
    app, server = own_app(trusted_proxies=["127.0.0.1"], max_events_per_client=3)
    with server as url:
        flooder = httpx.Client(base_url=url, timeout=60, headers={"X-Forwarded-For": "198.51.100.7"})
        visitor = httpx.Client(base_url=url, timeout=60, headers={"X-Forwarded-For": "198.51.100.8"})
        with flooder, visitor:
            brief = next(d["id"] for d in flooder.get("/config").json()["dependencies"] if d["api_name"] == "brief")
            statuses = [flooder.post("/gradio_api/queue/join", json={
                "data": [f"锦州数字政府建设{i}", None, "default"], "fn_index": brief, "session_hash": f"flooder{i:04d}"}).status_code
                for i in range(30)]
            assert statuses[:3] == [200] * 3 and statuses[3:] == [429] * 27, statuses
            t0 = time.monotonic()
            line = run_event(visitor, "visitor0001", {"data": ["锦州云计算产业", None, "default"], "fn_index": brief})
            assert '"success":true' in line.replace(" ", "") and time.monotonic() - t0 < 3.9  # not behind the 3
    assert guarded(app).demo.fns[brief].concurrency_limit == 4
