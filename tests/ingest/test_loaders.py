"""ingest.loaders: files, folders, jsonl corpora and URLs -> SourceDocument | LoadFailure."""

from __future__ import annotations

import gzip
import http.server
import io
import json
import threading
import time
import zipfile
from pathlib import Path

import pytest

from ingest.dates import parse_date
from ingest.decoding import decode_bytes
from ingest.discovery import walk_folder
from ingest.loaders import ParseLimits, iter_documents
from ingest.records import LoadFailure, SourceDocument

ZH_SIMPLIFIED = "数字锦州的味道：出关200公里即是锦州。这是一座热情，而有味道的城市。"
ZH_TRADITIONAL = "數位錦州的味道：出關兩百公里即是錦州。這是一座熱情，而有味道的城市。"


def load_one(path, **kw):
    results = list(iter_documents([str(path)], **kw))
    assert len(results) == 1, results
    return results[0]


# --------------------------------------------------------------------------- encodings

@pytest.mark.parametrize(
    "text,encoding",
    [
        (ZH_SIMPLIFIED, "utf-8"),
        (ZH_SIMPLIFIED, "utf-8-sig"),
        (ZH_SIMPLIFIED, "gbk"),
        (ZH_SIMPLIFIED + "𠀀", "gb18030"),
        (ZH_TRADITIONAL, "big5"),
        (ZH_TRADITIONAL, "gbk"),  # traditional characters in GBK
        (ZH_SIMPLIFIED, "utf-16"),
    ],
)
def test_text_encodings_decode_to_the_right_chinese(tmp_path, text, encoding):
    path = tmp_path / "doc.txt"
    path.write_bytes((text + "\r\n第二行。\n").encode(encoding))
    doc = load_one(path)
    assert isinstance(doc, SourceDocument), doc
    assert doc.raw_text.lstrip("\ufeff") == text + "\n第二行。\n"  # CRLF normalised, BOM gone
    assert "\ufeff" not in doc.raw_text
    assert doc.kind == "text"
    assert doc.doc_id == "doc.txt" and doc.source == "doc.txt"
    assert doc.origin == str(path.absolute())


@pytest.mark.parametrize("text", ["锦州", "数字锦州", "测试文件内容", "中文"])
def test_short_gbk_is_not_mistaken_for_big5_or_korean(text):
    assert decode_bytes(text.encode("gbk")) == text


@pytest.mark.parametrize("text", ["錦州燒烤", "你好世界", ZH_TRADITIONAL])
def test_short_big5(text):
    assert decode_bytes(text.encode("big5")) == text


def test_binary_renamed_txt_is_a_failure(tmp_path):
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 20)
    result = load_one(path)
    assert isinstance(result, LoadFailure)
    assert "binary" in result.reason
    assert result.origin == str(path.absolute())


def test_control_character_soup_without_nul_is_binary(tmp_path):
    path = tmp_path / "weird.txt"
    path.write_bytes(bytes([1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16, 65]) * 100)
    result = load_one(path)
    assert isinstance(result, LoadFailure) and "binary" in result.reason


