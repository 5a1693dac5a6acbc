"""Every kind of bad input in one folder: each gets a clear reason, the good ones still ingest,
and nothing already in the knowledge base is lost."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

GOOD = "锦州推进数字政府建设。全市政务系统统一迁移上云。\n"
CHROME_ONLY = "15158846557 在线咨询\n所在位置: 首页 > 营销资讯\n关键词:味道,锦州\n74\n版权所有© 某网站 1997-2025\n"


def zip_bomb(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("word/document.xml", "0" * 300_000_000)  # ~300 MB inflated, ~300 KB on disk


# name -> (bytes or a writer, words the failure reason must contain; None: must ingest)
CASES = {
    "empty.txt": (b"", "empty"),
    "image.txt": (b"\x89PNG\r\n\x1a\n\x00\x00" + bytes(range(256)) * 40, "binary"),
    "truncated.pdf": (b"%PDF-1.4\n1 0 obj << /Type /Catalog", "pdf"),
    "bomb.docx": (zip_bomb, "uncompressed"),
    "huge.txt": (lambda p: p.write_bytes(("锦州数字政府。" * 2_500_000).encode()), "too large"),
    "chrome_only.txt": (CHROME_ONLY.encode(), "site chrome"),
    "gbk.txt": ("锦州数字政府建设采用国标编码。\n".encode("gbk"), None),
    "big5.txt": ("錦州數位政府建設採用大五碼。\n".encode("big5"), None),
    "mixed_endings.txt": ("第一行。\r\n第二行。\n第三行。\r第四行。\n".encode(), None),
    "one_char.txt": ("锦".encode(), None),
    "script.html": (b"<html><head><title>T</title><script>alert(1)</script></head>"
                    b"<body><p>\xe9\x94\xa6\xe5\xb7\x9e\xe5\xbc\x80\xe6\x94\xbe\xe6\x95\xb0\xe6\x8d\xae\xe3\x80\x82</p></body></html>", None),
    "nested.html": (("<div>" * 5000 + "深层嵌套的页面正文。" + "</div>" * 5000).encode(), None),
    "good.txt": (GOOD.encode(), None),
}


def test_bad_inputs_are_reported_and_the_rest_ingests(kb, tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("已经在知识库里的文档，不能丢失。\n", encoding="utf-8")
    assert kb.ingest([str(existing)]).added == ["keep.txt"]

    folder = tmp_path / "bad"
    folder.mkdir()
    for name, (content, _) in CASES.items():
        path = folder / name
        content(path) if callable(content) else path.write_bytes(content)
    corpus = folder / "corpus.jsonl"
    corpus.write_text(
        json.dumps({"id": "j1", "title": "", "text": "锦州开放数据资源。", "source": "s"}, ensure_ascii=False) + "\n"
        + "{not json\n"
        + json.dumps({"id": "j2", "text": "缺少来源字段也可以。"}, ensure_ascii=False) + "\n"
        + json.dumps({"id": "j1", "title": "", "text": "重复的编号。", "source": "s"}, ensure_ascii=False) + "\n"
        + json.dumps({"title": "no id"}) + "\n",
        encoding="utf-8",
    )

    report = kb.ingest([str(folder)])
    reasons = {Path(origin).name: reason.lower() for origin, reason in report.failed if "line" not in reason}
    for name, (_, expected) in CASES.items():
        if expected is None:
            assert name in report.added, (name, reasons.get(name))
        else:
            assert expected in reasons[name], (name, reasons.get(name))
    jsonl_reasons = [reason for origin, reason in report.failed if origin.endswith("corpus.jsonl")]
    assert any("line 2" in r for r in jsonl_reasons) and any("line 5" in r for r in jsonl_reasons)
    assert any("line 4" in r and "duplicate" in r for r in jsonl_reasons)
    assert "j1" in report.added and "j2" in report.added

    held = {r.doc_id for r in kb.documents()}
    assert "keep.txt" in held  # nothing already ingested was lost
    assert not held & {n for n, (_, e) in CASES.items() if e is not None}
    texts = "\n".join(c.text for c in kb.store.get_chunks([cid for cid, _ in kb.store.iter_lexical_rows()]).values())
    assert "alert(1)" not in texts and "国标编码" in texts and "大五碼" in texts


@pytest.mark.parametrize(
    "question",
    ["？？？", "🚀🔥👍", "'; DROP TABLE chunks; --", "<script>alert(1)</script>", "<img src=x onerror=alert(1)>",
     "SELECT * FROM documents WHERE 1=1", "What is Jinzhou's open data policy?", "锦州" * 900],
)
def test_odd_questions_never_break_and_never_invent(seed_kb, question):
    answer = seed_kb.ask(question)
    if answer.found:
        quotes = "".join(c.quote for c in answer.citations)
        for sentence in (s for s in answer.text.replace("]", "]\n").split("\n") if s.strip()):
            assert sentence.split("[")[0] in quotes
    else:
        assert not answer.citations
