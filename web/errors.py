"""The API's one error shape, ``{"error": message, "detail": [...]}``, for every route and
middleware (the JSON API's, and the refusals in front of Gradio)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def error_response(status: int, message: str, detail: list[dict[str, Any]] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "detail": detail or []}, status_code=status)


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Only loc/msg/type go back: "input" could echo a 50,000-character body, and "ctx" may
    # hold exception objects that are not JSON.
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
    summary = "; ".join(f"{'.'.join(map(str, d['loc']))}: {d['msg']}" for d in detail)
    return error_response(422, f"invalid request: {summary}", detail)
