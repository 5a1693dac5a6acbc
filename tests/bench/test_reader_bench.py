"""bench/reader.py's arithmetic on rows written here: the operating points, the gate's fit, and
English questions left to the chooser as the app leaves them."""

from __future__ import annotations

import random

from bench.reader import choose_point, chooser_verdicts, fit_gate, gate_cross_validated, gate_verdicts, verdicts


def row(qid: int, *, correct: bool, p: float, margin: float, removed_p: float, removed_margin: float,
        question: str = "锦州的“三个开放”是什么？") -> dict:
    return {"id": str(qid), "question": question, "chooser_p": p, "chooser_correct": correct,
            "removed_chooser_p": removed_p, "removed_margin": removed_margin,
            "readings": [{"margin": margin, "correct": correct, "doc": "d"}]}


def rows_where_the_reader_tells_what_the_chooser_cannot(n: int = 200) -> list[dict]:
    """The chooser's probability is noise; the reader's margin is high exactly when the pick is
    correct, and low with the gold documents removed."""
    rnd = random.Random(3)
    return [row(i, correct=i % 2 == 0, p=rnd.uniform(0.3, 0.7), margin=(6.0 if i % 2 == 0 else -6.0) + rnd.gauss(0, 1),
                removed_p=rnd.uniform(0.3, 0.7), removed_margin=-3.0 + rnd.gauss(0, 1)) for i in range(n)]


def test_the_operating_point_refuses_the_target_share_with_gold_removed():
    rows = rows_where_the_reader_tells_what_the_chooser_cannot()
    point = choose_point(rows, 0.95)
    assert verdicts(rows, point)["refused_gold_removed"] >= 0.95
    assert verdicts(rows, point - 1.0)["refused_gold_removed"] < 0.95  # and it is the lowest such point


def test_the_gate_learns_to_trust_the_judge_that_knows_and_beats_the_chooser_alone():
    rows = rows_where_the_reader_tells_what_the_chooser_cannot()
    gate = fit_gate(rows)
    assert gate["weights"][1] > 0.5 > abs(gate["weights"][0])
    held = gate_cross_validated(rows, chooser_point=0.5)
    assert held["refused_gold_removed"] >= 0.9
    assert held["correct"] > 0.4 and held["wrong"] < 0.05
    alone = chooser_verdicts(rows, 0.5)
    assert alone["wrong"] > 0.15  # the chooser alone cannot tell its right picks from its wrong ones


def test_an_english_question_is_judged_by_the_chooser_alone_whatever_the_reader_says():
    gate = {"weights": [0.0, 1.0], "bias": 0.0, "min_probability": 0.5}
    english = [row(0, correct=True, p=0.9, margin=-20.0, removed_p=0.1, removed_margin=20.0,
                   question="What are Jinzhou's three opens?")]
    assert gate_verdicts(english, gate, chooser_point=0.45) == {
        "questions": 1, "correct": 1.0, "wrong": 0.0, "refused": 0.0, "refused_gold_removed": 1.0}
    chinese = [english[0] | {"question": "锦州的“三个开放”是什么？"}]
    assert gate_verdicts(chinese, gate, chooser_point=0.45)["refused"] == 1.0