def test_empty_and_whitespace_only_files(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text(" \n\n\t\n", encoding="utf-8")
    results = list(iter_documents([str(tmp_path)]))
    assert all(isinstance(r, LoadFailure) for r in results)
    assert {Path(r.origin).name: r.reason for r in results}["empty.txt"].startswith("empty")
    assert "empty" in {Path(r.origin).name: r.reason for r in results}["blank.md"]


def test_too_large_names_the_size(tmp_path):
    path = tmp_path / "big.txt"
    path.write_text("一" * 1000, encoding="utf-8")  # 3000 bytes
    result = load_one(path, max_bytes=1000)
    assert isinstance(result, LoadFailure)
    assert "3,000" in result.reason and "too large" in result.reason


# --------------------------------------------------------------------------- folders

def supported_files(folder: Path) -> list[Path]:
    """The files a folder ingest reads, in its order (what walk_folder finds that is no failure)."""
    return [item for _, item in walk_folder(folder, False) if isinstance(item, Path)]


def test_supported_files_recursive_sorted_and_skips_hidden(tmp_path):
    for rel in ["b.txt", "a.md", "sub/c.html", "sub/deeper/d.pdf", "sub/e.docx", "x.jsonl", "y.jsonl.gz",
                "z.htm", "notes.csv", ".hidden.txt", ".git/config.txt", "sub/.cache/f.txt", "~$lock.docx", "IMG.TXT"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("内容。", encoding="utf-8")
    rels = [p.relative_to(tmp_path).as_posix() for p in supported_files(tmp_path)]
    assert rels == ["IMG.TXT", "a.md", "b.txt", "sub/c.html", "sub/deeper/d.pdf", "sub/e.docx", "x.jsonl",
                    "y.jsonl.gz", "z.htm"]


def test_folder_doc_ids_are_relative_posix_paths_and_failures_do_not_stop(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("第一篇。", encoding="utf-8")
    (tmp_path / "b.bin.txt").write_bytes(b"\x00" * 50)
    (tmp_path / "c.md").write_text("# 标题\n正文。", encoding="utf-8")
    results = list(iter_documents([str(tmp_path), str(tmp_path / "missing.txt"), str(tmp_path / "sub" / "a.txt")]))
    docs = [r for r in results if isinstance(r, SourceDocument)]
    fails = [r for r in results if isinstance(r, LoadFailure)]
    assert [d.doc_id for d in docs] == ["c.md", "sub/a.txt", "a.txt"]  # single file -> its name
    assert docs[0].kind == "markdown"
    assert len(fails) == 2
    assert any("binary" in f.reason for f in fails)
    assert any("no such file" in f.reason for f in fails)


def test_explicit_unsupported_file(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,b\n", encoding="utf-8")
    result = load_one(path)
    assert isinstance(result, LoadFailure) and "unsupported" in result.reason


# --------------------------------------------------------------------------- symlinks in folders

def _symlinked_folder(tmp_path):
    """kb/ holding a file, links inside it, and links out of it (to a file, to a folder)."""
    outside = tmp_path / "outside"
    (outside / "private").mkdir(parents=True)
    (outside / "passwd.txt").write_text("root:x:0:0:机密的口令文件。", encoding="utf-8")
    (outside / "private" / "notes.md").write_text("外面文件夹里的私人笔记。", encoding="utf-8")
    kb = tmp_path / "kb"
    (kb / "sub").mkdir(parents=True)
    (kb / "a.txt").write_text("第一篇。", encoding="utf-8")
    (kb / "sub" / "b.md").write_text("第二篇。", encoding="utf-8")
    (kb / "passwd.txt").symlink_to(outside / "passwd.txt")  # the reported attack
    (kb / "escape").symlink_to(outside / "private")  # a symlinked sub-folder leading out
    (kb / "same.txt").symlink_to(kb / "a.txt")  # inside: followed
    (kb / "alias").symlink_to(kb / "sub")  # a sub-folder inside: followed
    return kb, outside


def test_symlinks_leading_out_of_a_folder_are_reported_not_read(tmp_path):
    kb, outside = _symlinked_folder(tmp_path)
    results = list(iter_documents([str(kb)]))
    docs = {r.doc_id: r for r in results if isinstance(r, SourceDocument)}
    fails = {Path(r.origin).name: r.reason for r in results if isinstance(r, LoadFailure)}
    assert sorted(docs) == ["a.txt", "alias/b.md", "same.txt", "sub/b.md"]
    assert not any("机密" in d.raw_text or "私人" in d.raw_text for d in docs.values())
    assert set(fails) == {"passwd.txt", "escape"}
    assert "outside the ingested folder" in fails["passwd.txt"] and str((outside / "passwd.txt").resolve()) in fails["passwd.txt"]
    assert "symlink to the folder" in fails["escape"] and "--follow-symlinks" in fails["escape"]
    assert [p.relative_to(kb).as_posix() for p in supported_files(kb)] == ["a.txt", "alias/b.md", "same.txt", "sub/b.md"]


def test_follow_symlinks_reads_them_and_a_linked_input_is_the_operators_choice(tmp_path):
    kb, _ = _symlinked_folder(tmp_path)
    followed = list(iter_documents([str(kb)], follow_symlinks=True))
    assert not [r for r in followed if isinstance(r, LoadFailure)]
    assert sorted(r.doc_id for r in followed) == ["a.txt", "alias/b.md", "escape/notes.md", "passwd.txt", "same.txt", "sub/b.md"]
    # Named on the command line, a symlink is followed, and so is a symlinked folder.
    doc = load_one(kb / "passwd.txt")
    assert isinstance(doc, SourceDocument) and "机密" in doc.raw_text
    linked_root = tmp_path / "kb-link"
    linked_root.symlink_to(kb)
    assert sorted(r.doc_id for r in iter_documents([str(linked_root)]) if isinstance(r, SourceDocument)) == [
        "a.txt", "alias/b.md", "same.txt", "sub/b.md"]


@pytest.mark.parametrize("follow", [False, True])
def test_symlink_loops_and_broken_links_end_and_are_reported(tmp_path, follow):
    kb = tmp_path / "kb"
    (kb / "sub").mkdir(parents=True)
    (kb / "sub" / "a.txt").write_text("正文。", encoding="utf-8")
    (kb / "sub" / "up").symlink_to(kb)  # back to the root: a loop
    (kb / "sub" / "here").symlink_to(".")  # to itself
    (kb / "self.txt").symlink_to(kb / "self.txt")  # a link to itself
    (kb / "gone.txt").symlink_to(kb / "missing.txt")
    (kb / "device.txt").symlink_to("/dev/zero")  # would never end if read
    (kb / "ignored.csv").symlink_to(kb / "missing.csv")  # unsupported: ignored, as a plain .csv is
    done = threading.Event()
    results: list = []

    def walk() -> None:
        results.extend(iter_documents([str(kb)], follow_symlinks=follow))
        done.set()

    threading.Thread(target=walk, daemon=True).start()
    assert done.wait(20), "the walk did not end"
    assert [r.doc_id for r in results if isinstance(r, SourceDocument)] == ["sub/a.txt"]
    fails = {Path(r.origin).relative_to(kb).as_posix(): r.reason for r in results if isinstance(r, LoadFailure)}
    assert set(fails) == {"sub/up", "sub/here", "self.txt", "gone.txt", "device.txt"}, fails
    assert "loop" in fails["sub/up"] and "loop" in fails["sub/here"]
    assert "broken symlink" in fails["self.txt"] and "broken symlink" in fails["gone.txt"]
    assert "not a regular file" in fails["device.txt"]


# --------------------------------------------------------------------------- jsonl

def _jsonl_lines():
    good = {"id": "d1", "title": "", "text": "第一篇正文。", "source": "corpus:1", "date": "2023/8/5"}
    return [
        json.dumps(good, ensure_ascii=False),
        "",  # blank lines are skipped silently
        '{"id": "d2", "title": "标题二", "text": "第二篇。", "source": "corpus:2"',  # malformed (line 3)
        json.dumps({"title": "x", "text": "没有id"}, ensure_ascii=False),  # line 4
        json.dumps({"id": "d3", "title": "x"}, ensure_ascii=False),  # line 5: no text
        json.dumps({"id": "d1", "text": "重复的id"}, ensure_ascii=False),  # line 6: duplicate
        "[1, 2, 3]",  # line 7: not an object
        json.dumps({"id": 7, "title": "数字编号", "text": "编号是整数。", "date": "2023-08-05T10:00:00"}, ensure_ascii=False),
    ]


@pytest.mark.parametrize("gz", [False, True])
def test_jsonl_good_lines_come_through_and_bad_lines_are_named(tmp_path, gz):
    data = ("\n".join(_jsonl_lines()) + "\n").encode("utf-8")
    path = tmp_path / ("corpus.jsonl.gz" if gz else "corpus.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    results = list(iter_documents([str(path)]))
    docs = [r for r in results if isinstance(r, SourceDocument)]
    fails = [r for r in results if isinstance(r, LoadFailure)]
    assert [d.doc_id for d in docs] == ["d1", "7"]
    d1 = docs[0]
    assert d1.kind == "jsonl" and d1.title is None and d1.source == "corpus:1" and d1.date == "2023-08-05"
    assert d1.origin == str(path.absolute()) and d1.raw_text == "第一篇正文。"
    assert docs[1].title == "数字编号" and docs[1].date == "2023-08-05" and docs[1].source == "7"
    reasons = sorted(f.reason for f in fails)
    assert len(fails) == 5
    assert all(f.origin == str(path.absolute()) for f in fails)
    assert any(r.startswith("line 3: invalid JSON") for r in reasons)
    assert any(r.startswith("line 4:") and "id" in r for r in reasons)
    assert any(r.startswith("line 5:") and "text" in r for r in reasons)
    assert any(r.startswith("line 6:") and "duplicate" in r for r in reasons)
    assert any(r.startswith("line 7:") for r in reasons)


def test_jsonl_over_long_line_is_skipped_and_iteration_continues(tmp_path):
    path = tmp_path / "c.jsonl"
    lines = [json.dumps({"id": "big", "text": "长" * 5000}, ensure_ascii=False),
             json.dumps({"id": "ok", "text": "短文。"}, ensure_ascii=False)]
    path.write_text("\n".join(lines), encoding="utf-8")
    results = list(iter_documents([str(path)], max_bytes=1000))
    assert isinstance(results[0], LoadFailure) and results[0].reason.startswith("line 1:")
    assert isinstance(results[1], SourceDocument) and results[1].doc_id == "ok"


def test_corrupt_gzip_is_a_failure(tmp_path):
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"id": "a", "text": "x"}\n' * 100)[:40])
    results = list(iter_documents([str(path)]))
    assert isinstance(results[-1], LoadFailure)


def test_eval_corpus_loads_completely():
    corpus = Path("/work/shared/eval/dev/corpus.jsonl")
    if not corpus.exists():
        pytest.skip("eval corpus not available")
    results = list(iter_documents([str(corpus)]))
    assert len(results) == 2000
    assert all(isinstance(r, SourceDocument) for r in results)


# --------------------------------------------------------------------------- HTML

PAGE = """<!doctype html><html><head><meta charset="{charset}">
<title>数字锦州的味道-亿企邦</title>
<meta property="og:title" content="数字锦州的味道">
<meta property="article:published_time" content="2023-08-05T16:33:02+08:00">
<style>.secret {{ color: red }} STYLE_CONTENT</style>
<script>var x = "SCRIPT_CONTENT";</script>
</head><body>
<nav><a href="/">首页</a> <a href="/a">营销资讯</a></nav>
<article>
<h1>数字锦州的味道</h1>
<p>数字锦州的味道：出关200公里即是锦州。这是一座热情，而有味道的城市。锦州的热情，就如弥漫在大街小巷的烧烤味道。</p>
<h2>数字政府的方法论</h2>
<p>言归正传，2019华为·锦州云产业合作高峰论坛，近百座城市的1500余位嘉宾聚集于此。</p>
<script>document.write("INLINE_SCRIPT")</script>
<p>与其说，这是一次行业经验交流会，不如说，这是一次关于数字政府建设，数字经济升级的方法论研讨会。</p>
</article>
<footer>版权所有© 亿企邦</footer>
</body></html>"""


@pytest.mark.parametrize("charset", ["utf-8", "gbk"])
def test_html_main_text_title_date_and_no_script(tmp_path, charset):
    path = tmp_path / "page.html"
    # the page declares gbk; © is only in GB18030 (browsers and we decode "gbk" as GB18030)
    path.write_bytes(PAGE.format(charset=charset).encode("gb18030" if charset == "gbk" else charset))
    doc = load_one(path)
    assert isinstance(doc, SourceDocument), doc
    assert doc.kind == "html"
    assert doc.title == "数字锦州的味道"
    assert doc.date == "2023-08-05"
    text = doc.raw_text
    for forbidden in ("SCRIPT_CONTENT", "INLINE_SCRIPT", "STYLE_CONTENT", "color: red"):
        assert forbidden not in text
    assert "出关200公里即是锦州" in text and "方法论研讨会" in text
    lines = text.split("\n")
    assert "数字政府的方法论" in lines  # paragraph structure kept
    assert any(line.startswith("言归正传") for line in lines)


def test_deeply_nested_html_does_not_crash(tmp_path):
    depth = 20000
    html = ("<html><head><title>深</title><script>var s='NO';</script></head><body>" + "<div>" * depth
            + "<p>深层嵌套的正文内容。</p>" + "</div>" * depth + "<p>后面的段落也要保留。</p></body></html>")
    path = tmp_path / "deep.htm"
    path.write_text(html, encoding="utf-8")
    result = load_one(path)
    # trafilatura/lxml give up on this depth; the event-based fallback still gets the text
    assert isinstance(result, SourceDocument), result
    assert result.raw_text.split("\n") == ["深层嵌套的正文内容。", "后面的段落也要保留。"]
    assert result.title == "深"


def test_plain_fallback_keeps_block_breaks_and_drops_scripts():
    from ingest.formats.html import scan_html as _scan_html

    scanner = _scan_html("<div>一<p>二</p><script>三</script><style>四</style>五<br>六<ul><li>七</li><li>八</li></ul>"
                         "<noscript>九</noscript></div>")
    assert scanner.text().split("\n") == ["一", "二", "五", "六", "七", "八"]


# --------------------------------------------------------------------------- PDF

def make_pdf(lines: list[str]) -> bytes:
    """A minimal one-page PDF with Helvetica text (pypdf reads it; no writer library needed)."""
    content = "BT /F1 12 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        ("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
         "/Resources << /Font << /F1 5 0 R >> >> >>"),
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n{obj}\nendobj\n".encode("latin-1"))
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


PDF_LINES = ["Knowledge base ingestion test.", "This sentence is wrapped over", "two lines of the page.", "Short."]


def test_pdf_text_is_extracted_and_line_wraps_rejoined(tmp_path):
    path = tmp_path / "a.pdf"
    path.write_bytes(make_pdf(PDF_LINES))
    doc = load_one(path)
    assert isinstance(doc, SourceDocument), doc
    assert doc.kind == "pdf"
    assert "Knowledge base ingestion test." in doc.raw_text
    assert "This sentence is wrapped over two lines of the page." in doc.raw_text


def test_pdf_reflow_joins_cjk_wraps_without_spaces():
    from ingest.formats.pdf import reflow_pdf_page as _reflow_pdf_page

    page = ("第一章 总则\n这是一个很长的句子，在PDF里被排版\n换行了，但它仍然是同一个段落。\n"
            "下一段从这里开始，同样很长很长很长\n的一句话也会被折行。\n")
    assert _reflow_pdf_page(page).split("\n") == [
        "第一章 总则",
        "这是一个很长的句子，在PDF里被排版换行了，但它仍然是同一个段落。",
        "下一段从这里开始，同样很长很长很长的一句话也会被折行。",
    ]
    assert _reflow_pdf_page("A long English line that wraps be-\ncause of the page width.\nShort.") == (
        "A long English line that wraps because of the page width.\nShort.")


def test_encrypted_pdf_is_a_failure(tmp_path):
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf(PDF_LINES))))
    writer.encrypt("secret", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    path = tmp_path / "locked.pdf"
    path.write_bytes(buf.getvalue())
    result = load_one(path)
    assert isinstance(result, LoadFailure) and "encrypted" in result.reason


def test_truncated_pdf_is_a_failure(tmp_path):
    path = tmp_path / "cut.pdf"
    path.write_bytes(make_pdf(PDF_LINES)[:300])
    result = load_one(path)
    assert isinstance(result, LoadFailure) and "PDF" in result.reason


# --------------------------------------------------------------------------- DOCX

def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.core_properties.title = "锦州数字政府报告"
    document.add_heading("数字政府的方法论", level=1)
    document.add_paragraph("言归正传，近百座城市的1500余位嘉宾聚集于此。")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "城市"
    table.cell(0, 1).text = "锦州"
    table.cell(1, 0).text = "系统"
    table.cell(1, 1).text = "华为云"
    document.add_paragraph("表格之后的段落。")
    document.save(str(path))


def test_docx_paragraphs_tables_and_title(tmp_path):
    path = tmp_path / "report.docx"
    make_docx(path)
    doc = load_one(path)
    assert isinstance(doc, SourceDocument), doc
    assert doc.kind == "docx" and doc.title == "锦州数字政府报告"
    lines = doc.raw_text.split("\n")
    assert lines[:2] == ["数字政府的方法论", "言归正传，近百座城市的1500余位嘉宾聚集于此。"]
    assert "城市 | 锦州" in lines and "系统 | 华为云" in lines
    assert lines[-1] == "表格之后的段落。"


def test_zip_bomb_like_docx_is_refused_before_opening(tmp_path):
    good = tmp_path / "good.docx"
    make_docx(good)
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item.filename))
        dst.writestr("word/media/padding.bin", b"\x00" * 30_000_000)  # ~30 KB compressed
    assert bomb.stat().st_size < 1_000_000
    result = load_one(bomb, max_bytes=1_000_000)  # limit: 10 x max_bytes uncompressed
    assert isinstance(result, LoadFailure)
    assert "zip bomb" in result.reason and "30,8" in result.reason  # the declared uncompressed total


