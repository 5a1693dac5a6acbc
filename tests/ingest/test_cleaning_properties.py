"""Property tests of the cleaner: it only removes whole lines (never invents or alters text),
keeps ordinary body paragraphs, and what it returns chunks into spans that index it exactly."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.chunking import chunk_document
from ingest.cleaning import clean_document
from ingest.records import SourceDocument

CHROME = ["15158846557 在线咨询", "所在位置: 首页 > 新闻 > 正文", "时间:2023-08-05 16:33:02 | 来源:网站运营",
          "关键词:锦州,数字", "74", "news", "版权所有© 某网 1997-2025", "关闭", "点击下载Chrome浏览器"]
BODY = st.text(alphabet="锦州数字政府云计算大数据开放平台建设产业发展", min_size=12, max_size=80).map(lambda s: s + "。")
LINE = st.one_of(BODY, st.sampled_from(CHROME), st.text(min_size=0, max_size=30))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINE, min_size=1, max_size=25), st.sampled_from(["text", "markdown", "html"]))
def test_cleaning_removes_lines_and_keeps_body(lines, kind):
    raw = "\n".join(lines)
    doc = clean_document(SourceDocument(doc_id="d", origin="/d", source="d", raw_text=raw, kind=kind))
    body = [line for line in lines if line.endswith("。") and len(line) >= 13]
    if doc is None:
        assert not body  # only a page without body text may come out empty
        return
    for line in doc.text.split("\n"):  # nothing invented: every line stands in the raw page
        assert line.strip() in raw, line
    for line in body[1:-1]:  # head/tail zones may hold a title line; the middle of the body stays
        assert line in doc.text
    for chunk in chunk_document(doc, chunk_size=60):
        assert doc.text[chunk.start : chunk.end] == chunk.text
