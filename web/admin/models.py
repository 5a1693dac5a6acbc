"""The admin API's request and response shapes (documented at /docs)."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from web.schemas import ErrorOut


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


# POST /api/documents reads its body itself (files or a URL): its two forms, for the docs.
DOCUMENTS_BODY: dict[str, Any] = {
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
