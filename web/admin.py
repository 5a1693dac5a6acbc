"""Administration over HTTP: ``admin_router(kbs, settings)`` (see SECURITY.md "Administration").

    POST   /api/documents?kb=NAME    multipart ``files`` (one or more), or JSON {"url": ...} -> 202 {"job_id"}
    GET    /api/jobs/{job_id}        {"state": queued|running|done|failed, "documents": {"done", "total"}, ...}
    GET    /api/jobs                 the recent jobs, newest first
    DELETE /api/documents/{doc_id}?kb=NAME   200 {"removed": [doc_id]}; 404 when the store holds no such document
    POST   /api/reindex?kb=NAME      202 {"job_id"}: every document ingested again from its source
    GET    /api/feedback.csv         the chat's 👍/👎 votes (web/feedback.py)

``kb`` is ``default`` when not given; an upload or URL into a name the store lacks creates that
knowledge base, a removal or reindex of one is a 404.

Every one needs ``Authorization: Bearer <settings.admin_key>`` (401 without, 403 with another
key); with no key configured they are all 403. Writes go through the facade
(``KnowledgeBase.ingest`` / ``remove`` / ``refresh``), one job at a time on a worker thread,
in the order they came.

Uploads are kept under ``settings.uploads_dir`` (default ``<store>/uploads``; another knowledge
base's under ``<uploads>/_kb/<kb name>``), one folder per file name:
``<uploads>/<name>/uploads/<name>``, ingested as the folder ``<uploads>/<name>``, so
the document id is ``uploads/<name>`` (readable, in its own namespace, the same for the same
name uploaded again, and ``source_inputs`` finds its folder again for a refresh). Names are
sanitized to one path component before anything touches the disk.
"""

import collections
import hmac
import logging
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import unicodedata
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.types import Scope

from kbqa.chroma import DEFAULT_KB
from kbqa.knowledge_base import KnowledgeBase, KnowledgeBases
from kbqa.locks import IngestLockError
from kbqa.settings import Settings
from kbqa.types import IngestReport
from web.errors import JSONErrorRoute, error_response
from web.feedback import FeedbackStore
from web.schemas import ErrorOut, KbQuery

log = logging.getLogger(__name__)

# Single-document kinds (ingest.discovery.SUPPORTED_EXTENSIONS without the .jsonl corpora,
# whose ids come from inside the file: the command line's business).
UPLOAD_TYPES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
UPLOAD_NAMESPACE = "uploads"
MAX_NAME_CHARS = 100  # characters of a stored name (ext4 allows 255 bytes: 100 CJK characters are 300)
JOBS_KEPT = 100
LOCK_TIMEOUT = 300.0  # a job waits this long for another ingest (the CLI's) to finish
REMOVE_LOCK_TIMEOUT = 10.0  # a DELETE waits this long, then answers 409


def uploads_dir(settings: Settings, kb: str = DEFAULT_KB) -> Path:
    """Where knowledge base ``kb``'s uploads are kept: a folder of its own, so one file name
    uploaded to two knowledge bases is two files (and removing one leaves the other). An upload
    folder is named after a file and has its extension: never ``_kb``."""
    root = settings.uploads_dir or settings.store / "uploads"
    return root if kb == DEFAULT_KB else root / "_kb" / kb


# --------------------------------------------------------------------------- the key


class AdminKey:
    """Checks ``Authorization: Bearer KEY`` against ``settings.admin_key`` in constant time."""

    def __init__(self, settings: Settings) -> None:
        key = settings.admin_key
        self._key = key.get_secret_value().encode("utf-8") if key is not None else None

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def status(self, authorization: str | None) -> int:
        """0 when ``authorization`` carries the key, else the refusal's status: 403 when no key
        is configured or another key is given, 401 when none is."""
        if self._key is None:
            return 403
        scheme, _, presented = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return 401
        # Bytes, not str: compare_digest refuses non-ASCII str; Starlette decodes headers as latin-1.
        return 0 if hmac.compare_digest(presented.strip().encode("latin-1", "replace"), self._key) else 403

    def matches(self, typed: str) -> bool:
        """Whether a key typed by hand (not a header) is the key."""
        return self._key is not None and hmac.compare_digest(typed.encode("utf-8", "replace"), self._key)

    def allows(self, scope: Scope) -> bool:
        return self.status(Headers(scope=scope).get("authorization")) == 0


