"""What the Gradio half of the app accepts: the chat page's own events with text in, and the
reads its page and ``gradio_client`` make; nothing else reaches Gradio.

Why a guard in front of Gradio and not only Gradio's settings: Gradio copies any file a request
names into its cache before a component sees the value (``processing_utils.
async_move_files_to_cache`` walks every input, a Textbox's included), and its path check
(``_check_allowed``) returns early until ``Blocks.launch()`` has run, which a mounted app never
calls. A request naming ``/etc/passwd`` got it copied and served back; ``/dev/zero`` pinned a
core and stopped the app. So, at the root:

* every event input is text (a question, a filter, a knowledge base's name; or an example's
  index): a request whose ``data`` holds an object or a list, or whose body holds a file
  reference anywhere, is refused before Gradio parses it; the chat keeps its history on the
  server (``gr.State``), so no input needs more than text;
* a 👍/👎 (the chat's ``like`` event, input: server-side state) carries gr.LikeData's
  ``{index, value, liked}`` as its event data and nothing else (``_check_like``);
* only the page's own events run: ``fn_index`` must name one, and by name only the public
  ``ask`` (a ``fn_index`` wins over the name inside Gradio, so both are checked);
* Gradio's own path check runs anyway (``mark_launched``) with no ``allowed_paths``, and its
  cache is a private folder of the app's (``own_cache``);
* GETs are an allowlist: the page, its assets, the queue's event stream for a live session,
  and the result of a live ``call/ask`` event. Gradio's file, proxy, stream, monitoring and
  run-history routes are closed: this app serves no file through Gradio;
* an unknown session or event is a 404 here, not a 200 whose stream then fails inside
  Gradio ("response already started");
* a session id (``session_hash``) has the shape Gradio's own clients give it, on every route
  that takes one: an empty one made Gradio queue an event under ``""`` and announce it under
  an id of its own, and the ``KeyError`` ended the queue's loop for every visitor (issue 18);
* the queue holds a few events per client (``max_events_per_client``), so one client cannot
  fill an event's queue (the briefing's) for everyone; the heartbeat streams, which need no
  session and never end, are bounded per client and in all.

The body has been read (and bounded) by ``BodyLimitMiddleware`` before it gets here.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import shutil
import tempfile
import weakref
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import gradio as gr
from starlette.types import ASGIApp, Receive, Scope, Send

from web.errors import error_response
from web.middleware import client_key, replaying

log = logging.getLogger(__name__)

# The page, its build and its static files; Gradio serves these from its package.
PAGE_GETS = re.compile(
    r"^/(?:|config/?|theme\.css|favicon\.ico|robots\.txt|manifest\.json|pwa_icon(?:/\d+)?"
    r"|(?:assets|static|svelte)/.+)$"
)
# Reads of Gradio's API the page and gradio_client make; queue/data and call results are
# checked against the live queue below.
API_GETS = re.compile(r"^/gradio_api/(?:info/?|app_id/?|startup-events|queue/data)$")
HEARTBEAT = re.compile(r"/gradio_api/heartbeat/(.*)", re.DOTALL)  # fullmatch: no "$" before a newline
CALL_RESULT = re.compile(r"^/gradio_api/call(?:/v2)?/([A-Za-z0-9_-]+)/([A-Za-z0-9_-]{1,64})$")
# Writes: the queue, the predict endpoints (by name, or "predict" with an fn_index on run/ and
# api/), cancel, reset. Not call/v2/, whose keyword-argument body neither the page nor
# gradio_client sends (it answered 500 to every body).
EVENT_WRITE = re.compile(r"^/gradio_api/(?:queue/join|(run|call|api)/([A-Za-z0-9_-]+)/?)$")
SESSION_WRITES = frozenset({"/gradio_api/cancel", "/gradio_api/reset"})
# The writes that put an event in Gradio's queue (run/ and api/ answer at once, unqueued).
QUEUED = re.compile(r"^/gradio_api/(?:queue/join|call/[A-Za-z0-9_-]+/?)$")
# A session id as Gradio's own clients make one: the page's Math.random().toString(36)
# .substring(2) (base 36, 10 to 12 characters in practice; under 8 has odds of about 2e-5),
# gradio_client's uuid4.
SESSION_HASH = re.compile(r"[0-9a-z]{8,20}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# What each kind of input on the page may carry: a textbox its text, a dropdown its choice (a
# string; Gradio checks it is one of the choices), an example's button its index; a gr.State's
# slot is sent as null and never read (its value lives on the server). Any other component is
# refused: the page has none as an event input.
INPUT_TYPES: dict[type, tuple[type, ...]] = {
    gr.Textbox: (str,), gr.Dropdown: (str,), gr.Dataset: (int,), gr.State: (type(None),)
}


def mark_launched(demo: gr.Blocks) -> None:
    """Let Gradio's own path check run for a mounted app.

    ``processing_utils._check_allowed`` skips every check while ``has_launched`` is False, and
    only ``Blocks.launch()`` sets it; ``gr.mount_gradio_app`` never does. Nothing else in
    Gradio 6.31 reads the flag (its hot-reload sets it the same way for a swapped app).
    """
    demo.has_launched = True


def own_cache(demo: gr.Blocks) -> Path:
    """Point every block's file cache at a private folder of this app (mode 0700, removed with
    the app) instead of the host-wide ``/tmp/gradio``. Nothing should ever be written there —
    no input takes a file, the upload route is closed, briefings download from the JSON API —
    and tests/web/test_gradio_surface.py checks that it stays empty."""
    cache = Path(tempfile.mkdtemp(prefix="kbqa-gradio-"))
    for block in (demo, *demo.blocks.values()):
        block.GRADIO_CACHE = str(cache)
    weakref.finalize(demo, shutil.rmtree, cache, True)
    return cache


def hide_object_reprs(demo: gr.Blocks) -> None:
    """Keep Python objects' reprs out of the page's config (``/config`` and the page itself):
    Gradio writes a gr.State's ``delete_callback`` as ``"<function default_delete_callback at
    0x7f…>"``, a memory address of the process (which weakens ASLR). Gradio builds the config
    again from each block's ``get_config`` (at startup, for a session's page), so each block's
    is wrapped to leave out the props that are functions (the page never reads them)."""

    def cleaned(get_config):
        def get_config_without_reprs(*args, **kwargs):
            config = get_config(*args, **kwargs)
            for name in [key for key, value in config.items() if callable(value)]:
                del config[name]  # a function: Gradio's JSON encoder writes its repr
            return config

        return get_config_without_reprs

    for block in demo.blocks.values():
        block.get_config = cleaned(block.get_config)
    demo.config = demo.get_config_file()


def queue_failure(demo: gr.Blocks) -> str | None:
    """Why the chat page's events no longer run, or None. Gradio's queue loop
    (``Queue.start_processing``) marks the queue stopped whatever ended it, and from then on
    every ``queue/join`` is a 503 until the process restarts; /api/health reports it (web/asgi.py)."""
    return "the chat page's event queue has stopped" if demo._queue.stopped else None


def _has_file_reference(value: Any) -> bool:
    """Any dict shaped like Gradio's FileData (a "path" or a "meta" type), at any depth."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "path" in item or "url" in item or isinstance(item.get("meta"), dict):
                return True
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


