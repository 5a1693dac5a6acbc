"""The API's one error shape, ``{"error": message, "detail": [...]}``, for every route and
middleware (the JSON API's, and the refusals in front of Gradio)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from kbqa.knowledge_base import QuestionError, StoreUnavailableError, UnknownKnowledgeBase


def error_response(status: int, message: str, detail: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail or []}, status_code=status)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Only loc/msg/type go back: "input" could echo a 50,000-character body, and "ctx" may
    # hold exception objects that are not JSON.
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    summary = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail)
    return error_response(422, f"invalid request: {summary}", detail)


async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Starlette's own 404/405 (a path no route matches, e.g. one holding a newline, which no
    ``{path:path}`` catch-all matches either) in the one error shape, its headers kept."""
    response = error_response(exc.status_code, f"{exc.detail} ({request.method} {request.url.path!r:.200})")
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


class JSONErrorRoute(APIRoute):
    """The route class of every router of the JSON API: invalid requests, refused questions,
    the client errors FastAPI raises itself (a body it cannot parse), an unknown knowledge base
    (404) and a store that cannot be reached (503) answer in the one error shape, in any app
    that includes the router."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return await on_validation_error(request, exc)
            except QuestionError as exc:
                return error_response(422, str(exc))
            except UnknownKnowledgeBase as exc:
                return error_response(404, str(exc))
            except StoreUnavailableError as exc:
                response = error_response(503, f"知识库暂时无法访问，请稍后再试（the store is unavailable: {exc}）")
                response.headers["Retry-After"] = "5"
                return response
            except HTTPException as exc:
                if exc.status_code >= 500:
                    raise
                return error_response(exc.status_code, str(exc.detail))

        return route
