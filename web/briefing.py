"""Briefing endpoints: ``POST /api/brief`` (JSON) and ``GET /api/brief.md`` (a Markdown download).

``briefing_router(kb)`` returns an ``APIRouter`` the app includes with
``app.include_router(briefing_router(kb))``; it has to be included before web/api.py's
catch-all ``/api/{path:path}`` route, which would otherwise answer these paths with a 404.

The router brings its own error handling (a route class that turns invalid requests and
``QuestionError`` into web/api.py's ``{"error": ..., "detail": [...]}`` 4xx shape), so it
keeps the API's error contract in any app that includes it, not only in ``create_app``'s.

No ``from __future__ import annotations``: the request models are local classes (their length
limit is the KB's setting) and FastAPI must resolve the endpoint annotations as real objects.
"""

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.exceptions import HTTPException

from kbqa.knowledge_base import KnowledgeBase, QuestionError
from web.errors import error_response, on_validation_error

DEFAULT_K = 20  # passages a briefing draws on (KnowledgeBase.brief's default)
_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]+')
_FILENAME_CHARS = 60


def briefing_filename(topic: str) -> str:
    """``<topic>.md`` with characters no file system accepts replaced and the length bounded."""
    name = " ".join(_UNSAFE_FILENAME.sub("_", topic).split())[:_FILENAME_CHARS].strip(" ._")
    return f"{name or '简报'}.md"


def content_disposition(filename: str) -> str:
    """RFC 6266/5987: an ASCII fallback name for old clients, the UTF-8 name for the rest."""
    return f"attachment; filename=\"briefing.md\"; filename*=UTF-8''{quote(filename, safe='')}"


def briefing_router(kb: KnowledgeBase) -> APIRouter:
    # web.api is imported here, not at module level: web.api imports this module to include
    # the router, and by the time the router is built web.api is fully loaded.
    from web.api import CitationOut, ErrorOut, K, _Open, _text

    limit = kb.settings.max_question_chars
    Topic = Annotated[StrictStr, _text(limit), Field(description="the topic of the briefing, e.g. 锦州数字政府建设")]
    k_doc = f"number of passages the briefing draws on (default {DEFAULT_K})"

    class BriefRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        topic: Topic
        k: Annotated[K, Field(description=k_doc)] | None = None

    class BriefQuery(BaseModel):  # query strings are text: k is parsed, not strict
        model_config = ConfigDict(extra="forbid")
        topic: Topic
        k: Annotated[int, Field(ge=1, le=50, description=k_doc)] | None = None

    class BriefOut(_Open):
        topic: str
        found: bool = Field(description="false when the knowledge base holds nothing on the topic")
        markdown: str = Field(description="the briefing: GitHub-flavoured Markdown with [^n] footnotes")
        sources: list[CitationOut] = Field(description="footnote n is sources[n - 1]")
        timings_ms: dict[str, float]

    class JSONErrorRoute(APIRoute):
        """Invalid requests and refused topics answer in the API's JSON error shape."""

        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            handler = super().get_route_handler()

            async def route(request: Request) -> Response:
                try:
                    return await handler(request)
                except RequestValidationError as exc:
                    return await on_validation_error(request, exc)
                except QuestionError as exc:
                    return error_response(422, str(exc))
                except HTTPException as exc:  # e.g. a body FastAPI cannot parse at all
                    if exc.status_code >= 500:
                        raise
                    return error_response(exc.status_code, str(exc.detail))

            return route

    errors: dict[int | str, dict[str, Any]] = {
        413: {"model": ErrorOut, "description": "request body too large (settings.max_body_bytes)"},
        422: {"model": ErrorOut, "description": "invalid request"},
    }
    router = APIRouter(route_class=JSONErrorRoute, tags=["briefings"])

    def _brief(topic: str, k: int | None):
        return kb.brief(topic, DEFAULT_K if k is None else k)

    @router.post("/api/brief", response_model=BriefOut, responses=errors)
    def brief(req: BriefRequest) -> dict:
        """A briefing on a topic: verbatim sentences of the sources, grouped by document, footnoted."""
        return _brief(req.topic, req.k).to_dict()

    @router.get(
        "/api/brief.md",
        response_class=Response,
        responses={200: {"content": {"text/markdown": {}}, "description": "the briefing as a Markdown file"}}
        | {422: errors[422]},
    )
    def brief_markdown(query: Annotated[BriefQuery, Query()]) -> Response:
        """The briefing on ``topic`` as a ``.md`` download (``X-Briefing-Found`` says whether
        the knowledge base held anything on it)."""
        briefing = _brief(query.topic, query.k)
        return Response(
            briefing.markdown,
            media_type="text/markdown; charset=utf-8",
            headers={
                "Content-Disposition": content_disposition(briefing_filename(briefing.topic)),
                "X-Content-Type-Options": "nosniff",
                "X-Briefing-Found": "true" if briefing.found else "false",
            },
        )

    return router
