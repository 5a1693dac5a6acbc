"""The default answerer: the chooser's sentences, judged again by the trained reader.

Real parts throughout: the shipped reader weights and gate, the seed article in a real store,
the real embedder.
"""

from __future__ import annotations

import json

import pytest

from kbqa.answering import ExtractiveAnswerer
from kbqa.reader.gate import GATE_PATH, gate_features, load_gate

THREE_OPENS = "锦州的“三个开放”是什么？"


@pytest.fixture(scope="module")
def reader(make_settings):
    from kbqa.reader.model import load_reader

    return load_reader(make_settings().model_cache)


def test_the_shipped_gate_is_fitted_for_the_shipped_reader_and_trusts_both_judges():
    data = json.loads(GATE_PATH.read_text(encoding="utf-8"))
    from kbqa.reader.build import READER_SHA256

    assert data["reader_sha256"] == READER_SHA256
    # More probable by the chooser, or a wider reader margin: never less likely to answer.
    assert data["weights"][0] > 0 and data["weights"][1] >= 0
    assert 0.0 < data["min_probability"] < 1.0
    assert data["fitted"]["dev_cross_validated"]["refused_gold_removed"] >= 0.9


def test_a_gate_fitted_for_other_weights_is_refused(tmp_path, reader):
    data = json.loads(GATE_PATH.read_text(encoding="utf-8")) | {"reader_sha256": "0" * 64}
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match="bench.reader --write-gate"):
        load_gate(reader, path)


def test_features_are_clipped_so_no_extreme_carries_the_judgement():
    assert gate_features(0.0, -1e9) == gate_features(1e-9, -50.0)
    assert gate_features(1.0, 1e9)[1] == 20.0


def test_the_seed_question_is_answered_with_the_readers_span_inside_the_quoted_sentence(seed_kb, reader):
    found = seed_kb.searcher.retrieve(THREE_OPENS, 5)
    gate = load_gate(reader, min_probability=0.0)
    answer = ExtractiveAnswerer(min_probability=0.0, embedder=seed_kb.embedder, second_opinion=gate).answer(
        THREE_OPENS, found.passages, found.terms)
    assert answer.found and "开放业务系统" in answer.text
    citation = answer.citations[0]
    assert citation.answer_span is not None
    lo, hi = citation.answer_span
    assert citation.start <= lo < hi <= citation.end
    chunk = citation.passage.chunk
    assert "开放" in chunk.text[lo - chunk.start:hi - chunk.start]
    assert "read_ms" in answer.timings_ms


def test_below_the_joint_operating_point_the_chooser_s_pick_is_refused(seed_kb, reader):
    found = seed_kb.searcher.retrieve(THREE_OPENS, 5)
    strict = load_gate(reader, min_probability=1.0)
    answer = ExtractiveAnswerer(min_probability=strict.min_probability, embedder=seed_kb.embedder,
                                second_opinion=strict).answer(THREE_OPENS, found.passages, found.terms)
    assert not answer.found and answer.related and answer.citations == ()


def test_the_default_knowledge_base_answers_with_both_judges_and_refuses_what_it_does_not_hold(seed_kb):
    assert seed_kb.settings.answerer == "chooser+reader"
    answer = seed_kb.ask(THREE_OPENS)
    assert answer.found and "开放数据资源" in answer.text
    assert answer.to_dict()["citations"][0]["answer_span"] is not None
    assert not seed_kb.ask("上海的人口是多少？").found
