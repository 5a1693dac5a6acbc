"""Fixtures of the reliability tests: one corpus and its reference stores, built once."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from reliability import (
    CHUNK_SIZE,
    EMBEDDER,
    INGEST_FLAGS,
    REPO,
    Corpus,
    assert_consistent,
    snapshot,
)


@pytest.fixture(scope="session")
def nano():
    from kbcore.embeddings import make_embedder
    from kbcore.settings import Settings

    return make_embedder(Settings(embedder=EMBEDDER))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    """One corpus at one path (so manifests' origins match); tests write the version they need."""
    corpus = Corpus(tmp_path_factory.mktemp("corpus"))
    corpus.write("v1")
    return corpus


@pytest.fixture(scope="session")
def open_kb(nano):
    from kbqa.knowledge_base import KnowledgeBase
    from kbcore.settings import Settings

    def open_(store: Path | None = None, **overrides):
        settings = Settings(embedder=EMBEDDER, chunk_size=CHUNK_SIZE, **({"store": store} if store else {}), **overrides)
        return KnowledgeBase(settings, embedder=nano)

    return open_


@pytest.fixture(scope="session")
def r1(corpus, open_kb, tmp_path_factory) -> tuple[Path, dict]:
    """A clean `python -m ingest` of v1: (pristine store folder to copy, its snapshot)."""
    corpus.write("v1")
    store = tmp_path_factory.mktemp("r1") / "chroma"
    done = subprocess.run([sys.executable, "-m", "ingest", *corpus.inputs, "--store", str(store), *INGEST_FLAGS],
                          check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    pristine = store.with_name("pristine")
    shutil.copytree(store, pristine)  # before this process opens it: copies start from quiet files
    kb = open_kb(store)
    assert_consistent(kb.store)
    snap = snapshot(kb.store, corpus.root)
    assert 30 <= snap["counts"][0] <= 70, snap["counts"]
    return pristine, snap


@pytest.fixture(scope="session")
def r2(corpus, open_kb, tmp_path_factory) -> dict:
    """The snapshot of a fresh ingest of v2 (what any path to v2 must end at)."""
    corpus.write("v2")
    kb = open_kb(tmp_path_factory.mktemp("r2") / "chroma")
    report = kb.ingest(corpus.inputs)
    assert not report.failed, report.failed
    assert_consistent(kb.store)
    return snapshot(kb.store, corpus.root)


@pytest.fixture
def r1_copy(r1, tmp_path) -> Path:
    """A private copy of the v1 store."""
    store = tmp_path / "chroma"
    shutil.copytree(r1[0], store)
    return store


@pytest.fixture
def kb(make_settings, embedder):
    """A fresh knowledge base on its own store, with the real e5-small embedder."""
    from kbqa.knowledge_base import KnowledgeBase

    return KnowledgeBase(make_settings(), embedder=embedder)
