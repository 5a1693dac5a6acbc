"""The chat's votes on hand-built inputs: which turn a vote names (web/chat/) and the store
(web/feedback.py). Through HTTP and Gradio's queue: tests/web/test_gradio_surface.py."""

from __future__ import annotations

import csv
import io
import sqlite3

from web.chat.session import message_text, voted_turn
from web.feedback import FeedbackStore

HISTORY = [
    {"role": "user", "content": "问题 &lt;一&gt;"},
    {"role": "assistant", "content": '<div class="kb-answer">答案 &amp; 引用<a class="kb-cite" href="#x">[1]</a></div>'},
    {"role": "user", "content": "问题二"},
    {"role": "assistant", "content": '<div class="kb-refusal">没有找到。</div>'},
]


def test_a_vote_names_an_answer_and_its_question_as_plain_text():
    assert voted_turn(HISTORY, 1) == ("问题 <一>", "答案 & 引用[1]")
    assert voted_turn(HISTORY, [3, 0]) == ("问题二", "没有找到。")


def test_a_vote_on_anything_but_an_answer_of_the_history_is_none():
    for index in (0, 2, 4, -1, "1", None, 1.0, [], True):
        assert voted_turn(HISTORY, index) is None, index
    assert voted_turn([], 0) is None
    assert voted_turn([{"role": "assistant", "content": "x"}], 0) is None  # no question before it


def test_the_answer_stored_is_its_text_without_the_notice_or_the_check_line():
    from kbcore.types import Answer
    from web.chat.renderers import render_answer

    answer = Answer(question="q", text="答案 <一>[1]", found=True, citations=(), notice="理解为：锦州的开放数据资源是什么？",
                    verification={"removed": 2})
    shown = render_answer(answer, 1)
    assert "理解为" in shown and "已删去" in shown
    assert message_text(shown) == "答案 <一>[1]"


def test_message_text_reads_gradios_normalised_parts():
    assert message_text([{"type": "text", "text": "<b>a</b> &amp;"}, {"type": "text", "text": "b"}]) == "a & b"
    assert message_text(None) == ""


def test_the_store_keeps_the_newest_rows_and_exports_csv(tmp_path):
    store = FeedbackStore(tmp_path / "sub" / "f.sqlite3", max_rows=3)
    assert list(store.csv_lines()) == ["\ufeff", "time,question,answer,vote\r\n"]  # no file yet: none made
    assert not (tmp_path / "sub").exists()
    for i in range(5):
        store.add(f"q{i}", f"a{i}\n第二行", i % 2 == 0)
    rows = sqlite3.connect(tmp_path / "sub" / "f.sqlite3").execute("SELECT question, vote FROM feedback").fetchall()
    assert rows == [("q2", 1), ("q3", -1), ("q4", 1)]
    parsed = list(csv.reader(io.StringIO("".join(store.csv_lines()).lstrip("\ufeff"))))
    assert parsed[0] == ["time", "question", "answer", "vote"] and [r[1] for r in parsed[1:]] == ["q2", "q3", "q4"]
    assert parsed[1][2] == "a2\n第二行"  # a newline stays inside its quoted cell
