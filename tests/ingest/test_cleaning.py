"""ingest.cleaning: site chrome removal, title/date extraction, layout normalisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.cleaning import (
    classify_line,
    clean_document,
    derive_title,
    normalize_layout,
)
from ingest.loaders import iter_documents
from ingest.records import SourceDocument
from kbcore.types import Document

REPO = Path(__file__).resolve().parents[2]
SEED_CANDIDATES = [Path("/work/shared/seed/000_d3d8b424e3677781.txt"), REPO / "kb" / "000_d3d8b424e3677781.txt"]
SEED = next((p for p in SEED_CANDIDATES if p.exists()), None)
EVAL_CORPUS = Path("/work/shared/eval/dev/corpus.jsonl")

SEED_CHROME = [
    "15158846557 在线咨询 在线咨询",
    "15158846557 在线咨询",
    "所在位置: 首页 > 营销资讯 > 网站运营 > 数字锦州的味道",
    "时间:2023-08-05 16:33:02 | 来源:网站运营",
    "时间:2023-08-05 16:33:02 来源:网站运营",
    "关键词:味道,锦州,数字",
    "74",
    "73",
    "25",
    "news",
    "版权所有© 亿企邦 1997-2025 保留一切法律许可权利。",
    "为了最佳展示效果,本站不支持IE9及以下版本的浏览器,建议您使用谷歌Chrome浏览器。 点击下载Chrome浏览器",
    "关闭",
]


def src(text: str, kind: str = "text", doc_id: str = "doc.txt", **kw) -> SourceDocument:
    return SourceDocument(doc_id=doc_id, origin="/x/" + doc_id, source=kw.pop("source", doc_id), raw_text=text,
                          kind=kind, **kw)


@pytest.fixture(scope="module")
def seed_raw() -> str:
    if SEED is None:
        pytest.skip("seed document not available")
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def seed_doc(seed_raw) -> Document:
    loaded = list(iter_documents([str(SEED)]))
    assert isinstance(loaded[0], SourceDocument)
    doc = clean_document(loaded[0])
    assert doc is not None
    return doc


def seed_body_lines(raw: str) -> list[str]:
    lines = [line.strip() for line in raw.replace("\r\n", "\n").split("\n") if line.strip()]
    first = next(i for i, line in enumerate(lines) if line.startswith("数字锦州的味道:出关200公里"))
    last = next(i for i, line in enumerate(lines) if line == "由此,数字生态闭环、数字产业闭环已经形成")
    return lines[first:last + 1]


# --------------------------------------------------------------------------- the seed page

def test_seed_title_date_and_metadata(seed_doc):
    assert seed_doc.title == "数字锦州的味道"
    assert seed_doc.date == "2023-08-05"
    assert seed_doc.doc_id == seed_doc.source == "000_d3d8b424e3677781.txt"


def _squash(text: str) -> str:
    """Compare modulo whitespace kind/amount (the seed uses NBSP around '>') and comma width."""
    return " ".join(text.replace("\xa0", " ").split()).replace("，", ",")


def test_seed_chrome_is_gone(seed_doc, seed_raw):
    raw_lines = {_squash(line) for line in seed_raw.split("\n")}
    kept_lines = {_squash(line) for line in seed_doc.text.split("\n")}
    for chrome in SEED_CHROME:
        assert _squash(chrome) in raw_lines, f"test data drifted: {chrome!r} not a line of the seed"
        assert _squash(chrome) not in kept_lines, chrome
    for fragment in ("在线咨询", "所在位置", "首页", "来源:网站运营", "关键词", "版权所有", "IE9", "Chrome", "15158846557"):
        assert fragment not in seed_doc.text, fragment
    assert "news" not in seed_doc.text.split("\n")


def test_seed_body_comes_through_whole_and_in_order(seed_doc, seed_raw):
    body = seed_body_lines(seed_raw)
    assert len(body) >= 25
    assert seed_doc.text.split("\n") == body


def test_seed_layout(seed_doc):
    text = seed_doc.text
    assert "\n\n" not in text and not text.startswith("\n") and not text.endswith("\n")
    assert all(line == line.strip() for line in text.split("\n"))


# --------------------------------------------------------------------------- other sites (general rules)

GOV_PAGE = """网站首页 新闻中心 政务公开 办事服务 互动交流
English | 繁體 | 无障碍
当前位置：首页 » 新闻中心 » 工作动态
市政府召开数字经济发展推进会
发布日期：2024/3/12  信息来源：市大数据局  浏览次数：1,024
【字号：大 中 小】 【打印】 【关闭】
  3月12日上午，市政府召开数字经济发展推进会，总结2023年工作，部署2024年重点任务。<TRAILING>


