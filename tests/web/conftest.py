"""The real app (API + chat UI) served by uvicorn on a free loopback port, over ``seed_kb``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def app_url(seed_kb) -> Iterator[str]:
    import uvicorn

    from web.api import create_app

    # port=0: the OS picks a free port, read back from the bound socket (no check-then-bind race).
    server = uvicorn.Server(uvicorn.Config(create_app(seed_kb), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)