def test_not_a_zip_docx_is_a_failure(tmp_path):
    path = tmp_path / "fake.docx"
    path.write_text("这不是docx", encoding="utf-8")
    result = load_one(path)
    assert isinstance(result, LoadFailure) and "DOCX" in result.reason


# --------------------------------------------------------------------------- URLs

class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, status, body: bytes, ctype: str | None, extra=()):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self):
        if self.path == "/page":
            self._send(200, PAGE.format(charset="utf-8").encode(), "text/html; charset=utf-8")
        elif self.path == "/gbk.txt":
            self._send(200, ZH_SIMPLIFIED.encode("gbk"), "text/plain; charset=gbk")
        elif self.path == "/loop":
            self._send(302, b"", None, [("Location", "/loop2")])
        elif self.path == "/loop2":
            self._send(302, b"", None, [("Location", "/loop")])
        elif self.path == "/moved":
            self._send(301, b"", None, [("Location", "/page")])
        elif self.path == "/image":
            self._send(200, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png")
        elif self.path == "/octet":
            self._send(200, b"\x00\x01" * 100, "application/octet-stream")
        elif self.path == "/big":
            self._send(200, ("大" * 10000).encode(), "text/plain; charset=utf-8")
        elif self.path == "/drawn-40-times.pdf":
            self._send(200, hostile_pdf(), "application/pdf")
        elif self.path == "/slow":
            time.sleep(1.5)
            self._send(200, "慢。".encode(), "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found", "text/plain")


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.block_on_close = False
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def fetch(url, **kw):
    # The test server is on loopback, which the SSRF guard refuses by default.
    results = list(iter_documents([url], allow_private_urls=True, **kw))
    assert len(results) == 1
    return results[0]


def test_url_html_200(server):
    doc = fetch(server + "/page")
    assert isinstance(doc, SourceDocument), doc
    assert doc.kind == "html" and doc.doc_id == doc.origin == doc.source == server + "/page"
    assert doc.title == "数字锦州的味道" and doc.date == "2023-08-05"
    assert "出关200公里即是锦州" in doc.raw_text and "SCRIPT_CONTENT" not in doc.raw_text


def test_url_text_with_declared_charset(server):
    doc = fetch(server + "/gbk.txt")
    assert isinstance(doc, SourceDocument) and doc.kind == "text" and doc.raw_text == ZH_SIMPLIFIED


def test_url_redirect_is_followed(server):
    doc = fetch(server + "/moved")
    assert isinstance(doc, SourceDocument) and doc.doc_id == server + "/moved"


def test_url_404(server):
    result = fetch(server + "/nope")
    assert isinstance(result, LoadFailure) and "404" in result.reason


def test_url_redirect_loop(server):
    result = fetch(server + "/loop")
    assert isinstance(result, LoadFailure) and "redirect" in result.reason


@pytest.mark.parametrize("path", ["/image", "/octet"])
def test_url_binary_content_type(server, path):
    result = fetch(server + path)
    assert isinstance(result, LoadFailure) and "content type" in result.reason


def test_url_too_large(server):
    result = fetch(server + "/big", max_bytes=1000)
    assert isinstance(result, LoadFailure) and "too large" in result.reason


def test_url_slow_response_times_out(server):
    start = time.monotonic()
    result = fetch(server + "/slow", url_timeout=0.3)
    assert isinstance(result, LoadFailure) and "timed out" in result.reason
    assert time.monotonic() - start < 1.4


def test_url_connection_refused_is_a_failure_and_iteration_goes_on(server, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    (tmp_path / "a.txt").write_text("文本。", encoding="utf-8")
    results = list(iter_documents([f"http://127.0.0.1:{port}/x", str(tmp_path / "a.txt")], url_timeout=2,
                                  allow_private_urls=True))
    assert isinstance(results[0], LoadFailure) and isinstance(results[1], SourceDocument)


# --------------------------------------------------------------------------- helpers

@pytest.mark.parametrize(
    "value,expected",
    [("2023-08-05", "2023-08-05"), ("2023/8/5", "2023-08-05"), ("2023年8月5日 16:33", "2023-08-05"),
     ("时间:2023-08-05 16:33:02 | 来源:网站运营", "2023-08-05"), ("2023-02-30", None), ("", None), (None, None),
     ("版本 12.3.4", None)],
)
def test_parse_date(value, expected):
    assert parse_date(value) == expected


# --------------------------------------------------------------------------- dates of PDF and DOCX


def _with_pdf_info(data: bytes, **info: str) -> bytes:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(data)))
    writer.add_metadata(info)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def test_pdf_date_comes_from_its_first_lines_before_its_metadata(tmp_path):
    from ingest.chunking import chunk_document
    from ingest.cleaning import clean_document

    plain = make_pdf(["Jinzhou digital government", "2023-08-05", *PDF_LINES])
    with_info = _with_pdf_info(plain, **{"/Title": "Digital Jinzhou", "/CreationDate": "D:20240102030405+08'00'"})
    (tmp_path / "a.pdf").write_bytes(with_info)
    doc = clean_document(load_one(tmp_path / "a.pdf"))
    assert doc.date == "2023-08-05" and doc.title == "Digital Jinzhou"  # the written date wins
    assert "2023-08-05" not in doc.text.split("\n")  # gone from the text ...
    assert all(chunk.section != "2023-08-05" for chunk in chunk_document(doc, chunk_size=320))  # ... never a section
    (tmp_path / "b.pdf").write_bytes(_with_pdf_info(make_pdf(PDF_LINES), **{"/CreationDate": "D:20240102030405"}))
    assert clean_document(load_one(tmp_path / "b.pdf")).date == "2024-01-02"  # no date line: the metadata's
    (tmp_path / "c.pdf").write_bytes(make_pdf(PDF_LINES))
    assert clean_document(load_one(tmp_path / "c.pdf")).date is None
    (tmp_path / "d.pdf").write_bytes(_with_pdf_info(make_pdf(PDF_LINES), **{"/CreationDate": "D:garbage"}))
    assert clean_document(load_one(tmp_path / "d.pdf")).date is None  # a broken date is no date, not a failure


