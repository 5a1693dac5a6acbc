"""LangChain faces of the plain-Python parts: ``HybridRetriever`` (a ``BaseRetriever`` over
``HybridSearcher``), ``LangChainEmbeddings`` (any ``Embedder`` as LangChain ``Embeddings``), and
the conversions between ``Passage`` and LangChain's ``Document``.

Apart from the engine so that what never composes a chain (``python -m ingest --list``, a
store opened to read its manifest) does not import LangChain: ~0.3 s of start-up.
"""

from __future__ import annotations

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.embeddings import Embeddings
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from kbcore.embeddings import Embedder
from kbqa.retrieval import HybridSearcher
from kbcore.types import Chunk, Filters, Passage


class LangChainEmbeddings(Embeddings):
    """Lets LangChain components (vector stores, retrievers) use any ``Embedder``."""

    def __init__(self, embedder: Embedder):
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embedder.embed_passages(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embedder.embed_queries([text])[0].tolist()


def passage_to_langchain(passage: Passage) -> LCDocument:
    return LCDocument(page_content=passage.chunk.text, metadata=passage.to_dict() | {
        "ordinal": passage.chunk.ordinal,
        "dense_score": passage.dense_score,
        "lexical_score": passage.lexical_score,
        "coverage": passage.coverage,
    })


def passage_from_langchain(doc: LCDocument) -> Passage:
    meta = doc.metadata
    chunk = Chunk(
        doc_id=meta["doc_id"],
        ordinal=int(meta.get("ordinal", 0)),
        text=doc.page_content,
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", len(doc.page_content))),
        title=meta.get("title", ""),
        section=meta.get("section", ""),
        date=meta.get("date"),
        source=meta.get("source", ""),
    )
    return Passage(
        chunk=chunk,
        score=float(meta.get("score", 0.0)),
        dense_score=meta.get("dense_score"),
        lexical_score=meta.get("lexical_score"),
        coverage=meta.get("coverage"),
    )


class HybridRetriever(BaseRetriever):
    """LangChain face of ``HybridSearcher``: ``retriever.invoke(question)`` -> Documents."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: HybridSearcher
    k: int = 5
    filters: Filters | None = None  # applied inside retrieval, as KnowledgeBase.search does

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[LCDocument]:
        """``k``: this call's number of documents (``retriever.invoke(q, k=1)``, as LangChain's
        retrievers take it), else the retriever's own."""
        found = self.searcher.retrieve(query, self.k if k is None else k, filters=self.filters)
        return [passage_to_langchain(p) for p in found.passages]
