"""Named knowledge bases in one store and filters inside retrieval, through the facade on the
real parts: embedded Chroma and the default e5 embedder."""

from __future__ import annotations

import pytest

from kbqa.knowledge_base import KnowledgeBases, QuestionError, UnknownKnowledgeBase
from kbqa.retrieval import HybridSearcher
from kbcore.types import Filters
from tests.conftest import REGION_ARTICLES, REGION_QUESTION, write_region_articles

JINZHOU, GUIYANG = "jinzhou.txt", "guiyang.txt"


def doc_ids(passages) -> set[str]:
    return {p.chunk.doc_id for p in passages}


def test_documents_carry_their_regions_dates_and_ingest_time(region_kbs):
    records = {r.doc_id: r for r in region_kbs.get("regions").documents()}
    assert records[JINZHOU].regions == ("辽宁省", "锦州市", "凌海市") and records[JINZHOU].date == "2023-08-05"
    assert records[GUIYANG].regions == ("贵州省", "贵阳市", "观山湖区") and records[GUIYANG].date == "2024-03-01"
    assert all(r.ingested_at and r.ingested_at.endswith("Z") for r in records.values())


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (None, {JINZHOU, GUIYANG}),
        ({"region": "锦州"}, {JINZHOU}),  # a short name matches the city's documents
        ({"region": "辽宁"}, {JINZHOU}),  # a province matches its cities'
        ({"region": "凌海"}, {JINZHOU}),  # a county too
        ({"region": " 贵阳市 "}, {GUIYANG}),
        ({"region": "海南"}, set()),
        ({"date_to": "2023-12-31"}, {JINZHOU}),
        ({"date_from": "2024-01-01", "date_to": "2024-03-01"}, {GUIYANG}),
        ({"source": GUIYANG}, {GUIYANG}),
        ({"region": "锦州", "date_from": "2024-01-01"}, set()),
        ({"region": "", "source": None}, {JINZHOU, GUIYANG}),  # blanks restrict nothing
    ],
)
def test_filters_narrow_the_search(region_kbs, filters, expected):
    found = region_kbs.get("regions").search(REGION_QUESTION, 5, filters=filters)
    assert doc_ids(found.passages) == expected
    assert found.passages[0].chunk.doc_id == GUIYANG if GUIYANG in expected else True


def test_the_langchain_retriever_and_chain_take_the_same_filters(region_kbs):
    kb = region_kbs.get("regions")
    assert {d.metadata["doc_id"] for d in kb.retriever(5).invoke(REGION_QUESTION)} == {JINZHOU, GUIYANG}
    assert {d.metadata["doc_id"] for d in kb.retriever(5, filters={"region": "锦州"}).invoke(REGION_QUESTION)} == {JINZHOU}
    answer = kb.chain(5, filters={"region": "锦州"}).invoke(REGION_QUESTION)
    assert {p.chunk.doc_id for p in answer.passages} == {JINZHOU}
    with pytest.raises(QuestionError):
        kb.retriever(5, filters={"date_from": "yesterday"})


@pytest.mark.parametrize("leg", ["lexical", "dense"])
def test_each_leg_filters_before_it_ranks(region_kbs, embedder, leg):
    """One candidate a leg: the 贵阳 chunk is each leg's best, so a filter applied after the top
    1 would leave nothing; applied inside the leg, the 锦州 chunk is its top 1."""
    kb = region_kbs.get("regions")
    weights = {"dense_weight": 0.0} if leg == "lexical" else {"lexical_weight": 0.0}
    searcher = HybridSearcher(kb.store, embedder, candidate_k=1, **weights)
    (best,) = searcher.retrieve(REGION_QUESTION, 1).passages
    assert best.chunk.doc_id == GUIYANG
    (kept,) = searcher.retrieve(REGION_QUESTION, 1, filters=Filters(region="锦州市")).passages
    assert kept.chunk.doc_id == JINZHOU
    assert (kept.lexical_score if leg == "lexical" else kept.dense_score) is not None


def test_answers_and_briefings_draw_on_the_filtered_documents_only(region_kbs):
    kb = region_kbs.get("regions")
    assert doc_ids(c.passage for c in kb.ask(REGION_QUESTION).citations) == {GUIYANG}
    answer = kb.ask(REGION_QUESTION, filters={"region": "锦州"})
    assert doc_ids(c.passage for c in answer.citations) | doc_ids(answer.passages) == {JINZHOU}
    nothing = kb.ask(REGION_QUESTION, filters={"region": "海南"})
    assert nothing.found is False and not nothing.citations and not nothing.related
    briefing = kb.brief("数据中心建设", filters={"date_from": "2024-01-01"})
    assert doc_ids(c.passage for c in briefing.sources) <= {GUIYANG}


@pytest.mark.parametrize(
    ("filters", "message"),
    [({"date_from": "2023-02-30"}, "date_from"), ({"date_from": "2024-01-01", "date_to": "2023-01-01"}, "after"),
     ({"city": "锦州"}, "city")],
)
def test_bad_filters_are_question_errors(region_kbs, filters, message):
    with pytest.raises(QuestionError, match=message):
        region_kbs.get("regions").search(REGION_QUESTION, filters=filters)


def test_knowledge_bases_are_isolated(make_settings, embedder, tmp_path):
    kbs = KnowledgeBases(make_settings(), embedder=embedder)
    assert kbs.names() == ["default"]
    with pytest.raises(UnknownKnowledgeBase):
        kbs.get("a")  # reading never creates one
    report = kbs.open("a").ingest([str(write_region_articles(tmp_path / "docs"))])
    assert sorted(report.added) == sorted(REGION_ARTICLES)
    b = kbs.open("b")
    assert b.documents() == [] and b.search(REGION_QUESTION).passages == ()
    assert kbs.get("default").documents() == []
    assert kbs.describe() == [{"name": "default", "documents": 0, "chunks": 0},
                              {"name": "a", "documents": 2, "chunks": 2}, {"name": "b", "documents": 0, "chunks": 0}]
    # Another process opening the store finds them by their collections; they share a client
    # and the embedder, and the same name is the same object.
    again = KnowledgeBases(kbs.settings, embedder=embedder)
    assert again.names() == ["default", "a", "b"] and again.get("a") is again.get("a")
    assert again.get("a").client is again.get("b").client is again.client
    assert doc_ids(again.get("a").search(REGION_QUESTION).passages) == {JINZHOU, GUIYANG}
