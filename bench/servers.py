"""Processes the benchmarks and the tests start on loopback: a free port and a real
``chroma run`` server (one launcher, so every server-mode measurement and test starts the
server the same way)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_chroma(path: Path, port: int, timeout: float = 30.0) -> subprocess.Popen:
    """A ``chroma run`` serving ``path`` on 127.0.0.1:``port``, answering its heartbeat (stop it with ``stop``)."""
    import httpx

    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(path), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"chroma run did not start (exit code {proc.poll()})")
        time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chroma_server(path: Path, timeout: float = 30.0) -> Iterator[tuple[str, int]]:
    """(URL, pid) of a ``chroma run`` on ``path`` for the duration of the block."""
    port = free_port()
    proc = start_chroma(path, port, timeout)
    try:
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        stop(proc)
