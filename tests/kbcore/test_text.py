"""The ground floor's text utilities: a question cut once, and index tokens that stay jieba's."""

from __future__ import annotations

import jieba
import pytest

from kbcore.text import _TOKEN_OK, cut_question, query_terms, tokenize
from kbcore.types import QueryTerms
from tests.conftest import SEED

TEXTS = [
    "锦州的“三个开放”是什么？GDP",
    "北京市数字经济促进条例自2023年1月1日起施行。",
    "华为（锦州）云计算平台建设 Cloud Computing, 2.5 GHz",
    "中华人民共和国国务院办公厅关于印发《“十四五”数字经济发展规划》的通知",
    "",
    "？！。",
]


def jieba_search_mode(text: str) -> list[str]:
    return [t for t in (w.strip().lower() for w in jieba.cut_for_search(text)) if t and _TOKEN_OK.search(t)]


@pytest.mark.parametrize("text", [*TEXTS, SEED.read_text(encoding="utf-8")])
def test_tokenize_is_jiebas_search_mode(text):
    # Index tokens are derived from one precise-mode cut; they must equal what jieba's own
    # search mode gives, or questions and stored chunks would be cut differently.
    assert tokenize(text) == jieba_search_mode(text)


def test_a_question_is_cut_once_into_search_terms_and_key_words():
    terms = cut_question("北京市的数字经济政策有哪些？")
    assert isinstance(terms, QueryTerms) and terms.text == "北京市的数字经济政策有哪些？"
    assert list(terms.search) == query_terms(terms.text)
    assert {"北京", "北京市"} <= set(terms.search)  # search mode: the word and its parts
    assert list(terms.weights) == ["北京市", "数字", "经济"]  # precise mode, stopwords out
    assert terms.weights == {"北京市": 1.0, "数字": 1.0, "经济": 1.0} and terms.total == 3.0
    assert cut_question("？？").weights == {} and cut_question("？？").search == ()


def test_weighing_keeps_the_terms_and_replaces_the_weights():
    terms = cut_question("锦州云计算")
    weighed = terms.weighted(lambda word: float(len(word)))
    assert weighed.search == terms.search and list(weighed.weights) == list(terms.weights)
    assert weighed.weights == {word: float(len(word)) for word in terms.weights}
    assert terms.weights == dict.fromkeys(terms.weights, 1.0)  # the record is not changed