def refusal(status: int) -> JSONResponse:
    """The answer to a request without the key; it never repeats what was sent."""
    if status == 401:
        response = error_response(401, "需要管理密钥（this endpoint needs Authorization: Bearer <admin key>）")
        response.headers["WWW-Authenticate"] = 'Bearer realm="kbqa-admin"'
        return response
    return error_response(403, "管理密钥不正确，或未启用管理功能（wrong admin key, or KB_ADMIN_KEY is not set）")


class _Refused(Exception):
    """Raised by the key check; not an HTTPException, so JSONErrorRoute lets it through to
    ``_AdminRoute``, which answers it with ``refusal``."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status_code = status


def upload_limit(settings: Settings, key: AdminKey):
    """For BodyLimitMiddleware: ``max_upload_bytes`` for ``POST /api/documents`` showing the
    key; every other request (an upload without the key included) keeps ``max_body_bytes``."""

    def larger(scope: Scope) -> int | None:
        if scope.get("method") == "POST" and scope.get("path") == "/api/documents" and key.allows(scope):
            return max(settings.max_upload_bytes, settings.max_body_bytes)
        return None

    return larger


# --------------------------------------------------------------------------- file names

_UNSAFE = re.compile(r"[^\w\-.()（）\[\]【】 ]+")


def safe_name(filename: str | None) -> str:
    """One path component for an uploaded file's name: the last part of what the client sent
    (``/`` and ``\\`` both end a folder), NFC, controls, separators and punctuation beyond
    ``-._()[] `` turned into ``_``, no leading dots or spaces (walk_folder skips hidden files),
    at most MAX_NAME_CHARS characters with the extension kept. Raises ValueError for a name
    that is empty or of a type that is not uploaded (UPLOAD_TYPES)."""
    name = unicodedata.normalize("NFC", filename or "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name)
    name = re.sub(r"\s+", " ", name).strip(" .~$")
    lower = name.lower()
    ext = next((e for e in sorted(UPLOAD_TYPES, key=len, reverse=True) if lower.endswith(e)), None)
    if ext is None:
        raise ValueError(f"unsupported file type (upload {' '.join(UPLOAD_TYPES)})")
    stem = name[: -len(ext)].rstrip(" .")
    if not stem:
        raise ValueError("the file name is empty")
    stem = stem[: MAX_NAME_CHARS - len(ext)]
    return stem + name[-len(ext):].lower()


def _store_upload(root: Path, name: str, upload: UploadFile) -> Path:
    """Write one upload to ``<root>/<name>/uploads/<name>`` (a temporary file renamed over it,
    so a replaced upload is swapped whole and a symlink planted there is replaced, never
    followed); returns the folder to ingest."""
    folder = root / name
    inner = folder / UPLOAD_NAMESPACE
    inner.mkdir(parents=True, exist_ok=True, mode=0o700)
    real_root = root.resolve()
    if inner.resolve().parent.parent != real_root:  # safe_name makes this impossible; checked anyway
        raise ValueError(f"refused name {name!r}")
    fd, tmp = tempfile.mkstemp(dir=inner, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            shutil.copyfileobj(upload.file, out, 1 << 20)
        os.replace(tmp, inner / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder


def _upload_folder(root: Path, origin: str) -> Path | None:
    """The folder under ``root`` an upload's origin lives in, or None for any other origin."""
    try:
        rel = Path(origin).resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    parts = rel.parts
    if len(parts) == 3 and parts[1] == UPLOAD_NAMESPACE and parts[0] == parts[2]:
        return root / parts[0]
    return None


