"""LangChain's own standard tests (``langchain-tests``) against the project's retriever, so it
behaves as every LangChain retriever does: ``k`` in the constructor and per call
(``retriever.invoke(q, k=1)``), sync and async (issue 21)."""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from kbqa.langchain_adapters import HybridRetriever


class TestHybridRetriever(RetrieversIntegrationTests):
    searcher = None  # the seed knowledge base's, set by the fixture below

    @pytest.fixture(autouse=True)
    def _seed_searcher(self, seed_kb):
        type(self).searcher = seed_kb.searcher

    @property
    def retriever_constructor(self) -> type[HybridRetriever]:
        return HybridRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"searcher": self.searcher}

    @property
    def retriever_query_example(self) -> str:
        return "锦州的“三个开放”是什么？"
