"""The admin endpoints (listed in web/admin/__init__.py), each behind the admin key: uploads
and URLs ingested as background jobs, the jobs' progress, removal, reindex, the feedback CSV."""

import shutil
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from kbcore.settings import Settings
from kbqa.knowledge_base import DEFAULT_KB, IngestLockError, KnowledgeBase, KnowledgeBases
from web.admin.jobs import Job, Jobs
from web.admin.key import AdminKey, AdminRoute, Refused
from web.admin.models import ADMIN_ERRORS, DOCUMENTS_BODY, JobOut, JobsOut, JobStarted, RemovedOut, UrlRequest
from web.admin.uploads import UPLOAD_NAMESPACE, checked_uploads, store_upload, upload_folder, uploads_dir
from web.errors import error_response
from web.feedback import FeedbackStore
from web.schemas import ErrorOut, KbQuery

REMOVE_LOCK_TIMEOUT = 10.0  # a DELETE waits this long, then answers 409


def admin_router(
    kbs: KnowledgeBases, settings: Settings, key: AdminKey, feedback: FeedbackStore, jobs: Jobs | None = None
) -> APIRouter:
    jobs = jobs if jobs is not None else Jobs()

    def job(kb: KnowledgeBase, kind: str, inputs: list[str], total: int, names: dict[str, str]) -> Job:
        return jobs.submit(Job(kb, uploads_dir(settings, kb.name), kind, inputs, total, names))

    def admin(request: Request) -> None:
        status = key.status(request.headers.get("authorization"))
        if status:
            raise Refused(status)

    router = APIRouter(route_class=AdminRoute, dependencies=[Depends(admin)], responses=ADMIN_ERRORS)

    @router.post(
        "/api/documents",
        status_code=202,
        response_model=JobStarted,
        responses={413: {"model": ErrorOut}, 415: {"model": ErrorOut}, 422: {"model": ErrorOut}},
        openapi_extra={"requestBody": DOCUMENTS_BODY},
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
        try:
            files = checked_uploads(form)
        except ValueError as exc:
            return error_response(422, str(exc))
        target = await run_in_threadpool(kbs.open, kb)
        folders = []
        uploads = uploads_dir(settings, target.name)
        for name, upload in files:
            folders.append(str(await run_in_threadpool(store_upload, uploads, name, upload)))
        ids = [f"{UPLOAD_NAMESPACE}/{name}" for name, _ in files]
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
        folder = upload_folder(uploads_dir(settings, kb), record.origin) if record is not None else None
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