# --------------------------------------------------------------------------- jobs


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
                self._forget_failed_uploads(job, report)
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

    @staticmethod
    def _forget_failed_uploads(job: Job, report: IngestReport) -> None:
        """Upload folders whose file did not ingest, and that hold no document, are removed: a
        file that is not in the knowledge base is not kept on the server."""
        held = {d.doc_id: d.origin for d in job.kb.documents(complete_only=False)}
        for origin, _ in report.failed:
            folder = _upload_folder(job.uploads, origin)
            if folder is None:
                continue
            holder = held.get(f"{UPLOAD_NAMESPACE}/{folder.name}")
            # Kept only when an earlier upload of this name is the stored document (its file is
            # its source); an id held by another source does not keep this file.
            if holder is None or _upload_folder(job.uploads, holder) != folder:
                shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- the router


class JobOut(BaseModel):
    job_id: str
    kb: str
    kind: str
    state: str
    created_at: str
    started_at: str | None
    finished_at: str | None
    documents: dict[str, int]
    added: list[str]
    updated: list[str]
    unchanged: list[str]
    failures: list[dict[str, str]]
    error: str | None


class JobsOut(BaseModel):
    jobs: list[JobOut]


class JobStarted(BaseModel):
    job_id: str
    state: str
    documents: list[str] = Field(default_factory=list, description="ids the uploaded files will have")


class RemovedOut(BaseModel):
    removed: list[str]


class UrlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[StrictStr, Field(min_length=8, max_length=2048, pattern=r"^\s*[hH][tT][tT][pP][sS]?://\S+\s*$")]


ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "no Authorization: Bearer header"},
    403: {"model": ErrorOut, "description": "wrong admin key, or no admin key configured (KB_ADMIN_KEY)"},
    429: {"model": ErrorOut, "description": "too many admin requests from this client; see Retry-After"},
}


