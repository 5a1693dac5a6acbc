"""English questions over Chinese documents: the dictionary translation of their words
(kbqa/crosslingual.py), on hand-built entries and on CC-CEDICT, and through the seed store."""

from __future__ import annotations

import pytest

from kbqa.crosslingual import Glossary, glossary, translated_terms

ENTRIES = [
    {"simplified": "机构", "pinyin": "ji1 gou4", "definitions": ["mechanism", "structure", "organization", "agency", "institution", "CL:所[suo3]"]},
    {"simplified": "制度", "pinyin": "zhi4 du4", "definitions": ["system (e.g. political, administrative etc)", "institution"]},
    {"simplified": "云计算", "pinyin": "yun2 ji4 suan4", "definitions": ["cloud computing"]},
    {"simplified": "云", "pinyin": "yun2", "definitions": ["cloud"]},
    {"simplified": "计算", "pinyin": "ji4 suan4", "definitions": ["to count", "to calculate", "to compute"]},
    {"simplified": "锦州", "pinyin": "Jin3 zhou1", "definitions": ["Jinzhou prefecture-level city in Liaoning province"]},
    {"simplified": "开放", "pinyin": "kai1 fang4", "definitions": ["to lift a ban or restriction", "to open to the outside", "to open up"]},
    {"simplified": "迁移", "pinyin": "qian1 yi2", "definitions": ["to migrate", "to move"]},
    {"simplified": "醫療", "pinyin": "yi1 liao2", "definitions": ["medical treatment"]},  # not simplified Han only: kept
]
IN_DOCUMENTS = {"机构": 40, "制度": 3, "云计算": 5, "云": 9, "计算": 2, "锦州": 12, "开放": 7, "迁移": 4, "2017": 2}


def frequency(word: str) -> int:
    return IN_DOCUMENTS.get(word, 0)


def test_phrases_before_words_and_names_by_pinyin_or_definition():
    g = Glossary(ENTRIES)
    found = dict(g.translate("Which systems migrated to the cloud computing platform of Jinzhou in 2017?", frequency))
    assert found["cloud computing"][0] == "云计算"  # the phrase, not 云 + 计算
    assert "cloud" not in found and "computing" not in found
    assert found["migrated"] == ["迁移"]  # inflections reduced to the dictionary's base form
    assert found["jinzhou"][0] == "锦州"
    assert found["2017"] == ["2017"]  # numbers stand for themselves when the documents hold them
    assert "which" not in found and found["platform"] == []  # stopwords out; no translation the documents hold


def test_senses_rank_by_place_and_specificity_and_only_words_the_documents_hold():
    g = Glossary(ENTRIES)
    assert g.translate("institutions", frequency)[0][1] == ["制度", "机构"]  # a sense standing alone beats one in a list
    assert g.translate("openings", frequency)[0][1] == ["开放"]  # "openings" -> "open" -> "open up"
    assert g.translate("institutions", lambda w: w == "机构" and 1)[0][1] == ["机构"]
    assert g.translate("the of which how many", frequency) == []
    assert g.translate("Paris", frequency) == [("paris", [])]


def test_the_terms_of_an_english_question_search_every_translation_and_weigh_the_best():
    terms = translated_terms("How many systems did Jinzhou migrate to Huawei Cloud?", lambda w: 1 if w in {"系统", "锦州", "迁移", "华为", "云"} else 0)
    assert set(terms.weights) == {"系统", "锦州", "迁移", "华为", "云"}
    assert set(terms.weights) <= set(terms.search)
    # A word the documents hold no translation of is asked about all the same: it stays missing.
    terms = translated_terms("What is the population of Paris?", lambda w: 1 if w == "总体" else 0)
    assert terms.search == ("总体",) and set(terms.weights) == {"总体", "paris"}


def test_cc_cedict_translates_the_domains_words():
    g = glossary()
    known = {"锦州", "云计算", "大数据", "医疗机构", "机构", "监管", "平台", "华为", "重庆", "复工", "口罩"}
    found = dict(g.translate("Jinzhou cloud computing big data supervision platform Huawei Chongqing masks", lambda w: w in known))
    assert found["jinzhou"][0] == "锦州" and found["chongqing"][0] == "重庆" and found["huawei"][0] == "华为"
    assert found["cloud computing"][0] == "云计算" and found["big data"][0] == "大数据"
    assert found["supervision"][0] == "监管" and found["platform"][0] == "平台" and found["masks"][0] == "口罩"


@pytest.mark.parametrize(
    "question, passage_holds",
    [
        ("What are Jinzhou's \"three openings\"?", "三个开放"),
        ("In which year did Huawei sign a cloud computing agreement with Jinzhou?", "2017年,华为与锦州签署云计算产业战略协议"),
        ("How many non-emergency hotlines were closed or merged?", "撤并110部非紧急类热线"),
    ],
)
def test_an_english_question_finds_the_chinese_passage_through_both_legs(seed_kb, question, passage_holds):
    result = seed_kb.search(question)
    assert result.terms.search and all("\u4e00" <= t[0] <= "\u9fff" or t.isdigit() for t in result.terms.search)
    assert passage_holds in result.passages[0].chunk.text