会议指出，要持续推进政务数据共享，时间：2024年底前完成整合。
一、夯实数字基础设施
新建5G基站1200个，实现城区全覆盖。
二、培育数字产业集群
重点发展软件和信息服务业，力争全年营收增长15%。
联系电话：0416-1234567
上一篇：市领导调研智慧医疗建设
下一篇：我市举办数据要素论坛
相关阅读
市大数据局召开年度工作会议
全市政务服务一网通办再提速
主办单位：某某市人民政府办公室  承办单位：某某市大数据局
网站标识码：2107000001  辽ICP备12345678号  辽公网安备 21070202000123号
返回顶部
""".replace("<TRAILING>", "   ")  # trailing spaces must be stripped (spelled out so editors keep them)


def test_general_rules_on_a_government_site():
    doc = clean_document(src(GOV_PAGE))
    assert doc is not None
    assert doc.title == "市政府召开数字经济发展推进会"
    assert doc.date == "2024-03-12"
    assert doc.text.split("\n") == [
        "3月12日上午，市政府召开数字经济发展推进会，总结2023年工作，部署2024年重点任务。",
        "会议指出，要持续推进政务数据共享，时间：2024年底前完成整合。",  # a "时间：" inside the body stays
        "一、夯实数字基础设施",
        "新建5G基站1200个，实现城区全覆盖。",
        "二、培育数字产业集群",
        "重点发展软件和信息服务业，力争全年营收增长15%。",
        "联系电话：0416-1234567",  # a contact line closing the text is content, not the footer
    ]


EN_PAGE = """Home > Blog > Release notes
Release notes for version 2.5
Posted: 2024-01-02 | Author: Bob
Version 2.5 adds incremental ingestion. It also fixes 3 bugs in the parser.
The new chunker keeps sentences whole, so citations stay exact.
Tags: release, ingestion
Share
Copyright 2024 Foo Inc. All rights reserved.
"""


def test_general_rules_on_an_english_blog():
    doc = clean_document(src(EN_PAGE, kind="html", title="Release notes for version 2.5 | Foo Blog"))
    assert doc.title == "Release notes for version 2.5"  # the page heading, without the site suffix
    assert doc.date == "2024-01-02"
    assert doc.text == ("Version 2.5 adds incremental ingestion. It also fixes 3 bugs in the parser.\n"
                        "The new chunker keeps sentences whole, so citations stay exact.")


def test_body_lines_that_look_like_chrome_in_the_middle_are_kept():
    text = ("国务院办公厅关于优化营商环境的通知\n"
            "各省、自治区、直辖市人民政府，国务院各部委、各直属机构：\n"
            "现将有关事项通知如下。\n"
            "来源：国家统计局\n"  # short meta-looking line between paragraphs
            "2023\n"  # number-only line between paragraphs
            "一是加强数据共享，打通部门之间的信息壁垒，提升办事效率。\n"
            "二是简化审批流程，推行一网通办，减少群众跑腿次数。\n"
            "国务院办公厅\n"
            "2023年8月5日\n")
    doc = clean_document(src(text))
    assert doc.text == normalize_layout(text)  # nothing removed
    assert doc.title == "国务院办公厅关于优化营商环境的通知"


def test_only_chrome_gives_none():
    chrome = "所在位置: 首页 > 新闻\n关闭\n74\n版权所有© 某网站 2024\n返回顶部\n"
    assert clean_document(src(chrome)) is None
    assert clean_document(src("   \n\n ")) is None


def test_dates_in_other_formats():
    for meta, expected in [("日期：2023/8/5 来源：本站", "2023-08-05"), ("发布时间：2023年8月5日 10:20", "2023-08-05"),
                           ("2023-08-05 16:33  来源：新华网", "2023-08-05")]:
        doc = clean_document(src(f"标题是这一行\n{meta}\n这是正文的第一段，内容比较长，足够当作正文段落。\n"))
        assert doc.date == expected, meta
        assert doc.title == "标题是这一行"
        assert doc.text == "这是正文的第一段，内容比较长，足够当作正文段落。"


@pytest.mark.parametrize(
    "line,kind",
    [
        ("15158846557 在线咨询", "phone-hard"),
        ("服务热线：400-123-4567", "phone-hard"),
        ("所在位置: 首页 > 营销资讯 > 网站运营 > 数字锦州的味道", "breadcrumb-explicit"),
        ("首页 > 新闻 > 正文", "breadcrumb"),
        ("Home » Docs » Install", "breadcrumb"),
        ("时间:2023-08-05 16:33:02 | 来源:网站运营", "meta-full"),
        ("作者：张三  编辑：李四", "meta"),
        ("关键词:味道,锦州,数字", "keywords"),
        ("Tags: a, b", "keywords"),
        ("74", "number"),
        ("news", "latin"),
        ("版权所有© 亿企邦 1997-2025 保留一切法律许可权利。", "copyright"),
        ("京ICP备12345678号-1", "copyright"),
        ("本站不支持IE9及以下版本的浏览器，建议您使用谷歌Chrome浏览器。", "browser"),
        ("关闭", "ui"),
        ("分享到：微信 微博 QQ空间", "ui"),
        ("返回顶部", "ui"),
        ("上一篇：市领导调研智慧医疗建设", "prevnext"),
        ("2023年8月5日 星期六", "dateline"),
        ("2024-06-01", "dateline"),  # digits and dashes, yet a date, not a "number"
        # content
        ("数字政府的方法论", None),
        ("“三大”是基础", None),
        ("Introduction", None),
        ("由此,数字生态闭环、数字产业闭环已经形成", None),
        ("锦州的热情,就如弥漫在大街小巷的烧烤味道;锦州的味道,则是云计算、大数据特有的玫瑰余香。", None),
        ("会议时间：2023年8月5日上午九时，地点：市政府三楼会议室，请各单位准时参加。", None),
    ],
)
def test_classify_line(line, kind):
    assert classify_line(line) == kind


def test_txt_article_takes_the_date_on_its_own_line():
    # Issue 21: a bare ISO date line was taken for a number, dropped, and the article undated.
    text = "数字经济发展报告\n2024-06-01\n这是正文的第一段，内容比较长，足够当作正文段落。第二句在这里。"
    doc = clean_document(src(text, kind="text", doc_id="a.txt"))
    assert doc.date == "2024-06-01"
    assert "2024-06-01" not in doc.text


# --------------------------------------------------------------------------- markdown / html / docx

def test_markdown_heading_marks_and_front_matter():
    text = "---\ntitle: 开放数据\ndate: 2023-08-05\n---\n# 开放数据资源\n\n开放数据资源，鼓励企业开展研发。\n\n## 开放市场应用 ##\n按照市场换工厂的发展理念。\n\n"
    doc = clean_document(src(text, kind="markdown", doc_id="a/b.md"))
    assert doc.title == "开放数据" and doc.date == "2023-08-05"
    assert doc.text.split("\n") == ["开放数据资源", "开放数据资源，鼓励企业开展研发。", "开放市场应用", "按照市场换工厂的发展理念。"]


def test_markdown_without_front_matter_uses_first_heading_line():
    doc = clean_document(src("# Getting started\n\nInstall the package. Then run it.\n", kind="markdown", doc_id="x.md"))
    assert doc.title == "Getting started"
    assert doc.text == "Getting started\nInstall the package. Then run it."


def test_html_h1_duplicating_the_title_is_not_repeated_in_text():
    doc = clean_document(src("数字锦州的味道\n数字锦州的味道:出关200公里即是锦州。这是一座热情,而有味道的城市。", kind="html",
                             title="数字锦州的味道", date="2023-08-05", doc_id="https://example.com/a"))
    assert doc.title == "数字锦州的味道" and doc.date == "2023-08-05"
    assert doc.text.startswith("数字锦州的味道:出关")


def test_docx_and_pdf_only_get_layout_normalisation():
    text = "数字政府的方法论\n\n\n关键词：数字政府  \n74\n正文段落，内容完整。\n"
    doc = clean_document(src(text, kind="docx", doc_id="r.docx", title="报告"))
    assert doc.title == "报告"
    assert doc.text == "数字政府的方法论\n关键词：数字政府\n74\n正文段落，内容完整。"
    doc = clean_document(src(text, kind="pdf", doc_id="r.pdf"))
    assert doc.title == "数字政府的方法论"


def test_untitled_text_falls_back_to_first_sentence_or_file_name():
    doc = clean_document(src("锦州的热情，就如弥漫在大街小巷的烧烤味道。后面还有更多内容。", doc_id="notes/味道.txt"))
    assert doc.title == "锦州的热情，就如弥漫在大街小巷的烧烤味道"
    doc = clean_document(src("。。。", doc_id="notes/味道.txt"))
    assert doc is None


# --------------------------------------------------------------------------- jsonl

def test_jsonl_policy_title_is_the_leading_segment_and_text_is_untouched():
    raw = ("江苏出台政策支持农产品保供主体复工复产 新华社南京2月14日电（记者 赵久龙）江苏省疫情防控工作领导小组"
           "农村防控组近日出台措施。 \xa0 \xa0 记者从江苏省农业农村厅获悉。")
    doc = clean_document(src(raw, kind="jsonl", doc_id="ncp-1", source="ncp_policies:1"))
    assert doc.title == "江苏出台政策支持农产品保供主体复工复产"
    assert doc.text == raw
    assert doc.source == "ncp_policies:1" and doc.date is None


@pytest.mark.parametrize(
    "prefix,date",
    [("2023-08-01 10:00，正文：", "2023-08-01"), ("2023-07-25 18:28:27，正文：        ", "2023-07-25"),
     ("，正文：", None), ("08-16 00:17，正文：", None), ("[              2023/08/03  17:02              ]，正文：", "2023-08-03"),
     ("来源：辽宁日报  |  2023年08月01日 10:00:00，正文：", "2023-08-01")],
)
def test_jsonl_news_prefix_goes_into_the_date(prefix, date):
    body = "中新网广东新闻8月11日电 (记者 陈文)第八届“创客中国”深圳市中小企业创新创业大赛近日在市民中心拉开帷幕。本届大赛以培育专精特新为主题。"
    doc = clean_document(src(prefix + body, kind="jsonl", doc_id="n1"))
    assert doc.text == body
    assert doc.date == date
    assert doc.title == "第八届“创客中国”深圳市中小企业创新创业大赛近日在市民中心拉开帷幕"


def test_jsonl_given_title_and_date_win():
    doc = clean_document(src("2023-08-01 10:00，正文：正文内容。", kind="jsonl", doc_id="n2", title="给定标题", date="2022-01-01"))
    assert doc.title == "给定标题" and doc.date == "2022-01-01" and doc.text == "正文内容。"


@pytest.mark.parametrize(
    "text,title",
    [
        ("原标题：官宣！美国支付巨头正式推出“美元稳定币”加密稳定币市场迎来新玩家", "官宣！美国支付巨头正式推出“美元稳定币”加密稳定币市场迎来新玩家"),
        ("新政还将有利于研发人才的紧密合作，发挥“1+1大于2”的效应。 \xa0 此次新政完善了政策。", "新政还将有利于研发人才的紧密合作，发挥“1+1大于2”的效应"),
        ("科技日报讯 (记者冯志文)7月24日，在南非赫曼努斯举行的金砖国家航天合作会议上，各方达成共识。", "7月24日，在南非赫曼努斯举行的金砖国家航天合作会议上，各方达成共识"),
    ],
)
def test_derive_title(text, title):
    assert derive_title(text, news=True) == title


def test_eval_corpus_sample_cleans_with_titles():
    if not EVAL_CORPUS.exists():
        pytest.skip("eval corpus not available")
    with EVAL_CORPUS.open(encoding="utf-8") as fh:
        records = [json.loads(line) for _, line in zip(range(400), fh)]
    docs = [r for r in iter_documents([str(EVAL_CORPUS)])][:400]
    for record, loaded in zip(records, docs):
        doc = clean_document(loaded)
        assert doc is not None
        assert 1 <= len(doc.title) <= 60
        assert "正文：" not in doc.text[:5]
        assert doc.text in record["text"]  # only a prefix (and surrounding whitespace) may go
        assert record["text"].endswith(doc.text) or record["text"].rstrip().endswith(doc.text)