def admin_router(
    kbs: KnowledgeBases, settings: Settings, key: AdminKey, feedback: FeedbackStore, jobs: Jobs | None = None
) -> APIRouter:
    jobs = jobs if jobs is not None else Jobs()

    def job(kb: KnowledgeBase, kind: str, inputs: list[str], total: int, names: dict[str, str]) -> Job:
        return jobs.submit(Job(kb, uploads_dir(settings, kb.name), kind, inputs, total, names))

    def admin(request: Request) -> None:
        status = key.status(request.headers.get("authorization"))
        if status:
            raise _Refused(status)

    router = APIRouter(route_class=_AdminRoute, dependencies=[Depends(admin)], responses=ADMIN_ERRORS)

    @router.post(
        "/api/documents",
        status_code=202,
        response_model=JobStarted,
        responses={413: {"model": ErrorOut}, 415: {"model": ErrorOut}, 422: {"model": ErrorOut}},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "properties": {"files": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                            "required": ["files"],
                        }
                    },
                    "application/json": {"schema": UrlRequest.model_json_schema()},
                },
            }
        },
    )
    async def add_documents(request: Request, kb: KbQuery = DEFAULT_KB) -> JSONResponse:
        """Ingest uploaded files (multipart field ``files``, .txt .md .html .pdf .docx) or one
        URL (JSON ``{"url": ...}``, fetched behind the SSRF guard) into knowledge base ``kb``
        in the background; a name the store lacks is created (once the request is found good)."""
        ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if ctype == "application/json":
            try:
                req = UrlRequest.model_validate_json(await request.body())
            except ValidationError as exc:
                detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
                summary = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail)
                return error_response(422, f"invalid request: {summary}", detail)
            url = req.url.strip()
            started = job(await run_in_threadpool(kbs.open, kb), "url", [url], 1, {})
            return JSONResponse({"job_id": started.job_id, "state": started.state, "documents": [url]}, status_code=202)
        if ctype != "multipart/form-data":
            return error_response(415, "send multipart/form-data with files, or JSON {\"url\": ...}")
        try:
            form = await request.form(max_files=settings.max_upload_files, max_fields=settings.max_upload_files)
        except HTTPException as exc:  # Starlette's: too many files or fields, a malformed body
            return error_response(422, f"invalid upload: {exc.detail}")
        try:
            return await _accept_uploads(kb, form)
        finally:
            await form.close()

    async def _accept_uploads(kb: str, form) -> JSONResponse:
        unknown = sorted({name for name in form if name != "files"})
        if unknown:
            return error_response(422, f"unknown form field(s): {', '.join(unknown)} (send files as 'files')")
        files = form.getlist("files")
        if not files or not all(isinstance(f, UploadFile) for f in files):
            return error_response(422, "no files: send one or more files in the multipart field 'files'")
        names: list[str] = []
        for upload in files:
            try:
                name = safe_name(upload.filename)
            except ValueError as exc:
                return error_response(422, f"{upload.filename!r:.120}: {exc}")
            if name in names:
                return error_response(422, f"two files named {name!r} in one upload")
            if not upload.size:
                return error_response(422, f"{name!r}: the file is empty")
            names.append(name)
        target = await run_in_threadpool(kbs.open, kb)
        folders = []
        uploads = uploads_dir(settings, target.name)
        for name, upload in zip(names, files):
            folders.append(str(await run_in_threadpool(_store_upload, uploads, name, upload)))
        ids = [f"{UPLOAD_NAMESPACE}/{name}" for name in names]
        started = job(target, "upload", folders, len(files), dict(zip(folders, ids)))
        return JSONResponse({"job_id": started.job_id, "state": started.state, "documents": ids}, status_code=202)

    @router.get("/api/jobs", response_model=JobsOut)
    def list_jobs() -> dict:
        return {"jobs": [job.to_dict() for job in jobs.recent()]}

    @router.get("/api/jobs/{job_id}", response_model=JobOut, responses={404: {"model": ErrorOut}})
    def get_job(job_id: str) -> Any:
        found = jobs.get(job_id)
        if found is None:
            return error_response(404, "没有这个任务（no such job; jobs are kept in memory until a restart）")
        return found.to_dict()

    @router.delete(
        "/api/documents/{doc_id:path}",
        response_model=RemovedOut,
        responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    )
    def remove_document(doc_id: str, kb: KbQuery = DEFAULT_KB) -> Any:
        """Remove one document of knowledge base ``kb`` and its chunks (an uploaded file goes
        from the server too)."""
        target = kbs.get(kb)
        record = next((d for d in target.documents(complete_only=False) if d.doc_id == doc_id), None)
        try:
            report = target.remove([doc_id], lock_timeout=REMOVE_LOCK_TIMEOUT)
        except IngestLockError:
            response = error_response(409, "另一个导入正在进行，请稍后再试（another ingest holds the store; retry）")
            response.headers["Retry-After"] = "10"
            return response
        if report.failed:
            return error_response(404, f"没有这个文档（no such document: {doc_id!r:.200}）")
        folder = _upload_folder(uploads_dir(settings, kb), record.origin) if record is not None else None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        return {"removed": report.removed}

    @router.post("/api/reindex", status_code=202, response_model=JobStarted, responses={404: {"model": ErrorOut}})
    def reindex(kb: KbQuery = DEFAULT_KB) -> dict:
        """Ingest every document of knowledge base ``kb`` again from its own source, in the
        background (changed sources updated, unchanged skipped, gone ones reported). The
        knowledge base keeps answering."""
        target = kbs.get(kb)
        started = job(target, "reindex", [], len(target.documents(complete_only=False)), {})
        return {"job_id": started.job_id, "state": started.state, "documents": []}

    @router.get(
        "/api/feedback.csv",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/csv": {}}, "description": "time (UTC), question, answer, vote"}},
    )
    def feedback_csv() -> StreamingResponse:
        """Every 👍/👎 from the chat: time (UTC), question, answer as shown, vote (1 or -1)."""
        return StreamingResponse(
            feedback.csv_lines(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="feedback.csv"', "Cache-Control": "no-store"},
        )

    router.jobs = jobs  # for the tests
    return router


class _AdminRoute(JSONErrorRoute):
    """JSONErrorRoute, plus the key's refusals (401 with WWW-Authenticate, 403)."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def route(request: Request):
            try:
                return await handler(request)
            except _Refused as exc:
                return refusal(exc.status_code)

        return route
