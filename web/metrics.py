"""``GET /metrics``: the app in Prometheus' text format, by prometheus_client.

    kbqa_http_requests_total{route, method, status}      requests answered, by route template
    kbqa_http_request_duration_seconds{route, method}    their latency (a histogram)
    kbqa_answers_total{kb, outcome="found"|"refused"}    questions answered or refused, every face
    kbqa_documents{kb}, kbqa_chunks{kb}                   what each knowledge base holds (read at scrape)
    kbqa_ingest_jobs_total{state="done"|"failed"}        admin ingest jobs finished since the start
    kbqa_ingest_jobs_active{state="queued"|"running"}    admin ingest jobs waiting or running

Off the public surface, like the admin routes: it needs the admin key
(``Authorization: Bearer KEY``; 403 while none is set), unless ``settings.metrics_public``
(``KB_METRICS_PUBLIC=true``) opens it to anyone who can reach the app (a scraper on a private
network). Routes are labelled by their template (``/api/documents/{doc_id:path}``), never by
the raw path, so a client can't grow the label set; every path of the chat page is ``gradio``.
Each app has a registry of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kbqa.knowledge_base import KnowledgeBases
from web.errors import error_response


class HTTPMetrics:
    """Counts and times every HTTP request (ASGI middleware)."""

    def __init__(self, app: ASGIApp, *, registry: CollectorRegistry) -> None:
        self.app = app
        self.requests = Counter("kbqa_http_requests", "HTTP requests answered", ["route", "method", "status"],
                                registry=registry)
        self.latency = Histogram("kbqa_http_request_duration_seconds", "time to the end of the response",
                                 ["route", "method"], registry=registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # an exception before any response is a 500 to the client

        async def timed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed)
        finally:
            route, method = _route(scope), scope["method"]
            self.requests.labels(route, method, str(status)).inc()
            self.latency.labels(route, method).observe(time.perf_counter() - t0)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    if route is None:
        return "unmatched"
    if isinstance(route, Mount) and route.path in ("", "/"):
        return "gradio"
    return getattr(route, "path", "unmatched")


class _StoreCollector:
    """What the knowledge bases hold and have answered, and the ingest jobs, read at scrape time."""

    def __init__(self, kbs: KnowledgeBases, job_states: Callable[[], tuple[dict[str, int], dict[str, int]]]):
        self.kbs = kbs
        self.job_states = job_states

    def collect(self) -> Iterable:
        documents = GaugeMetricFamily("kbqa_documents", "documents in the knowledge base", labels=["kb"])
        chunks = GaugeMetricFamily("kbqa_chunks", "chunks in the knowledge base", labels=["kb"])
        for described in self.kbs.describe():
            documents.add_metric([described["name"]], described["documents"])
            chunks.add_metric([described["name"]], described["chunks"])
        answers = CounterMetricFamily("kbqa_answers", "questions answered (found) or refused", labels=["kb", "outcome"])
        for name in self.kbs.names():
            counts = self.kbs.get(name).answer_counts
            for outcome in ("found", "refused"):
                answers.add_metric([name, outcome], counts[outcome])
        finished, active = self.job_states()
        jobs_total = CounterMetricFamily("kbqa_ingest_jobs", "admin ingest jobs finished", labels=["state"])
        for state in ("done", "failed"):
            jobs_total.add_metric([state], finished.get(state, 0))
        jobs_now = GaugeMetricFamily("kbqa_ingest_jobs_active", "admin ingest jobs waiting or running", labels=["state"])
        for state in ("queued", "running"):
            jobs_now.add_metric([state], active.get(state, 0))
        yield from (documents, chunks, answers, jobs_total, jobs_now)


def metrics_router(
    kbs: KnowledgeBases,
    registry: CollectorRegistry,
    *,
    allowed: Callable[[Request], int],
    job_states: Callable[[], tuple[dict[str, int], dict[str, int]]],
) -> APIRouter:
    """``GET /metrics`` over ``registry`` (which ``HTTPMetrics`` fills) and the store;
    ``allowed(request)``: 0, or the status refusing it."""
    registry.register(_StoreCollector(kbs, job_states))
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        status = allowed(request)
        if status:
            return error_response(status, "/metrics needs the admin key (Authorization: Bearer <key>), "
                                          "or KB_METRICS_PUBLIC=true")
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
