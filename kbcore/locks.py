"""The ingest lock: exclusive right to write one store, of two kinds.

Advisory: readers never take it; every writer (the ingest pipeline, --remove, --reindex)
does, so two ingests into one store run one after the other instead of interleaving. An
embedded store uses a file lock in its directory (:class:`FileIngestLock`); a Chroma server,
shared by every host using it, a lease record in ``<prefix>-<embedder>-lock``
(:class:`LeaseIngestLock`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from kbcore.chroma import PLACEHOLDER_VECTOR, collection_base, describe_location

log = logging.getLogger(__name__)


class IngestLockError(RuntimeError):
    """Another ingest holds the store's ingest lock (or this one lost it)."""


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    started_at: float  # unix time
    token: str = ""
    expires_at: float = 0.0  # leases only

    @classmethod
    def mine(cls, ttl: float = 0.0) -> LockHolder:
        now = time.time()
        return cls(os.getpid(), socket.gethostname(), now, uuid.uuid4().hex, now + ttl if ttl else 0.0)

    @classmethod
    def from_dict(cls, data: dict | None) -> LockHolder | None:
        if not data:
            return None
        try:
            return cls(int(data["pid"]), str(data["host"]), float(data["started_at"]), str(data.get("token", "")),
                       float(data.get("expires_at", 0.0)))
        except (TypeError, KeyError, ValueError):
            return None

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "started_at": self.started_at, "token": self.token,
                "expires_at": self.expires_at}

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.started_at).astimezone().isoformat(timespec="seconds")
        return f"pid {self.pid} on host {self.host}, started at {when}"

    def is_dead_here(self) -> bool:
        """True when the holder ran on this host and its process is gone (a crashed ingest)."""
        if self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def _locked_message(holder: LockHolder | None, location: str) -> str:
    who = f"another ingest ({holder.describe()})" if holder else "another ingest"
    return f"{who} holds the lock on {location}; retry later or pass --lock-timeout SECONDS to wait"


WaitHook = Callable[[LockHolder | None], None]


class IngestLock(ABC):
    """Exclusive right to write one store. ``acquire`` waits up to ``timeout`` seconds
    (0: fail at once) and calls ``on_wait`` once if it has to wait."""

    location: str

    @abstractmethod
    def acquire(self, timeout: float = 0.0, on_wait: WaitHook | None = None) -> None: ...

    @abstractmethod
    def release(self) -> None: ...

    def check(self) -> None:
        """Raise IngestLockError if the lock was lost (a lease that expired under us)."""

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def ingest_lock(client, *, collection_prefix: str, embedder_name: str) -> IngestLock:
    """A file lock in an embedded store's directory, a lease record on a Chroma server."""
    settings = client.get_settings()
    if settings.is_persistent and settings.persist_directory:
        return FileIngestLock(Path(settings.persist_directory))
    return LeaseIngestLock(client, collection_base(collection_prefix, embedder_name), describe_location(client))


