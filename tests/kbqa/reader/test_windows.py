"""The reader's window layout and span decoding, on hand-built ids and logits."""

from __future__ import annotations

import numpy as np

from kbqa.reader.windows import BOS, EOS, MAX_TOKENS, OVERLAP, QUESTION_TOKENS, Window, best_span, windows


def _passage(n: int) -> tuple[list[int], list[tuple[int, int]]]:
    return [100 + i for i in range(n)], [(2 * i, 2 * i + 2) for i in range(n)]


def test_a_short_passage_is_one_window_in_xlmr_pair_layout():
    ids, offsets = _passage(10)
    (w,) = windows([7, 8, 9], ids, offsets)
    assert w.ids == [BOS, 7, 8, 9, EOS, EOS, *ids, EOS]
    assert w.passage_from == 6 and w.offsets == offsets


def test_a_long_passage_is_read_in_overlapping_windows_that_cover_it_all():
    ids, offsets = _passage(700)
    out = windows([7] * 200, ids, offsets)  # a long question is cut to QUESTION_TOKENS
    assert all(len(w.ids) <= MAX_TOKENS for w in out)
    assert all(w.ids[1:1 + QUESTION_TOKENS] == [7] * QUESTION_TOKENS for w in out)
    seen = [t for w in out for t in w.ids[w.passage_from:-1]]
    assert set(seen) == set(ids)
    first, second = out[0], out[1]
    shared = set(first.ids[first.passage_from:-1]) & set(second.ids[second.passage_from:-1])
    assert len(shared) == OVERLAP
    assert out[-1].ids[-2] == ids[-1]


def test_best_span_takes_the_best_start_end_pair_and_its_margin_over_no_answer():
    w = Window([BOS, 7, EOS, EOS, 100, 101, 102, 103, EOS], 4, [(0, 2), (2, 4), (4, 6), (6, 8)])
    start = np.array([1.0, 0, 0, 0, 0.5, 3.0, 0.2, 0.1, 0])
    end = np.array([1.0, 0, 0, 0, 0.1, 0.3, 0.2, 4.0, 0])
    span = best_span(w, start, end)
    assert (span.start, span.end) == (2, 8)  # tokens 1..3 of the passage
    assert span.score == 7.0 and span.margin == 5.0


def test_best_span_never_ends_before_it_starts_nor_runs_too_long():
    w = Window([BOS, EOS, EOS, 100, 101, 102, EOS], 3, [(0, 1), (1, 2), (2, 3)])
    start = np.array([0, 0, 0, -5.0, -5.0, 9.0, 0])
    end = np.array([0, 0, 0, 9.0, -5.0, -5.0, 0])  # the best end lies before the best start
    span = best_span(w, start, end)
    assert span.start <= span.end - 1
    assert best_span(w, start, end, max_tokens=1).end - best_span(w, start, end, max_tokens=1).start == 1
