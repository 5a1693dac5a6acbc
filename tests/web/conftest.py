"""The real app (API + chat UI) served by uvicorn on a free loopback port, over ``seed_kb``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest


@contextmanager
def serve(app, settings=None) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port, in the server the app runs in
    (web/server.py: h11 with header limits and deadlines); yields its base URL."""
    import uvicorn

    from kbcore.settings import Settings
    from web.server import server_config

    # port=0: the OS picks a free port, read back from the bound socket (no check-then-bind race).
    config = server_config(app, settings or Settings(), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="session")
def start_app() -> Iterator[Callable[..., str]]:
    """``start_app(kb, settings=None)`` serves ``create_app(kb, settings)``; stopped at session end."""
    from web.asgi import create_app

    with ExitStack() as stack:
        yield lambda kb, settings=None: stack.enter_context(serve(create_app(kb, settings), settings or kb.settings))


@pytest.fixture(scope="session")
def app_url(seed_kb, start_app) -> str:
    # No rate limit here: the functional tests send many requests in a burst from one address
    # (tests/web/test_security.py checks the limits on their own app instances).
    return start_app(seed_kb, seed_kb.settings.model_copy(update={"rate_limit_per_minute": 0}))
