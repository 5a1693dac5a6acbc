"""Background writes: a ``Job`` (an upload, a URL or a reindex into one knowledge base) and its
progress as ``GET /api/jobs/{id}`` shows it; ``Jobs`` runs them one at a time, in order, on one
worker thread, through the facade."""

import collections
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from kbcore.types import IngestReport
from kbqa.knowledge_base import IngestLockError, KnowledgeBase
from web.admin.uploads import forget_failed_uploads

log = logging.getLogger(__name__)

JOBS_KEPT = 100
LOCK_TIMEOUT = 300.0  # a job waits this long for another ingest (the CLI's) to finish


class Job:
    """One background write into ``kb`` (whose uploads live in ``uploads``) and its progress,
    as ``GET /api/jobs/{id}`` shows it."""

    def __init__(
        self, kb: KnowledgeBase, uploads: Path, kind: str, inputs: list[str], total: int, names: dict[str, str]
    ) -> None:
        self.job_id = secrets.token_urlsafe(12)
        self.kb = kb
        self.uploads = uploads
        self.kind = kind  # upload | url | reindex
        self.inputs = inputs
        self.names = names  # origin prefix -> what to show instead (an upload's id, not a server path)
        self.state = "queued"
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.total = total
        self.finished: set[str] = set()
        self.report: IngestReport | None = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def on_event(self, name: str, info: dict[str, Any]) -> None:
        """The pipeline's events (ingest/pipeline.py): a document is done once it failed, was
        unchanged, or its batch's manifest entries are written."""
        with self._lock:
            if name == "document_parsed" and info.get("status") in ("failed", "unchanged"):
                self.finished.add(info.get("doc_id") or info.get("origin") or "")
            elif name == "manifest_written":
                self.finished.update(info.get("doc_ids", ()))

    def shown(self, source: str) -> str:
        for prefix, name in self.names.items():
            if source == prefix or source.startswith(prefix + os.sep):
                return name
        return source

    def to_dict(self) -> dict:
        report = self.report
        with self._lock:
            done = len(self.finished)
        if self.state in ("done", "failed") and report is not None:
            done = max(done, len(report.added) + len(report.updated) + len(report.unchanged) + len(report.failed))
        iso = lambda t: None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        return {
            "job_id": self.job_id,
            "kb": self.kb.name,
            "kind": self.kind,
            "state": self.state,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "documents": {"done": min(done, max(self.total, done)), "total": max(self.total, done)},
            "added": list(report.added) if report else [],
            "updated": list(report.updated) if report else [],
            "unchanged": list(report.unchanged) if report else [],
            "failures": [{"source": self.shown(s), "reason": r} for s, r in report.failed] if report else [],
            "error": self.error,
        }


class Jobs:
    """Jobs run one at a time, in order, on one daemon thread; the last JOBS_KEPT are kept
    (in memory: a restart forgets them, not what they wrote)."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queue: list[Job] = []
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self.finished: collections.Counter[str] = collections.Counter()  # by final state, since the start

    def states(self) -> tuple[dict[str, int], dict[str, int]]:
        """(jobs finished by state since the start, jobs queued or running now by state)."""
        with self._cond:
            active = collections.Counter(j.state for j in self._jobs.values() if j.state in ("queued", "running"))
            return dict(self.finished), dict(active)

    def submit(self, job: Job) -> Job:
        with self._cond:
            self._jobs[job.job_id] = job
            while len(self._jobs) > JOBS_KEPT:
                oldest = next(iter(self._jobs.values()))
                if oldest.state in ("queued", "running"):
                    break
                self._jobs.popitem(last=False)
            self._queue.append(job)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="kbqa-admin-jobs", daemon=True)
                self._worker.start()
            self._cond.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def recent(self) -> list[Job]:
        with self._cond:
            return list(reversed(self._jobs.values()))

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                job = self._queue.pop(0)
            self.run(job)

    def run(self, job: Job) -> None:
        job.state, job.started_at = "running", time.time()
        try:
            if job.kind == "reindex":
                report = job.kb.refresh(lock_timeout=LOCK_TIMEOUT, on_event=job.on_event)
            else:
                report = job.kb.ingest(job.inputs, lock_timeout=LOCK_TIMEOUT, on_event=job.on_event)
            if job.kind == "upload":
                forget_failed_uploads(job.kb, job.uploads, report)
            job.report = report
            written = report.added or report.updated or report.unchanged
            job.state = "failed" if report.failed and not written else "done"
        except IngestLockError as exc:
            job.state, job.error = "failed", f"another ingest holds the store: {exc}"
        except Exception as exc:  # a job never takes the worker down
            log.exception("admin job %s failed", job.job_id)
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = time.time()
            self.finished[job.state] += 1