class GradioGuard:
    """The mounted chat app ``demo``'s ASGI app, wrapped (see the module docstring): every
    request that reaches Gradio passes here, and none of the app's own routes do."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        demo: gr.Blocks,
        trusted_proxies: Sequence[str] = (),
        max_events_per_client: int = 6,
        max_heartbeats_per_client: int = 8,
        max_heartbeats: int = 512,
    ) -> None:
        self.app = app
        self.demo = demo
        self.trusted_proxies = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        self.max_events_per_client = max_events_per_client
        self.max_heartbeats_per_client = max_heartbeats_per_client
        self.max_heartbeats = max_heartbeats
        self.heartbeats: Counter[str] = Counter()  # open heartbeat streams by client
        # The page's events (those that run Python; "js only" events never reach the server).
        self.events = {index: fn for index, fn in demo.fns.items() if fn.fn is not None}
        self.public = {fn.api_name: index for index, fn in self.events.items() if fn.api_visibility == "public"}

    # ------------------------------------------------------------------ requests
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        if method in ("GET", "HEAD"):
            refusal = self._check_read(path, scope.get("query_string", b"").decode("latin-1"))
            if refusal is not None:
                return await error_response(*refusal)(scope, receive, send)
            if HEARTBEAT.fullmatch(path):
                return await self._heartbeat(scope, receive, send)
            return await self.app(scope, receive, send)
        if method == "OPTIONS":  # preflights are the CORS middleware's, outside this one
            return await self.app(scope, receive, send)
        match = EVENT_WRITE.match(path)
        if match is None and path not in SESSION_WRITES:
            return await error_response(404, f"no such endpoint: {method} {path}")(scope, receive, send)
        body, receive = await _read_body(receive)
        refusal = self._check_write(path, match.groups() if match else (None, None), body)
        if refusal is None and QUEUED.match(path):
            refusal = self._check_queued(scope)
        if refusal is not None:
            return await error_response(*refusal)(scope, receive, send)
        await self.app(scope, receive, send)

    async def _heartbeat(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Gradio's heartbeat: a stream a page keeps open while it is shown, one per tab. It
        needs no session and never ends, so each held one is a socket: 100 of them took the
        app from 45 to 145 open files (issue 18). Bounded per client, and in all."""
        if sum(self.heartbeats.values()) >= self.max_heartbeats:
            response = error_response(503, "too many open pages (heartbeat streams); retry later")
            response.headers["Retry-After"] = "10"
            return await response(scope, receive, send)
        key = client_key(scope, self.trusted_proxies)
        if self.heartbeats[key] >= self.max_heartbeats_per_client:
            response = error_response(429, f"too many open pages from this client (at most {self.max_heartbeats_per_client})")
            response.headers["Retry-After"] = "10"
            return await response(scope, receive, send)
        self.heartbeats[key] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.heartbeats[key] -= 1
            if self.heartbeats[key] <= 0:
                del self.heartbeats[key]

    def _choices(self, block: gr.Dropdown, session: Any) -> list[Any]:
        """The dropdown's choices in ``session``'s copy of the page (updated on its page load:
        knowledge bases an admin created since the start), else the page's as built."""
        state = self.demo.state_holder.session_data.get(session) if isinstance(session, str) else None
        current = state.blocks_config.blocks.get(block._id, block) if state is not None else block
        return [value for _, value in current.choices]

    def _check_queued(self, scope: Scope) -> tuple[int, str] | None:
        """At most ``max_events_per_client`` events of one client waiting or running in
        Gradio's queue: an event runs a few at a time (the briefing's two), so 30 briefings
        queued by one client made everyone's wait behind them."""
        queue = self.demo._queue
        key = client_key(scope, self.trusted_proxies)
        waiting = [event for events in queue.event_queue_per_concurrency_id.values() for event in events.queue]
        running = [event for job in queue.active_jobs if job for event in job]
        mine = sum(
            1 for event in waiting + running
            if getattr(event, "request", None) is not None and client_key(event.request.scope, self.trusted_proxies) == key
        )
        if mine >= self.max_events_per_client:
            return 429, f"too many requests of this client in the queue (at most {self.max_events_per_client}); wait for them"
        return None

    def _check_read(self, path: str, query: str) -> tuple[int, str] | None:
        if PAGE_GETS.match(path):
            return None
        queue = self.demo._queue
        if path == "/gradio_api/queue/data":
            # One value, checked as Gradio reads it (the last of several would be its choice).
            sessions = parse_qs(query, keep_blank_values=True).get("session_hash", [])
            if len(sessions) != 1 or not SESSION_HASH.fullmatch(sessions[0]):
                return 422, "session_hash is not a session id of this page"
            if sessions[0] not in queue.pending_messages_per_session:
                return 404, "no such session (join the queue first)"
            return None
        heartbeat = HEARTBEAT.fullmatch(path)
        if heartbeat is not None:
            if not SESSION_HASH.fullmatch(heartbeat.group(1)):
                return 422, "not a session id of this page"
            return None
        if API_GETS.match(path):
            return None
        result = CALL_RESULT.match(path)
        if result is not None:
            name, event_id = result.groups()
            known = event_id in queue.event_ids_to_events or any(
                event_id in ids for ids in queue.pending_event_ids_session.values()
            )
            if name not in self.public or not known:
                return 404, f"no such event: {name}/{event_id}"
            return None
        return 404, f"no such endpoint: GET {path}"

    def _check_write(
        self, path: str, route: tuple[str | None, str | None], body: bytes
    ) -> tuple[int, str] | None:
        family, api_name = route
        try:
            payload = json.loads(body or b"null")
        except RecursionError:  # as the JSON API answers a body it cannot parse
            return 400, "the request body is nested too deeply"
        except (ValueError, UnicodeDecodeError):
            return 422, "the request body is not JSON"
        if not isinstance(payload, dict):
            return 422, "the request body must be a JSON object"
        if _has_file_reference(payload):
            return 422, "this app takes text only: file references are refused"
        try:  # a lone surrogate ("\ud800") is no text: the event's output echoing it was a 500
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return 422, "this app takes text only: the body holds a lone surrogate"
        # Required where Gradio requires one (queue/join, cancel, reset), checked wherever sent.
        session = payload.get("session_hash")
        if session is not None or family is None:
            if not isinstance(session, str) or not SESSION_HASH.fullmatch(session):
                return 422, "session_hash is not a session id of this page"
        if path in SESSION_WRITES:
            return None
        fn_index = payload.get("fn_index")
        if api_name == "predict" and (family == "call" or fn_index is None):
            return 404, "no such event: predict needs an fn_index, on run/ or api/"
        if fn_index is not None:
            if type(fn_index) is not int or fn_index not in self.events:
                return 404, f"no such event: fn_index {fn_index!r:.40}"
            if api_name not in (None, "predict") and self.public.get(api_name) != fn_index:
                return 404, f"no such event: {api_name} with fn_index {fn_index}"
            fn = self.events[fn_index]
        elif api_name is None:  # queue/join names its event by fn_index only
            return 422, "fn_index is required"
        elif api_name in self.public:
            fn = self.events[self.public[api_name]]
        else:
            return 404, f"no such event: {api_name}"
        data = payload.get("data")
        if not isinstance(data, list) or len(data) != len(fn.inputs):
            return 422, f"data must be a list of {len(fn.inputs)} value(s)"
        for block, value in zip(fn.inputs, data):
            if not isinstance(value, INPUT_TYPES.get(type(block), ())):
                return 422, f"this app takes text only: {type(block).__name__} input of type {type(value).__name__}"
            # An example's index, where Gradio looks the example up itself (gr.Examples'
            # load_example: [99] was an IndexError, a 500); the chat's own examples
            # (type="index") are looked up by their handler among those it offered.
            if isinstance(block, gr.Dataset) and block.type != "index" and not 0 <= value < len(block.raw_samples):
                return 422, f"no such example: {value!r:.40}"
            # A dropdown's value must be one of its choices, as this session's page shows them
            # (Gradio checks the same in preprocess, where run/ and api/ answered a 500).
            if isinstance(block, gr.Dropdown) and value not in self._choices(block, payload.get("session_hash")):
                return 422, f"not one of the choices: {value!r:.40}"
        if any(event == "like" for _, event in fn.targets):
            return _check_like(payload.get("event_data"))
        return None


def _check_like(event_data: Any) -> tuple[int, str] | None:
    """A 👍/👎 (the chat's ``like`` event; its only input is server-side state): the event data
    is gr.LikeData's three fields and nothing else, an index (a message's, or [message, part])
    and a vote. ``value``, the message as the page holds it, must be text; the handler never
    reads it (the question and answer stored are the server's own, by index)."""
    if not isinstance(event_data, dict) or set(event_data) != {"index", "value", "liked"}:
        return 422, "a vote's event data is {index, value, liked}"
    index = event_data["index"]
    if not (type(index) is int or (isinstance(index, list) and 1 <= len(index) <= 2 and all(type(i) is int for i in index))):
        return 422, "a vote's index is a message index"
    value = event_data["value"]
    if not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
        return 422, "a vote's value is the message's text"
    if not (type(event_data["liked"]) is bool or event_data["liked"] in ("Like", "Dislike")):
        return 422, "a vote is liked true or false"
    return None


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    """The whole request body (``BodyLimitMiddleware`` outside has bounded it), and a
    ``receive`` that hands it on unchanged."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    return body, replaying(body, receive)
