"""Two ingests into one store take turns: the second fails at once (default) or waits.

Real processes on both kinds of store: an embedded directory (file lock) and a `chroma run`
server (lease record). Ingest A holds the lock, paused by the driver right after taking it;
B (``--lock-timeout 0``) must fail naming A; C (``--lock-timeout 60``) must wait for A and
then find A's documents already there. The folders overlap (both read the corpus), and the
end state must equal a clean run's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
from reliability import (
    INGEST_FLAGS,
    REPO,
    WRITE_BATCH,
    assert_consistent,
    assert_same,
    driver_cmd,
    snapshot,
    wait_for,
)


class _Lines:
    """Collects a running process's stderr lines so a test can wait for one."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)

    def wait_for(self, text: str, proc: subprocess.Popen, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if text in line:
                    return line
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} in: {''.join(self.lines)[-3000:]}")

    def text(self) -> str:
        self._thread.join(timeout=10)
        return "".join(self.lines)


@pytest.fixture(params=["embedded", pytest.param("server", marks=pytest.mark.server)])
def target(request, tmp_path):
    """(CLI flags naming the store, environment, KnowledgeBase overrides) for one store."""
    if request.param == "embedded":
        store = tmp_path / "chroma"
        return ["--store", str(store)], None, {"store": store}
    url = request.getfixturevalue("chroma_server")
    prefix = f"lock{uuid.uuid4().hex[:8]}"  # the server is shared across tests
    return ["--chroma-url", url], {**os.environ, "KB_COLLECTION": prefix}, {"chroma_url": url, "collection": prefix}


def test_second_ingest_fails_fast_or_waits_its_turn(corpus, r1, open_kb, tmp_path, target):
    flags, env, kb_overrides = target
    corpus.write("v1")
    paused, release = tmp_path / "paused", tmp_path / "release"
    a = subprocess.Popen(
        driver_cmd([str(corpus.jsonl), *flags, *INGEST_FLAGS, "--write-batch", str(WRITE_BATCH)],
                   pause_at="lock_acquired:1", signal_file=paused, release_file=release),
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    c = None
    try:
        wait_for(paused, a)
        ingest = [sys.executable, "-m", "ingest", *corpus.inputs, *flags, *INGEST_FLAGS]
        # B and C start together (they don't interfere: B never gets the lock).
        c = subprocess.Popen([*ingest, "--lock-timeout", "60"], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        c_err = _Lines(c.stderr)

        b = subprocess.run(ingest, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
        assert b.returncode == 3, (b.returncode, b.stderr[-3000:])
        assert f"another ingest (pid {a.pid} on host {socket.gethostname()}, started at " in b.stderr
        assert "holds the lock on" in b.stderr and "retry later or pass --lock-timeout" in b.stderr
        assert "added" not in b.stdout

        c_err.wait_for(f"waiting up to 60 s for another ingest (pid {a.pid} on host", c)
        assert c.poll() is None
        release.touch()
        a_out, a_err = a.communicate(timeout=60)
        assert a.returncode == 0, a_err[-3000:]
        assert "added 20, updated 0, unchanged 0" in a_out
        c_out = c.stdout.read()
        assert c.wait(timeout=60) == 0, c_err.text()[-3000:]
        # C ran after A had finished: A's corpus documents were already there.
        assert "added 7, updated 0, unchanged 20, removed 0, failed 0" in c_out, c_out
    finally:
        for proc in (a, c):
            if proc is not None and proc.poll() is None:
                proc.kill()
    kb = open_kb(**kb_overrides)
    assert_consistent(kb.store)
    assert_same(snapshot(kb.store, corpus.root), r1[1])


@pytest.mark.server
def test_lease_expiry_refresh_and_foreign_holders(chroma_server, nano):
    """The lease in-process: a live foreign holder blocks, an expired one is taken over, and a
    held lease is refreshed so it outlives its ttl."""
    from kbcore.chroma import connect
    from kbcore.locks import IngestLockError, LeaseIngestLock
    from kbcore.store import ChunkStore

    client = connect(None, chroma_server)
    prefix = f"lease{uuid.uuid4().hex[:8]}"
    store = ChunkStore(client, collection_prefix=prefix, embedder_name=nano.name, dim=nano.dim)
    first = store.ingest_lock()
    assert isinstance(first, LeaseIngestLock)
    records = first._collection
    now = time.time()
    foreign = {"pid": 4242, "host": "elsewhere", "started_at": now - 5, "token": "t1", "expires_at": now + 30}
    records.add(ids=["ingest"], embeddings=[[1.0]], metadatas=[foreign])
    with pytest.raises(IngestLockError, match=r"another ingest \(pid 4242 on host elsewhere, started at .*\) holds"):
        first.acquire(timeout=0)
    records.update(ids=["ingest"], metadatas=[{"expires_at": now - 1}])  # it stopped refreshing
    first.ttl = 0.8
    first.acquire(timeout=0)
    try:
        time.sleep(1.6)  # two ttls: only the refresher keeps it alive
        second = store.ingest_lock()
        with pytest.raises(IngestLockError, match=f"pid {os.getpid()} on host"):
            second.acquire(timeout=0.5)
        first.check()
    finally:
        first.release()
    second.acquire(timeout=0)
    second.release()
    assert records.get(ids=["ingest"])["ids"] == []