def test_docx_date_comes_from_a_date_line_or_its_core_properties(tmp_path):
    import datetime

    import docx

    from ingest.cleaning import clean_document

    document = docx.Document()
    document.add_heading("锦州数字政府报告", level=1)
    document.add_paragraph("发布时间：2023年8月5日")
    document.add_paragraph("言归正传，近百座城市的1500余位嘉宾聚集于此。")
    document.core_properties.created = datetime.datetime(2024, 1, 2, 3, 4, 5)
    document.save(str(tmp_path / "a.docx"))
    doc = clean_document(load_one(tmp_path / "a.docx"))
    assert doc.date == "2023-08-05" and "发布时间" not in doc.text
    document.paragraphs[1].text = "一段正文，没有日期。"
    document.save(str(tmp_path / "b.docx"))
    assert clean_document(load_one(tmp_path / "b.docx")).date == "2024-01-02"


# --------------------------------------------------------------------------- what one document may cost (issue 18)


def hostile_pdf(pages: int = 40, stream_bytes: int = 5_000_000) -> bytes:
    """The report's PDF: ~24 KB, one 5 MB content stream drawn by every one of 40 pages
    (pypdf: ~18 s and ~3 million characters a page)."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({NameObject("/Type"): NameObject("/Font"),
                                                NameObject("/Subtype"): NameObject("/Type1"),
                                                NameObject("/BaseFont"): NameObject("/Helvetica")}))
    line = b"BT /F1 12 Tf 72 712 Td (The same words again and again in one stream.) Tj ET\n"
    content = DecodedStreamObject()
    content.set_data(line * (stream_bytes // len(line)))
    shared = writer._add_object(content.flate_encode())
    for _ in range(pages):
        page = writer.add_blank_page(612, 792)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
        page[NameObject("/Contents")] = shared
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def hostile_docx(xml_bytes: int = 94_000_000) -> bytes:
    """The report's DOCX: ~400 KB zipped, 94 MB of document XML (under the zip-bomb guard's
    100 MB; python-docx: ~24 s and ~600 MB, 24 million characters)."""
    import docx

    base = io.BytesIO()
    docx.Document().save(base)
    paragraph = b"<w:p><w:r><w:t>" + "同一句话反复出现。".encode() * 4 + b"</w:t></w:r></w:p>"
    head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document '
            b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>')
    tail = b"</w:body></w:document>"
    body = head + paragraph * ((xml_bytes - len(head) - len(tail)) // len(paragraph)) + tail
    out = io.BytesIO()
    with zipfile.ZipFile(base) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for item in src.infolist():
            dst.writestr(item.filename, body if item.filename == "word/document.xml" else src.read(item.filename))
    return out.getvalue()


def _timed(inputs, **kw):
    t0 = time.monotonic()
    results = list(iter_documents(inputs, **kw))
    return results, time.monotonic() - t0


def test_a_pdf_whose_one_stream_is_drawn_by_40_pages_is_refused_when_its_parse_runs_over(tmp_path, server):
    """The report: a 21 KB PDF ran 6 min 15 s and stored 18,960 chunks. Its parse is killed at
    the time limit, from a file or a URL, and the worker that replaces it reads what follows."""
    (tmp_path / "a_drawn_40_times.pdf").write_bytes(hostile_pdf())
    (tmp_path / "b_after.txt").write_text(ZH_SIMPLIFIED, encoding="utf-8")
    (tmp_path / "c_after.pdf").write_bytes(make_pdf(PDF_LINES))
    limits = ParseLimits(seconds=3)
    results, seconds = _timed([str(tmp_path), server + "/drawn-40-times.pdf"], limits=limits, allow_private_urls=True)
    assert seconds < 20, seconds
    refused = [r for r in results if isinstance(r, LoadFailure)]
    assert [r.origin.rsplit("/", 1)[-1] for r in refused] == ["a_drawn_40_times.pdf", "drawn-40-times.pdf"]
    assert all("took over 3 s" in r.reason and "KB_PARSE_TIMEOUT_SECONDS" in r.reason for r in refused)
    assert [r.doc_id for r in results if isinstance(r, SourceDocument)] == ["b_after.txt", "c_after.pdf"]


def test_a_docx_of_94_mb_of_xml_is_refused_for_its_length_or_its_memory(tmp_path):
    """The report: a 490 KB DOCX that passes the zip-bomb guard took 35 s and 1.08 GB. Its text
    is counted as a stream and refused at the character limit; past that limit, the worker's
    memory limit ends its parse."""
    (tmp_path / "huge.docx").write_bytes(hostile_docx())
    [refused], seconds = _timed([str(tmp_path / "huge.docx")], limits=ParseLimits())
    assert isinstance(refused, LoadFailure) and seconds < 5, (refused, seconds)
    assert "over 1,000,000 characters" in refused.reason and "KB_MAX_DOCUMENT_CHARS" in refused.reason
    limits = ParseLimits(memory_bytes=200 << 20, max_chars=10**9)
    [refused], seconds = _timed([str(tmp_path / "huge.docx")], limits=limits)
    assert isinstance(refused, LoadFailure) and seconds < 20, (refused, seconds)
    assert "200 MB of memory" in refused.reason and "KB_PARSE_MEMORY_MB" in refused.reason


def test_any_documents_text_has_a_length_limit(tmp_path):
    (tmp_path / "long.txt").write_text("长" * 2_001, encoding="utf-8")
    (tmp_path / "long.html").write_text(f"<html><body><p>{'长' * 2_001}</p></body></html>", encoding="utf-8")
    (tmp_path / "short.txt").write_text(ZH_SIMPLIFIED, encoding="utf-8")
    (tmp_path / "c.jsonl").write_text(json.dumps({"id": "long", "text": "长" * 2_001}) + "\n"
                                      + json.dumps({"id": "short", "text": ZH_SIMPLIFIED}) + "\n", encoding="utf-8")
    results = list(iter_documents([str(tmp_path)], limits=ParseLimits(max_chars=2_000)))
    assert sorted(r.doc_id for r in results if isinstance(r, SourceDocument)) == ["short", "short.txt"]
    reasons = [r.reason for r in results if isinstance(r, LoadFailure)]
    assert len(reasons) == 3 and all("2,001 characters" in r and "limit 2,000" in r for r in reasons), reasons
