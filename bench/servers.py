"""Processes the benchmarks and the tests start on loopback: a free port, a real ``chroma run``
server and a real llama.cpp chat server (one launcher each, so every measurement and test starts
its server the same way)."""

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


@contextmanager
def llama_server(model: Path, *, n_ctx: int = 4096, n_threads: int = 2, timeout: float = 120.0,
                 log: Path | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """(base URL ending in /v1, process) of ``python -m llama_cpp.server`` serving the GGUF
    ``model`` (ChatML template) on loopback, ready when its model list answers; stopped after the
    block. Needs the ``llm-server`` extra. ``log`` keeps the server's output (else discarded)."""
    import httpx

    port = free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (closed below, after the process)
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--chat_format", "chatml",
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--n_threads", str(n_threads)],
        stdout=out, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama_cpp.server did not start (exit code {proc.poll()}); see {log or 'its output'}")
            time.sleep(0.2)
        yield url, proc
    finally:
        stop(proc)
        if log:
            out.close()
