"""Briefing endpoints: ``POST /api/brief`` (JSON), and ``GET /api/brief.md``, ``GET /api/brief.txt``
and ``GET /api/brief.docx`` (the briefing as a Markdown, plain-text or Word download;
web/docx_export.py). ``lang`` ("zh", the default, or "en") is the language of what the briefing
writes itself: title, lead, headings.

``briefing_router(kbs)`` returns an ``APIRouter`` the app includes with
``app.include_router(briefing_router(kbs))``; it has to be included before web/asgi.py's
catch-all ``/api/{path:path}`` route, which would otherwise answer these paths with a 404.

Its routes are ``JSONErrorRoute``s (web/errors.py), so it keeps the API's error contract in any
app that includes it.

No ``from __future__ import annotations``: the request models are local classes (their length
limit is the KB's setting) and FastAPI must resolve the endpoint annotations as real objects.
"""

import re
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from kbcore.types import Briefing
from kbqa.knowledge_base import DEFAULT_KB, KnowledgeBases
from web.docx_export import DOCX_MEDIA_TYPE, briefing_docx
from web.errors import JSONErrorRoute
from web.schemas import (
    ERROR_RESPONSES,
    CitationOut,
    FiltersIn,
    K,
    KbName,
    OpenModel,
    filters_of,
    question_text,
)

DEFAULT_K = 20  # passages a briefing draws on (KnowledgeBase.brief's default)
_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')
_FILENAME_CHARS = 60


def briefing_filename(topic: str, extension: str = "md") -> str:
    """``<topic>.<extension>`` with characters no file system accepts replaced and the length
    bounded."""
    name = " ".join(_UNSAFE_FILENAME.sub("_", topic).split())[:_FILENAME_CHARS].strip(" ._")
    return f"{name or '简报'}.{extension}"


def content_disposition(filename: str) -> str:
    """RFC 6266/5987: an ASCII fallback name for old clients (``briefing.<extension>``), the
    UTF-8 name for the rest."""
    fallback = "briefing." + filename.rsplit(".", 1)[-1]
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


# What /docs' "Try it out" sends unedited (tests/web/test_api_docs.py).
BRIEF_EXAMPLE = {"topic": "锦州数字政府建设", "k": 20, "kb": DEFAULT_KB, "filters": {"region": "锦州"}}


def briefing_router(kbs: KnowledgeBases) -> APIRouter:
    limit = kbs.settings.max_question_chars
    Topic = Annotated[StrictStr, question_text(limit), Field(description="the topic of the briefing, e.g. 锦州数字政府建设")]
    k_doc = f"number of passages the briefing draws on (default {DEFAULT_K})"
    Lang = Annotated[Literal["zh", "en"], Field(description="language of the briefing's own words: title, lead, headings")]

    class BriefRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [BRIEF_EXAMPLE]})
        topic: Topic
        k: Annotated[K, Field(description=k_doc)] | None = None
        kb: KbName = DEFAULT_KB
        filters: FiltersIn | None = None
        lang: Lang = "zh"

    class BriefQuery(BaseModel):  # query strings are text: k is parsed, not strict
        model_config = ConfigDict(extra="forbid")
        topic: Topic
        k: Annotated[int, Field(ge=1, le=50, description=k_doc)] | None = None
        kb: KbName = DEFAULT_KB
        lang: Lang = "zh"

    class BriefOut(OpenModel):
        topic: str
        found: bool = Field(description="false when the knowledge base holds nothing on the topic")
        markdown: str = Field(description="the briefing: GitHub-flavoured Markdown with [^n] footnotes")
        text: str = Field(description="the same briefing as plain text (no Markdown escapes), [n] marks, sources last")
        lang: Literal["zh", "en"] = Field(description="language of the briefing's own words")
        sources: list[CitationOut] = Field(description="footnote n is sources[n - 1]")
        timings_ms: dict[str, float]

    errors = ERROR_RESPONSES
    router = APIRouter(route_class=JSONErrorRoute, tags=["briefings"])

    def _brief(kb: str, topic: str, k: int | None, lang: str, filters: FiltersIn | None = None):
        return kbs.get(kb).brief(topic, DEFAULT_K if k is None else k, filters=filters_of(filters), lang=lang)

    @router.post("/api/brief", response_model=BriefOut, responses=errors)
    def brief(req: BriefRequest) -> dict:
        """A briefing on a topic: a summary, the key figures, then points by source — every point a
        verbatim sentence of a source, footnoted."""
        return _brief(req.kb, req.topic, req.k, req.lang, req.filters).to_dict()

    def download(briefing: Briefing, body: bytes | str, media_type: str, extension: str) -> Response:
        return Response(
            body,
            media_type=media_type,
            headers={
                "Content-Disposition": content_disposition(briefing_filename(briefing.topic, extension)),
                "X-Content-Type-Options": "nosniff",
                "X-Briefing-Found": "true" if briefing.found else "false",
            },
        )

    @router.get(
        "/api/brief.md",
        response_class=Response,
        responses={200: {"content": {"text/markdown": {}}, "description": "the briefing as a Markdown file"}}
        | {404: errors[404], 422: errors[422]},
    )
    def brief_markdown(query: Annotated[BriefQuery, Query()]) -> Response:
        """The briefing on ``topic`` as a ``.md`` download (``X-Briefing-Found`` says whether
        the knowledge base held anything on it)."""
        briefing = _brief(query.kb, query.topic, query.k, query.lang)
        return download(briefing, briefing.markdown, "text/markdown; charset=utf-8", "md")

    @router.get(
        "/api/brief.txt",
        response_class=Response,
        responses={200: {"content": {"text/plain": {}}, "description": "the briefing as a plain-text file"}}
        | {404: errors[404], 422: errors[422]},
    )
    def brief_text(query: Annotated[BriefQuery, Query()]) -> Response:
        """The briefing on ``topic`` as a ``.txt`` download: the same as the ``.md`` without
        Markdown (no backslash escapes), for pasting into e-mail or a chat (``X-Briefing-Found``
        as for the ``.md``)."""
        briefing = _brief(query.kb, query.topic, query.k, query.lang)
        return download(briefing, briefing.text, "text/plain; charset=utf-8", "txt")

    @router.get(
        "/api/brief.docx",
        response_class=Response,
        responses={200: {"content": {DOCX_MEDIA_TYPE: {}}, "description": "the briefing as a Word file"}}
        | {404: errors[404], 422: errors[422]},
    )
    def brief_word(query: Annotated[BriefQuery, Query()]) -> Response:
        """The briefing on ``topic`` as a ``.docx`` download: Word headings and bullet lists,
        the sources as real Word footnotes (``X-Briefing-Found`` as for the ``.md``)."""
        briefing = _brief(query.kb, query.topic, query.k, query.lang)
        return download(briefing, briefing_docx(briefing), DOCX_MEDIA_TYPE, "docx")

    return router
