"""One FastAPI app over a store's knowledge bases: the JSON/SSE API under /api, the briefing
endpoints, the embeddable widget, and the Gradio chat page at /, behind one stack of
middleware (web/middleware.py, web/gradio_guard.py) that covers every route."""

from __future__ import annotations

import functools
import ipaddress
from pathlib import Path

import gradio as gr
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount

from kbcore.settings import Settings
from kbqa.knowledge_base import KnowledgeBase, KnowledgeBases
from web.admin.jobs import Jobs
from web.admin.key import AdminKey, upload_limit
from web.admin.routes import admin_router
from web.api import api_router
from web.briefing import briefing_router
from web.chat.assets import CHAT_CSS, CHAT_HEAD, CHAT_THEME
from web.chat.layout import build_chat
from web.errors import error_response, on_http_error, on_validation_error
from web.feedback import FeedbackStore, feedback_path
from web.gradio_guard import GradioGuard, hide_object_reprs, mark_launched, own_cache, queue_failure
from web.metrics import HTTPMetrics, metrics_router
from web.middleware import (
    BodyLimitMiddleware,
    RateLimitMiddleware,
    SecurityHeadersMiddleware,
    UntrustedForwardedHeaders,
    admin_request,
)
from web.openai_compat import OpenAIErrors, openai_router
from web.widget import widget_router

DOCS_STATIC = "/docs-static"


