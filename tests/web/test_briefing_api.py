"""The briefing endpoints over real HTTP: a FastAPI app holding only ``briefing_router(seed_kb)``,
served by uvicorn on a free loopback port (the ``serve`` helper of tests/web/conftest.py); the
Word download read back by python-docx and by mammoth."""

from __future__ import annotations

import re
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from urllib.parse import quote

import docx
import httpx
import mammoth
import pytest
from docx.opc.constants import CONTENT_TYPE as CT
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml.ns import qn
from fastapi import FastAPI
from lxml import etree

from kbqa.knowledge_base import KnowledgeBases
from web.briefing import briefing_router
from web.docx_export import DOCX_MEDIA_TYPE

TOPIC = "锦州数字政府建设"


def _web_conftest(config: pytest.Config):
    """The module pytest loaded tests/web/conftest.py as (conftest files are not importable
    by name: every directory's is called ``conftest``)."""
    path = Path(__file__).resolve().with_name("conftest.py")
    for plugin in config.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == path:
            return plugin
    raise LookupError(path)


@pytest.fixture(scope="module")
def brief_url(request, seed_kb) -> Iterator[str]:
    app = FastAPI()
    app.include_router(briefing_router(KnowledgeBases.serving(seed_kb)))
    with _web_conftest(request.config).serve(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(brief_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=brief_url, timeout=60) as c:
        yield c


def test_post_brief(client):
    r = client.post("/api/brief", json={"topic": TOPIC})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    data = r.json()
    assert set(data) == {"topic", "found", "markdown", "text", "lang", "sources", "timings_ms"}
    assert data["topic"] == TOPIC and data["found"] is True
    assert data["markdown"].startswith(f"# 简报：{TOPIC}\n")
    assert [s["n"] for s in data["sources"]] == list(range(1, len(data["sources"]) + 1))
    for source in data["sources"]:
        assert f"[^{source['n']}]: 数字锦州的味道 · 2023-08-05" in data["markdown"]
        assert source["title"] == "数字锦州的味道" and source["quote"]
        assert all(source["passage_start"] <= s < e <= source["passage_end"] for s, e in source["spans"])
    assert data["markdown"].count("\n- ") >= 3
    assert data["timings_ms"]["total_ms"] > 0


def test_post_brief_with_k_and_nothing_found(client):
    r = client.post("/api/brief", json={"topic": "  火星殖民计划  ", "k": 5})
    assert r.status_code == 200
    data = r.json()
    assert data["found"] is False and data["sources"] == [] and data["topic"] == "火星殖民计划"
    assert "没有关于“火星殖民计划”的内容" in data["markdown"]


@pytest.mark.parametrize(
    "body",
    [
        {"topic": ""},
        {"topic": "   "},
        {"topic": 5},
        {"topic": None},
        {"topic": ["锦州"]},
        {},
        {"topic": TOPIC, "extra": 1},
        {"topic": TOPIC, "k": 0},
        {"topic": TOPIC, "k": 51},
        {"topic": TOPIC, "k": "5"},
        {"topic": TOPIC, "k": 2.5},
        {"topic": "x" * 2001},
        [TOPIC],
        "锦州",
    ],
    ids=lambda body: repr(body)[:40],
)
def test_post_bad_requests_are_4xx_json(client, body):
    r = client.post("/api/brief", json=body)
    assert r.status_code == 422, r.text
    error = r.json()
    assert isinstance(error["error"], str) and error["error"] and isinstance(error["detail"], list)


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe", b'{"topic": "\\ud800"}'])
def test_post_undecodable_bodies_are_4xx_json(client, raw):
    r = client.post("/api/brief", content=raw, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert isinstance(r.json()["error"], str)


def test_get_markdown_download(client):
    r = client.get("/api/brief.md", params={"topic": TOPIC})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/markdown; charset=utf-8"
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote(TOPIC + '.md', safe='')}" in disposition
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-briefing-found"] == "true"
    body = r.content.decode("utf-8")
    assert body.startswith(f"# 简报：{TOPIC}\n") and "\n- " in body and "\n[^1]: 数字锦州的味道 · 2023-08-05" in body
    # The same briefing as the JSON endpoint gives (but for the minute it was generated in).
    as_json = client.post("/api/brief", json={"topic": TOPIC}).json()["markdown"]
    assert body.split("\n", 3)[3] == as_json.split("\n", 3)[3]


@pytest.mark.parametrize("extension", ["md", "docx"])
def test_get_download_filename_is_safe(client, extension):
    r = client.get(f"/api/brief.{extension}", params={"topic": '火星/殖民:"计划"?'})
    assert r.status_code == 200 and r.headers["x-briefing-found"] == "false"
    disposition = r.headers["content-disposition"]
    assert f'filename="briefing.{extension}"' in disposition
    assert "filename*=UTF-8''" + quote(f"火星_殖民_计划.{extension}", safe="") in disposition
    text = r.text if extension == "md" else "\n".join(p.text for p in docx.Document(BytesIO(r.content)).paragraphs)
    assert "没有关于" in text


@pytest.mark.parametrize("path", ["/api/brief.md", "/api/brief.docx"])
@pytest.mark.parametrize(
    "params",
    [{}, {"topic": ""}, {"topic": "  "}, {"topic": TOPIC, "k": "0"}, {"topic": TOPIC, "k": "abc"},
     {"topic": TOPIC, "unknown": "1"}, {"topic": "x" * 2001}],
    ids=lambda p: repr(p)[:40],
)
def test_get_bad_requests_are_4xx_json(client, path, params):
    r = client.get(path, params=params)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/json" and r.json()["error"]


# --- the Word file ----------------------------------------------------------------------------

W_ID = qn("w:id")


def footnotes_of(document) -> list:
    """The footnotes part's notes (not its separators), found as Word finds them: through the
    document part's relationship of the footnotes type."""
    (part,) = [rel.target_part for rel in document.part.rels.values() if rel.reltype == RT.FOOTNOTES]
    assert part.content_type == CT.WML_FOOTNOTES and part.partname == "/word/footnotes.xml"
    # python-docx reads the part back as bytes (it has no footnote API); plain lxml parses them
    # (python-docx's element classes would give each run's text twice to itertext()).
    root = etree.fromstring(part.blob)
    return [note for note in root.findall(qn("w:footnote")) if int(note.get(W_ID)) > 0]


@pytest.mark.parametrize("topic", ["锦州 数字政府", "数字锦州"])
def test_get_word_download(client, topic):
    r = client.get("/api/brief.docx", params={"topic": topic, "k": 20})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == DOCX_MEDIA_TYPE
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-briefing-found"] == "true"
    disposition = r.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="briefing.docx";')
    assert disposition.endswith(f"filename*=UTF-8''{quote(topic + '.docx', safe='')}")
    briefing = client.post("/api/brief", json={"topic": topic, "k": 20}).json()
    sources = briefing["sources"]

    document = docx.Document(BytesIO(r.content))
    paragraphs = document.paragraphs
    assert paragraphs[0].text == f"简报：{topic}" and paragraphs[0].style.name == "Title"
    assert paragraphs[1].text.startswith("生成时间：")
    # Word headings and bullet lists, as the Markdown's headings and bullets.
    headings = [p.text for p in paragraphs if p.style.name == "Heading 1"]
    assert headings == re.findall(r"^## (.+)$", briefing["markdown"], re.MULTILINE)
    assert headings[:2] == ["摘要", "关键数据"]
    bullets = [p for p in paragraphs if p.style.name == "List Bullet"]
    shown = re.findall(r"^- (.*)\[\^(\d+)\]$", briefing["markdown"], re.MULTILINE)
    assert bullets and len(bullets) == len(shown)
    for bullet, (text, n) in zip(bullets, shown, strict=True):
        assert bullet.runs[0].text == re.sub(r"\\(.)", r"\1", text)  # the sentence itself, unescaped
    key_figures = bullets[len(re.findall(r"^- ", briefing["markdown"].split("## 关键数据")[0], re.MULTILINE)):]
    assert any("46家单位的100多个业务系统" in b.text for b in key_figures)

    # Real footnotes, one per source, naming title, date, section and the document.
    notes = footnotes_of(document)
    assert [int(note.get(W_ID)) for note in notes] == [s["n"] for s in sources]
    for note, source in zip(notes, sources, strict=True):
        text = "".join(note.itertext()).strip()
        # Title, date, section: the file name (the source of a file) tells a client nothing.
        assert text == " · ".join(source[f] for f in ("title", "date", "section") if source[f])
        assert source["source"] == "000_d3d8b424e3677781.txt" and source["source"] not in text
        assert note.find(f".//{qn('w:footnoteRef')}") is not None
    # Each referenced once, in order; a source cited again is a NOTEREF field to that reference.
    body = document.element.body
    assert [int(ref.get(W_ID)) for ref in body.iter(qn("w:footnoteReference"))] == [s["n"] for s in sources]
    marks = [int(n) for _, n in shown]
    again = [n for i, n in enumerate(marks) if n in marks[:i]]
    assert [t.text for t in body.iter(qn("w:instrText"))] == [f" NOTEREF _RefNote{n} \\f \\h " for n in again]
    # No Markdown in the Word text.
    texts = [p.text for p in paragraphs] + ["".join(note.itertext()) for note in notes]
    assert not any("[^" in t or "\\" in t or t.lstrip().startswith(("#", "- ")) for t in texts)

    # A second reader (mammoth) resolves every reference to its note.
    converted = mammoth.convert_to_html(BytesIO(r.content))
    assert not [m for m in converted.messages if m.type == "error"]
    for source in sources:
        assert f'id="footnote-ref-{source["n"]}"' in converted.value and f'<li id="footnote-{source["n"]}">' in converted.value


def test_get_word_download_of_a_refusal(client):
    r = client.get("/api/brief.docx", params={"topic": "火星殖民计划"})
    assert r.status_code == 200 and r.headers["x-briefing-found"] == "false"
    document = docx.Document(BytesIO(r.content))
    texts = [p.text for p in document.paragraphs]
    assert texts[0] == "简报：火星殖民计划" and texts[1].startswith("生成时间：")
    assert texts[2:] == ["知识库中没有关于“火星殖民计划”的内容，无法生成简报。"]  # what the .md says
    assert footnotes_of(document) == [] and not list(document.element.body.iter(qn("w:footnoteReference")))


def test_a_topic_longer_than_a_word_title_still_downloads(app_url):
    """Word's core properties hold 255 characters: a topic of 253+ was a 500, on the endpoint
    and through the chat's Word link."""
    from web.chat.renderers import download_links

    topic = "锦州数字政府建设" * 40  # 320 characters (the limit is max_question_chars, 2000)
    response = httpx.get(app_url + "/api/brief.docx", params={"topic": topic}, timeout=60)
    assert response.status_code == 200 and response.content[:2] == b"PK"
    href = download_links(topic).split('href="')[3].split('"')[0].replace("&amp;", "&")
    assert href.startswith("api/brief.docx?topic=")
    assert httpx.get(f"{app_url}/{href}", timeout=60).status_code == 200


def test_plain_text_download_and_english_headings(client):
    """The .txt is the briefing without Markdown (nothing escaped); lang=en writes the
    briefing's own words in English on every endpoint."""
    r = client.get("/api/brief.txt", params={"topic": "锦州数字政府建设"})
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-disposition"].startswith('attachment; filename="briefing.txt";')
    text = r.text
    assert text.startswith("简报：锦州数字政府建设\n") and "\n摘要\n" in text and "\n来源\n" in text
    assert "\\" not in text and "[^" not in text and "• " in text

    data = client.post("/api/brief", json={"topic": "锦州数字政府建设", "lang": "en"}).json()
    assert data["lang"] == "en" and data["found"]
    headings = re.findall(r"^## (.+)$", data["markdown"], re.M)
    assert data["markdown"].startswith("# Briefing: 锦州数字政府建设\n\nGenerated: ")
    assert headings[:2] == ["Summary", "Key figures"]
    for word in ("简报", "摘要", "关键数据", "来源", "生成时间", "依据"):
        assert word not in data["markdown"].split("\n[^1]:")[0].replace("锦州数字政府建设", "")
        assert f"\n{word}\n" not in data["text"]
    assert "\nSources\n" in data["text"]
    english = client.get("/api/brief.txt", params={"topic": "火星殖民计划", "lang": "en"})
    assert english.headers["x-briefing-found"] == "false" and "holds nothing on" in english.text
    word = client.get("/api/brief.docx", params={"topic": "锦州数字政府建设", "lang": "en"})
    paragraphs = docx.Document(BytesIO(word.content)).paragraphs
    assert paragraphs[0].text == "Briefing: 锦州数字政府建设" and paragraphs[1].text.startswith("Generated: ")
    assert client.post("/api/brief", json={"topic": "x", "lang": "fr"}).status_code == 422