class FileIngestLock(IngestLock):
    """``filelock`` on ``<store>/ingest.lock``; the kernel drops it when the holder dies. The
    holder describes itself in ``ingest.lock.owner`` so a waiter can say who it waits for."""

    def __init__(self, store_dir: Path):
        from filelock import FileLock

        self.location = str(store_dir)
        self._owner_path = Path(store_dir) / "ingest.lock.owner"
        self._lock = FileLock(str(Path(store_dir) / "ingest.lock"), thread_local=False)
        self._me: LockHolder | None = None

    def _holder(self) -> LockHolder | None:
        try:
            return LockHolder.from_dict(json.loads(self._owner_path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return None

    def acquire(self, timeout: float = 0.0, on_wait: WaitHook | None = None) -> None:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            if timeout <= 0:
                raise IngestLockError(_locked_message(self._holder(), self.location)) from None
            if on_wait is not None:
                on_wait(self._holder())
            try:
                self._lock.acquire(timeout=timeout)
            except Timeout:
                raise IngestLockError(_locked_message(self._holder(), self.location)) from None
        self._me = LockHolder.mine()
        tmp = self._owner_path.with_name(f"{self._owner_path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(self._me.to_dict()), encoding="utf-8")
        os.replace(tmp, self._owner_path)

    def release(self) -> None:
        if self._me is None:
            return
        holder = self._holder()
        if holder is not None and holder.token == self._me.token:
            self._owner_path.unlink(missing_ok=True)
        self._me = None
        self._lock.release()


class LeaseIngestLock(IngestLock):
    """A lease record in ``<base>-lock`` on a Chroma server, shared by every host using it.

    Chroma has no compare-and-swap, but ``add`` keeps an existing id (the first writer wins)
    and ``delete`` takes a filter, so: read; if the lease is free, or expired, or its holder
    is a dead process on this host, delete exactly that stale record and ``add`` ours; re-read
    to see whose record survived. A thread extends the lease every ``ttl / 4`` seconds; a
    holder that stops refreshing (crashed, or cut off) loses it after ``ttl`` seconds.
    """

    RECORD = "ingest"
    POLL_SECONDS = 0.5

    def __init__(self, client, base: str, location: str, *, ttl: float = 60.0):
        self.location = f"{location} (collections {base}-*)"
        self._collection = client.get_or_create_collection(f"{base}-lock", embedding_function=None)
        self.ttl = ttl
        self._me: LockHolder | None = None
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self._lost: LockHolder | None = None

    def _holder(self) -> LockHolder | None:
        got = self._collection.get(ids=[self.RECORD], include=["metadatas"])
        return LockHolder.from_dict(got["metadatas"][0]) if got["ids"] else None

    def _try_take(self, me: LockHolder) -> LockHolder | None:
        """None when ``me`` now holds the lease, else the holder."""
        holder = self._holder()
        if holder is not None:
            if holder.expires_at > time.time() and not holder.is_dead_here():
                return holder
            # Only that stale record: a racer's fresh lease written meanwhile survives.
            self._collection.delete(ids=[self.RECORD], where={"token": holder.token})
        self._collection.add(ids=[self.RECORD], embeddings=[PLACEHOLDER_VECTOR], metadatas=[me.to_dict()])
        holder = self._holder()
        return None if holder is not None and holder.token == me.token else holder

    def acquire(self, timeout: float = 0.0, on_wait: WaitHook | None = None) -> None:
        deadline = time.monotonic() + max(timeout, 0.0)
        waited = False
        while True:
            me = LockHolder.mine(self.ttl)
            holder = self._try_take(me)
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise IngestLockError(_locked_message(holder, self.location))
            if not waited and on_wait is not None:
                on_wait(holder)
            waited = True
            time.sleep(min(self.POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
        self._me, self._lost = me, None
        self._stop.clear()
        self._refresher = threading.Thread(target=self._refresh, name="ingest-lease", daemon=True)
        self._refresher.start()

    def _refresh(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            me = self._me
            if me is None:
                return
            try:
                holder = self._holder()
                if holder is None or holder.token != me.token:
                    self._lost = holder or LockHolder(0, "?", time.time())
                    return
                self._collection.update(ids=[self.RECORD], metadatas=[{"expires_at": time.time() + self.ttl}])
            except Exception as exc:  # noqa: BLE001 - the writer's own next call reports a dead server
                log.warning("could not refresh the ingest lease on %s: %s", self.location, exc)

    def check(self) -> None:
        if self._lost is not None:
            raise IngestLockError(
                f"lost the ingest lock on {self.location} (it expired and {self._lost.describe()} took it); "
                "stopped so that two ingests don't write at once: re-run to finish"
            )

    def release(self) -> None:
        me, self._me = self._me, None
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)
            self._refresher = None
        if me is None:
            return
        try:
            self._collection.delete(ids=[self.RECORD], where={"token": me.token})
        except Exception as exc:  # noqa: BLE001 - a dead server: the lease expires, or the next ingest here sees us gone
            log.warning("could not release the ingest lease on %s: %s", self.location, exc)