def create_app(kb: KnowledgeBase | KnowledgeBases, settings: Settings | None = None) -> FastAPI:
    """The app over the knowledge bases of ``kb``'s store (``kb`` among them). Web limits (rate,
    body size and time, origins, hosts, proxies) come from ``settings``, by default
    ``kb.settings``."""
    kbs = kb if isinstance(kb, KnowledgeBases) else KnowledgeBases.serving(kb)
    settings = settings or kbs.settings
    # FastAPIOffline: /docs and /redoc from Swagger UI 5 and Redoc files shipped in the
    # fastapi-offline package (FastAPI's own pages load them from a CDN: blank offline).
    app = FastAPIOffline(
        static_url=DOCS_STATIC,
        redoc_url=None,  # ours below: Redoc as shipped asks a CDN for its maker's logo
        title="知识库问答 API",
        description="Ask questions of the knowledge base; every answer sentence cites its source passage.",
        version="1.0",
        exception_handlers={RequestValidationError: on_validation_error, StarletteHTTPException: on_http_error},
    )
    key = AdminKey(settings)
    feedback = FeedbackStore(feedback_path(settings))
    jobs = Jobs()
    admin = admin_router(kbs, settings, key, feedback, jobs)
    registry = CollectorRegistry()  # the app's own: several apps in one process count apart
    demo = build_chat(kbs, feedback=feedback, admin=key.enabled)
    own_cache(demo)
    # add_middleware puts each new one outside the last. From the outside in: security headers
    # on every response; the Host header checked; forwarded headers dropped unless a trusted
    # proxy sent them; CORS (preflights answered before they cost a rate-limit token, and the
    # limiter's 429 still readable by an allowed page); the rate limit; the body's size and
    # time while it arrives. Gradio's own mount is wrapped in GradioGuard at the end.
    # An upload showing the admin key may be larger than a query (max_upload_bytes); any other
    # request, an upload without the key included, keeps max_body_bytes.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout=settings.body_timeout_seconds,
        larger=upload_limit(settings, key),
    )
    if settings.rate_limit_per_minute > 0 and settings.rate_limit_burst > 0:
        app.add_middleware(
            RateLimitMiddleware,
            per_minute=settings.rate_limit_per_minute,
            burst=settings.rate_limit_burst,
            trusted_proxies=settings.trusted_proxies,
            # The admin endpoints too: an admin polling a job costs what a visitor's question does.
            limited=lambda scope: RateLimitMiddleware.limited(scope) or admin_request(scope),
        )
    if settings.admin_rate_limit_per_minute > 0 and settings.admin_rate_limit_burst > 0:
        # And buckets of their own, far smaller, for admin requests that do not show the key:
        # guessing it costs a token each time (30 a minute by default), the admin's work none.
        app.add_middleware(
            RateLimitMiddleware,
            per_minute=settings.admin_rate_limit_per_minute,
            burst=settings.admin_rate_limit_burst,
            trusted_proxies=settings.trusted_proxies,
            limited=lambda scope: admin_request(scope) and not key.allows(scope),
        )
    # Outside the limits, so their refusals of /v1/ requests are rewritten into OpenAI's shape too.
    app.add_middleware(OpenAIErrors)
    # One CORS policy for the whole app: with this middleware on the parent app, Gradio adds
    # none of its own (its default allowed any origin, with credentials, for a non-local Host).
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.allowed_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
        allow_credentials=False,
        max_age=600,
    )
    app.add_middleware(UntrustedForwardedHeaders, trusted_proxies=settings.trusted_proxies)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=_served_hosts(settings), www_redirect=False)
    app.add_middleware(SecurityHeadersMiddleware, frame_ancestors=settings.allowed_origins)
    # Outermost: every request is counted and timed, those the layers inside refuse included.
    app.add_middleware(HTTPMetrics, registry=registry)

    app.include_router(redoc_router())
    app.include_router(api_router(kbs, failing=lambda: queue_failure(demo)))
    app.include_router(briefing_router(kbs))
    app.include_router(openai_router(kbs))
    app.include_router(admin)
    # GET /metrics: with the admin key, or for anyone when settings.metrics_public (web/metrics.py).
    app.include_router(metrics_router(
        kbs, registry, job_states=jobs.states,
        allowed=lambda request: 0 if settings.metrics_public else key.status(request.headers.get("authorization")),
    ))

    # After every API router: unknown /api and /v1 paths would otherwise fall through to the
    # Gradio mount and get its non-JSON 404; API clients always get {"error": ...}.
    @app.api_route("/api/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def no_such_endpoint(request: Request, path: str) -> JSONResponse:
        return error_response(404, f"no such endpoint: {request.method} {request.url.path} (see /docs)")

    app.include_router(widget_router(kb.settings.max_history_messages, kb.settings.max_history_chars))

    if key.enabled:
        # The admin's address: the chat page with its 管理 tab shown (hidden from visitors).
        # Relative, so it works under any mount path.
        @app.get("/admin", include_in_schema=False)
        def admin_page() -> RedirectResponse:
            return RedirectResponse("./?admin", status_code=307)

    # Mounted last: a mount at "/" matches every path, so the API routes must come first.
    # run_history=False: Gradio would otherwise keep every question in the browser and offer
    # to sync them to a Hugging Face bucket. show_error=False: an exception's text (internals)
    # never reaches the page; the chat turns the errors a visitor can cause into messages.
    # No allowed_paths: Gradio serves no file of the host's.
    app = gr.mount_gradio_app(
        app, demo, path="/", run_history=False, show_error=False, allowed_paths=[], css=CHAT_CSS, head=CHAT_HEAD,
        theme=CHAT_THEME,
    )
    # What Gradio's half accepts (web/gradio_guard.py): the guard wraps the mount itself, so
    # the API's own routes never pass through it and it needs no list of them.
    gradio_mount = next(route for route in app.routes if isinstance(route, Mount) and route.path in ("", "/"))
    gradio_mount.app = GradioGuard(
        gradio_mount.app,
        demo=demo,
        trusted_proxies=settings.trusted_proxies,
        max_events_per_client=settings.max_events_per_client,
        max_heartbeats_per_client=settings.max_heartbeats_per_client,
        max_heartbeats=settings.max_heartbeats,
    )
    mark_launched(demo)
    hide_object_reprs(demo)
    return app


# The one address Redoc 2's bundle (fastapi-offline 1.7.7) fetches from outside: the logo in its
# sidebar's "API docs by Redocly" link. An empty data: URL instead fails to load, and Redoc
# then hides the image itself (its onError).
_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@functools.cache
def _redoc_js() -> bytes:
    import fastapi_offline

    js = (Path(fastapi_offline.__file__).parent / "static" / "redoc.standalone.js").read_text(encoding="utf-8")
    if _REDOC_LOGO not in js:
        raise RuntimeError("the Redoc bundle changed: check what it fetches (tests/web/test_http_policy.py)")
    return js.replace(_REDOC_LOGO, "data:,").encode("utf-8")


def redoc_router() -> APIRouter:
    """``/redoc`` on Redoc's bundle with nothing fetched from outside."""
    router = APIRouter(include_in_schema=False)

    @router.get("/redoc")
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=f"{root}/openapi.json", title="知识库问答 API - ReDoc",
                              redoc_js_url=f"{root}/redoc.js", with_google_fonts=False,
                              redoc_favicon_url=f"{root}{DOCS_STATIC}/favicon.png")

    @router.get("/redoc.js")
    def redoc_js() -> Response:
        return Response(_redoc_js(), media_type="text/javascript")

    return router


def _served_hosts(settings: Settings) -> list[str]:
    """``trusted_hosts``, and the address the app is bound to when it names one. An IPv6
    address also as a Host header writes it, in brackets (``[::1]:7860``): Starlette compares
    the bracketed form, so ``::1`` alone matched no request."""
    hosts = list(settings.trusted_hosts)
    if settings.host not in ("0.0.0.0", "::", "") and settings.host not in hosts:
        hosts.append(settings.host)
    for host in list(hosts):
        try:
            if ipaddress.ip_address(host).version == 6 and f"[{host}]" not in hosts:
                hosts.append(f"[{host}]")
        except ValueError:  # a name or a pattern
            pass
    return hosts
