"""Read sources into :class:`SourceDocument`s (or :class:`LoadFailure`s).

Inputs are files, folders (searched recursively), ``.jsonl``/``.jsonl.gz`` corpora and
http(s) URLs. Nothing here raises for a bad input: every problem becomes a ``LoadFailure``
and iteration goes on with the next document.

URLs go through an SSRF guard (:func:`vet_url`, on every redirect hop): only http(s), only
public addresses unless ``allow_private_urls``, connections pinned to the vetted address,
one total deadline and a size bound for the whole fetch.

Text decoding tries strict UTF-8 first (BOMs honoured), then charset-normalizer, with a
Chinese-aware tie-break between GB18030 and Big5 for short inputs where statistical
detection is unreliable. HTML goes through trafilatura (main content, recall-oriented)
and falls back to a plain, non-recursive stdlib HTML-to-text conversion.
"""

from __future__ import annotations

import codecs
import datetime as _dt
import gzip
import io
import ipaddress
import json
import logging
import os
import re
import socket
import ssl
import stat
import threading
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpcore

log = logging.getLogger(__name__)

__all__ = [
    "SourceDocument",
    "LoadFailure",
    "iter_documents",
    "supported_files",
    "DecodeError",
    "decode_bytes",
    "html_to_text",
    "parse_date",
    "SUPPORTED_EXTENSIONS",
    "UnsafeURLError",
    "VettedURL",
    "is_public_address",
    "vet_url",
]


@dataclass(frozen=True)
class SourceDocument:
    """One document as read, before cleaning."""

    doc_id: str  # files: path relative to the input folder (posix) or the file name; jsonl: "id"; URL: the URL
    origin: str  # absolute file path (the .jsonl for corpora) or the URL
    source: str  # what citations show
    raw_text: str  # decoded text (HTML converted to text, PDF/DOCX extracted)
    kind: str  # "text" | "markdown" | "html" | "pdf" | "docx" | "jsonl"
    title: str | None = None
    date: str | None = None  # ISO YYYY-MM-DD


@dataclass(frozen=True)
class LoadFailure:
    origin: str
    reason: str


# Longest suffixes first so ".jsonl.gz" wins over ".gz"-less matches.
SUPPORTED_EXTENSIONS: dict[str, str] = {
    ".jsonl.gz": "jsonl",
    ".jsonl": "jsonl",
    ".txt": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".docx": "docx",
}

# A .docx is a zip; refuse to open one whose members would inflate past this.
DOCX_MAX_UNCOMPRESSED = 100_000_000
DOCX_MAX_MEMBERS = 10_000
URL_MAX_REDIRECTS = 5
USER_AGENT = "kbqa-ingest/1.0 (+knowledge-base indexer)"


def _kind_of(path: Path | str) -> str | None:
    name = str(path).lower()
    for ext, kind in SUPPORTED_EXTENSIONS.items():
        if name.endswith(ext):
            return kind
    return None


def _is_hidden(name: str) -> bool:
    # dot-files and Office lock files ("~$report.docx")
    return name.startswith(".") or name.startswith("~$")


def _inside(path: str, root: str) -> bool:
    return path == root or os.path.commonpath([path, root]) == root


def _walk_folder(folder: Path, follow_symlinks: bool = False) -> list[tuple[str, Path | LoadFailure]]:
    """(relative posix path, file to read or a LoadFailure) under ``folder``, sorted by path.

    Hidden entries are skipped, and so are files of unsupported types. A symlink is followed
    only while it stays inside the folder (its target resolved), unless ``follow_symlinks``;
    one leading out, a broken one and one that loops back to a folder above it (which would
    never end) become LoadFailures naming the link, so a skipped symlink is never silent.
    """
    folder = Path(folder)
    root = os.path.realpath(folder)
    found: list[tuple[str, Path | LoadFailure]] = []

    def refuse(rel: str, path: Path, reason: str) -> None:
        found.append((rel, LoadFailure(str(path.absolute()), reason)))

    try:
        top = os.stat(folder)
    except OSError:
        return found
    # Folders being walked, root first, as (device, inode): a symlink back to one is a loop.
    stack: list[tuple[Path, str, frozenset[tuple[int, int]]]] = [(folder, "", frozenset({(top.st_dev, top.st_ino)}))]
    while stack:
        dirpath, prefix, above = stack.pop()
        try:
            with os.scandir(dirpath) as listing:
                entries = list(listing)
        except OSError:  # unreadable sub-folder: skipped, as os.walk does
            continue
        for entry in entries:
            name = entry.name
            if _is_hidden(name):
                continue
            path = Path(dirpath) / name
            rel = prefix + name
            try:
                if not entry.is_symlink():
                    if entry.is_dir(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        stack.append((path, rel + "/", above | {(st.st_dev, st.st_ino)}))
                    elif _kind_of(name) is not None and entry.is_file(follow_symlinks=False):
                        found.append((rel, path))
                    continue
                try:
                    st = os.stat(path)  # follows the link
                except OSError as exc:
                    if _kind_of(name) is not None:
                        refuse(rel, path, f"broken symlink ({exc.strerror or exc}): not followed")
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if not is_dir and _kind_of(name) is None:
                    continue  # not a document file, as for a plain file
                target = os.path.realpath(path)
                if not is_dir and not stat.S_ISREG(st.st_mode):  # a device, a FIFO ...
                    refuse(rel, path, f"symlink to {target}, which is not a regular file: not followed")
                    continue
                if not follow_symlinks and not _inside(target, root):
                    what = "folder" if is_dir else "file"
                    refuse(rel, path, f"symlink to the {what} {target}, outside the ingested folder {root}: "
                                      "not followed (follow_symlinks / --follow-symlinks reads it)")
                elif is_dir and (st.st_dev, st.st_ino) in above:
                    refuse(rel, path, f"symlink loop: {target} is a folder above it; not followed")
                elif is_dir:
                    stack.append((path, rel + "/", above | {(st.st_dev, st.st_ino)}))
                else:
                    found.append((rel, path))
            except OSError as exc:  # vanished mid-walk and the like
                if _kind_of(name) is not None:
                    refuse(rel, path, f"cannot read file ({exc.strerror or exc})")
    found.sort(key=lambda item: item[0])
    return found


def supported_files(folder: Path, *, follow_symlinks: bool = False) -> list[Path]:
    """Supported files under ``folder`` (recursive), sorted by relative path; hidden ones
    skipped, and symlinks leading out of the folder too unless ``follow_symlinks``."""
    return [item for _, item in _walk_folder(Path(folder), follow_symlinks) if isinstance(item, Path)]


# --------------------------------------------------------------------------- dates

_DATE_RE = re.compile(
    r"(?<!\d)((?:19|20)\d{2})\s*(?:[-/.]|年)\s*(\d{1,2})\s*(?:[-/.]|月)\s*(\d{1,2})(?!\d)"
)


def parse_date(value: object) -> str | None:
    """First plausible calendar date in ``value`` as ISO ``YYYY-MM-DD`` (None if none).

    Accepts 2023-08-05, 2023/8/5, 2023.8.5, 2023年8月5日 and ISO datetimes.
    """
    if not isinstance(value, str) or not value:
        return None
    for m in _DATE_RE.finditer(value):
        try:
            d = _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
        return d.isoformat()
    return None


# --------------------------------------------------------------------------- decoding

_CHINESE_ENCODINGS = {"gb18030", "gbk", "gb2312", "hz", "big5", "big5hkscs", "cp950"}
_CONTROL_BYTES = frozenset(set(range(0x00, 0x09)) | {0x0B, 0x0E, 0x0F} | set(range(0x10, 0x1B)) | set(range(0x1C, 0x20)) | {0x7F})


class DecodeError(ValueError):
    """Bytes that cannot become a document; the message is the human-readable reason."""


def _looks_binary(data: bytes) -> bool:
    sample = data[:65536]
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    controls = sum(1 for b in sample if b in _CONTROL_BYTES)
    return controls / len(sample) > 0.05


def _bad_char_ratio(text: str) -> float:
    sample = text[:65536]
    if not sample:
        return 0.0
    bad = 0
    for ch in sample:
        o = ord(ch)
        if ch == "\ufffd" or (o < 0x20 and ch not in "\t\n\r\f\x1b") or o == 0x7F:
            bad += 1
    return bad / len(sample)


def _chinese_plausibility(text: str, family: str) -> float:
    """How much ``text`` looks like correctly decoded Chinese in the given encoding family.

    Correctly decoded text is dominated by *common* characters (GB2312 level 1 for
    simplified, Big5 level 1 for traditional); mojibake from the wrong codec spreads over
    rare characters, Hangul, kana and private-use code points.
    """
    cjk = 0
    common = 0
    bad = 0
    for ch in text[:4000]:
        o = ord(ch)
        if 0x4E00 <= o <= 0x9FFF:
            cjk += 1
            try:
                b = ch.encode("gb2312" if family == "gb" else "big5")
            except UnicodeEncodeError:
                continue
            code = (b[0] << 8) | b[1]
            if family == "gb":
                common += 0xB0A1 <= code <= 0xD7FE
            else:
                common += 0xA440 <= code <= 0xC67E
        elif (
            0xAC00 <= o <= 0xD7AF  # Hangul
            or 0x1100 <= o <= 0x11FF
            or 0x3130 <= o <= 0x318F
            or 0x3040 <= o <= 0x30FF  # kana
            or 0xFF61 <= o <= 0xFF9F  # half-width kana
            or 0xE000 <= o <= 0xF8FF  # private use
            or 0x3400 <= o <= 0x4DBF  # CJK extension A (rare)
            or ch == "\ufffd"
        ):
            bad += 1
    total = cjk + bad
    if total == 0:
        return 0.0
    return (common - 2 * bad) / total


def decode_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode text bytes; raises :class:`DecodeError` (with a human reason) when they are not text.

    Order: BOM, the ``declared`` charset (HTTP header / HTML meta) when it decodes strictly,
    strict UTF-8, then detection (charset-normalizer plus a GB18030/Big5 plausibility check).
    """
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8):].decode("utf-8")
        except UnicodeDecodeError:
            return data[len(codecs.BOM_UTF8):].decode("utf-8", errors="replace")
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                     (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(enc)
            except UnicodeDecodeError as exc:
                raise DecodeError(f"invalid {enc} text ({exc.reason})") from None
    if _looks_binary(data):
        raise DecodeError("binary file (not text)")
    if declared:
        declared_enc = _normalize_charset(declared)
        if declared_enc:
            try:
                return data.decode(declared_enc)
            except (UnicodeDecodeError, LookupError):
                pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return _detect_and_decode(data)


def _normalize_charset(name: str) -> str | None:
    name = name.strip().strip("\"'").lower()
    if not name:
        return None
    if name in {"gb2312", "gbk", "x-gbk", "gb_2312-80", "euc-cn", "cp936"}:
        return "gb18030"  # superset: pages labelled gb2312 routinely contain GBK characters
    if name in {"big5", "big-5", "x-x-big5"}:
        return "big5hkscs"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _detect_and_decode(data: bytes) -> str:
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    best_text = str(best) if best is not None else None
    best_enc = (best.encoding or "").lower() if best is not None else ""
    if best_text is not None and len(data) >= 200 and best_enc not in _CHINESE_ENCODINGS:
        # Long input and a confident non-Chinese verdict: trust the detector.
        text = best_text
    else:
        candidates: list[tuple[float, int, str]] = []
        if best_text is not None:
            family = "big5" if best_enc.startswith(("big5", "cp950")) else "gb"
            # The detector's pick wins ties on long inputs (it saw the statistics).
            candidates.append((_chinese_plausibility(best_text, family), 1 if len(data) >= 200 else -1, best_text))
        for enc, family, prio in (("gb18030", "gb", 0), ("big5hkscs", "big5", -2)):
            try:
                decoded = data.decode(enc)
            except UnicodeDecodeError:
                continue
            candidates.append((_chinese_plausibility(decoded, family), prio, decoded))
        if not candidates:
            raise DecodeError("unknown text encoding (not text?)")
        candidates.sort(key=lambda c: (round(c[0], 2), c[1]), reverse=True)
        text = candidates[0][2]
    if _bad_char_ratio(text) > 0.05:
        raise DecodeError("binary file (not text)")
    return text


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_text_document(data: bytes, declared: str | None = None) -> str:
    text = decode_bytes(data, declared)
    if _bad_char_ratio(text) > 0.05:
        raise DecodeError("binary file (not text)")
    return _normalize_newlines(text)


# --------------------------------------------------------------------------- HTML

_BLOCK_TAGS = frozenset(
    "address article aside blockquote body br caption dd details dialog div dl dt fieldset "
    "figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section "
    "summary table tbody td tfoot th thead title tr ul".split()
)
_SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "select"})
_VOID_TAGS = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_DATE_META_KEYS = (
    "article:published_time", "og:published_time", "og:article:published_time", "published_time",
    "pubdate", "publishdate", "publish_date", "publish-date", "publishtime", "pubtime",
    "datepublished", "dc.date", "dc.date.issued", "dcterms.date", "dcterms.issued", "date",
    "sailthru.date", "article.published", "weibo:article:create_at",
)


class _HtmlScanner(HTMLParser):
    """Event-based (non-recursive, depth-proof) HTML scan: metadata plus plain block text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.skip_stack: list[str] = []
        self.in_title = False
        self.title_parts: list[str] = []
        self.meta: dict[str, str] = {}
        self.time_datetime: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if tag == "meta":
            a = {k.lower(): (v or "") for k, v in attrs}
            key = (a.get("property") or a.get("name") or a.get("itemprop") or a.get("http-equiv") or "").lower()
            if key and "content" in a and key not in self.meta:
                self.meta[key] = a["content"]
            if "charset" in a and "charset" not in self.meta:
                self.meta["charset"] = a["charset"]
            return
        if tag == "time" and self.time_datetime is None:
            for k, v in attrs:
                if k.lower() in ("datetime", "pubdate") and v:
                    self.time_datetime = v
        if tag == "title" and not self.title_parts and not self.skip_stack:
            self.in_title = True
        if tag in _SKIP_TAGS:
            if tag not in _VOID_TAGS:
                self.skip_stack.append(tag)
            return
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")
        elif tag == "td" or tag == "th":
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        tag = tag.lower()
        if tag in _SKIP_TAGS:
            return  # self-closing <svg/> etc.: nothing to skip
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        tag = tag.lower()
        if tag == "title":
            self.in_title = False
        if self.skip_stack and tag in _SKIP_TAGS:
            # close up to the matching skip tag (tolerates unclosed children)
            while self.skip_stack:
                if self.skip_stack.pop() == tag:
                    break
            return
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
            return
        if self.skip_stack:
            return
        self.parts.append(data)

    # ----- results
    def text(self) -> str:
        raw = "".join(self.parts)
        lines = (re.sub(r"[ \t\f\v\u00a0\u3000]+", " ", line).strip() for line in raw.split("\n"))
        return "\n".join(line for line in lines if line)

    def title(self) -> str | None:
        for key in ("og:title", "twitter:title"):
            value = (self.meta.get(key) or "").strip()
            if value:
                return re.sub(r"\s+", " ", value)
        value = re.sub(r"\s+", " ", "".join(self.title_parts)).strip()
        return value or None

    def date(self) -> str | None:
        for key in _DATE_META_KEYS:
            d = parse_date(self.meta.get(key))
            if d:
                return d
        return parse_date(self.time_datetime)


def _scan_html(html: str) -> _HtmlScanner:
    scanner = _HtmlScanner()
    scanner.feed(html)
    scanner.close()
    return scanner


def _trafilatura_text(html: str) -> str | None:
    try:
        import trafilatura
    except ImportError:  # pragma: no cover - optional in stripped-down installs
        return None
    try:
        text = trafilatura.extract(
            html,
            favor_recall=True,
            include_comments=False,
            include_tables=True,
            include_images=False,
            include_links=False,
            include_formatting=False,
            deduplicate=False,
            with_metadata=False,
            output_format="txt",
        )
    except RecursionError:
        log.debug("trafilatura hit the recursion limit; using the plain HTML fallback")
        return None
    except Exception as exc:  # trafilatura/lxml internals on malformed markup
        log.debug("trafilatura failed (%s); using the plain HTML fallback", exc)
        return None
    if text and text.strip():
        return text
    return None


def html_to_text(html: str) -> tuple[str, str | None, str | None]:
    """(text, title, date) of an HTML page. ``<script>``/``<style>`` never reach the text."""
    scanner = _scan_html(html)
    text = _trafilatura_text(html)
    if text is None:
        text = scanner.text()
    text = _normalize_newlines(text)
    return text, scanner.title(), scanner.date()


_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def _html_declared_charset(data: bytes) -> str | None:
    m = _META_CHARSET_RE.search(data[:4096])
    return m.group(1).decode("ascii", "ignore") if m else None


# --------------------------------------------------------------------------- PDF / DOCX

_PDF_KEEP_BREAK_AFTER = tuple("。！？；：:!?.…”」』)）")


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x3000 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF


def _reflow_pdf_page(text: str) -> str:
    """Join the visual line wraps of one PDF page back into paragraphs.

    A break is kept after sentence-final punctuation or after a clearly short line
    (paragraph end / heading); otherwise lines are joined (no space between CJK).
    """
    lines = [ln.strip() for ln in _normalize_newlines(text).split("\n")]
    lines = [ln for ln in lines if ln]
    if len(lines) < 2:
        return "\n".join(lines)
    lengths = sorted(len(ln) for ln in lines)
    typical = lengths[len(lengths) * 3 // 4]  # upper quartile ~ a full line
    out: list[str] = [lines[0]]
    previous_line = lines[0]  # the last *visual* line (out[-1] may hold several joined ones)
    for line in lines[1:]:
        prev = out[-1]
        keep = previous_line.endswith(_PDF_KEEP_BREAK_AFTER) or len(previous_line) < 0.6 * typical
        previous_line = line
        if keep:
            out.append(line)
        elif prev.endswith("-") and prev[-2:-1].isalpha() and line[:1].islower():
            out[-1] = prev[:-1] + line  # de-hyphenate "inges-\ntion"
        elif _is_cjk(prev[-1]) or _is_cjk(line[0]):
            out[-1] = prev + line
        else:
            out[-1] = prev + " " + line
    return "\n".join(out)


def _pdf_text(data: bytes) -> str:
    import pypdf
    from pypdf.errors import PyPdfError

    pypdf_logger = logging.getLogger("pypdf")
    old_level = pypdf_logger.level
    pypdf_logger.setLevel(logging.ERROR)  # broken files log noisy warnings; we report them instead
    try:
        try:
            reader = pypdf.PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                try:
                    unlocked = bool(reader.decrypt(""))  # owner-password-only PDFs open with ""
                except Exception:  # noqa: BLE001 - unsupported crypto etc.: treat as locked
                    unlocked = False
                if not unlocked:
                    raise DecodeError("encrypted PDF (password required)")
            pages = [_reflow_pdf_page(page.extract_text() or "") for page in reader.pages]
        except DecodeError:
            raise
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError, EOFError) as exc:
            raise DecodeError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    finally:
        pypdf_logger.setLevel(old_level)
    text = "\n\n".join(p for p in pages if p.strip())
    if not text.strip():
        raise DecodeError("PDF has no extractable text (scanned images?)")
    return text


def _docx_text(data: bytes, uncompressed_limit: int) -> tuple[str, str | None]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DecodeError(f"unreadable DOCX (not a zip: {exc})") from None
    if len(infos) > DOCX_MAX_MEMBERS:
        raise DecodeError(f"DOCX refused: {len(infos)} zip members (limit {DOCX_MAX_MEMBERS})")
    total = sum(info.file_size for info in infos)
    if total > uncompressed_limit:
        raise DecodeError(
            f"DOCX refused (zip bomb guard): {total:,} bytes uncompressed exceeds {uncompressed_limit:,}"
        )
    try:
        import docx
        from docx.table import Table

        document = docx.Document(io.BytesIO(data))
        lines: list[str] = []
        for block in document.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells: list[str] = []
                    for cell in row.cells:
                        value = " ".join(cell.text.split())
                        if value and (not cells or cells[-1] != value):  # merged cells repeat
                            cells.append(value)
                    if cells:
                        lines.append(" | ".join(cells))
            else:
                lines.append(block.text)
        title = (document.core_properties.title or "").strip() or None
    except DecodeError:
        raise
    except Exception as exc:  # python-docx raises a zoo of types on malformed packages
        raise DecodeError(f"unreadable DOCX ({type(exc).__name__}: {exc})") from None
    text = "\n".join(lines)
    if not text.strip():
        raise DecodeError("DOCX has no text")
    return text, title


# --------------------------------------------------------------------------- bytes -> document

def _document_from_bytes(
    data: bytes, kind: str, *, doc_id: str, origin: str, source: str, max_bytes: int,
    declared_charset: str | None = None,
) -> SourceDocument:
    """Build a SourceDocument from the raw bytes of one non-jsonl document (raises DecodeError)."""
    title: str | None = None
    date: str | None = None
    if kind == "pdf":
        text = _pdf_text(data)
    elif kind == "docx":
        text, title = _docx_text(data, min(DOCX_MAX_UNCOMPRESSED, 10 * max_bytes))
    elif kind == "html":
        html = decode_bytes(data, declared_charset or _html_declared_charset(data))
        text, title, date = html_to_text(html)
    else:
        text = _decode_text_document(data, declared_charset)
    text = _normalize_newlines(text)
    if not text.strip():
        raise DecodeError("empty (no text)")
    return SourceDocument(doc_id=doc_id, origin=origin, source=source, raw_text=text, kind=kind,
                          title=title, date=date)


def _load_file(path: Path, doc_id: str, kind: str, max_bytes: int) -> SourceDocument | LoadFailure:
    origin = str(path.absolute())
    try:
        size = path.stat().st_size
    except OSError as exc:
        return LoadFailure(origin, f"cannot read file ({exc.strerror or exc})")
    if size == 0:
        return LoadFailure(origin, "empty file")
    if size > max_bytes:
        return LoadFailure(origin, f"file too large ({size:,} bytes > limit {max_bytes:,})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        return LoadFailure(origin, f"cannot read file ({exc.strerror or exc})")
    if len(data) > max_bytes:  # grew between stat and read
        return LoadFailure(origin, f"file too large ({len(data):,} bytes > limit {max_bytes:,})")
    try:
        return _document_from_bytes(data, kind, doc_id=doc_id, origin=origin, source=doc_id, max_bytes=max_bytes)
    except DecodeError as exc:
        return LoadFailure(origin, str(exc))


# --------------------------------------------------------------------------- jsonl

def _iter_raw_lines(fh: io.BufferedIOBase, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) per line; bytes is None for a line longer than ``limit``."""
    lineno = 0
    while True:
        line = fh.readline(limit + 1)
        if not line:
            return
        lineno += 1
        if len(line) > limit and not line.endswith(b"\n"):
            while True:  # drain the rest of the over-long line
                rest = fh.readline(1 << 20)
                if not rest or rest.endswith(b"\n"):
                    break
            yield lineno, None
            continue
        yield lineno, line


def _iter_jsonl(path: Path, max_bytes: int) -> Iterator[SourceDocument | LoadFailure]:
    origin = str(path.absolute())
    try:
        size = path.stat().st_size
    except OSError as exc:
        yield LoadFailure(origin, f"cannot read file ({exc.strerror or exc})")
        return
    if size == 0:
        yield LoadFailure(origin, "empty file")
        return
    seen: set[str] = set()
    produced = 0
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:  # type: ignore[operator]
            for lineno, raw in _iter_raw_lines(fh, max_bytes):
                if raw is None:
                    yield LoadFailure(origin, f"line {lineno}: line too large (> {max_bytes:,} bytes)")
                    continue
                if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw = raw[len(codecs.BOM_UTF8):]
                if not raw.strip():
                    continue
                produced += 1
                result = _parse_jsonl_line(raw, lineno, origin, seen)
                yield result
    except (OSError, EOFError, zlib.error) as exc:
        yield LoadFailure(origin, f"cannot read corpus ({type(exc).__name__}: {exc})")
        return
    if produced == 0:
        yield LoadFailure(origin, "empty corpus (no JSON lines)")


def _parse_jsonl_line(raw: bytes, lineno: int, origin: str, seen: set[str]) -> SourceDocument | LoadFailure:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            line = raw.decode("gb18030")
        except UnicodeDecodeError:
            return LoadFailure(origin, f"line {lineno}: not UTF-8 text")
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return LoadFailure(origin, f"line {lineno}: invalid JSON ({exc})")
    except RecursionError:
        return LoadFailure(origin, f"line {lineno}: invalid JSON (nested too deeply)")
    if not isinstance(obj, dict):
        return LoadFailure(origin, f"line {lineno}: not a JSON object")
    raw_id = obj.get("id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
        return LoadFailure(origin, f"line {lineno}: missing or invalid 'id'")
    doc_id = str(raw_id).strip()
    text = obj.get("text")
    if not isinstance(text, str):
        return LoadFailure(origin, f"line {lineno}: missing 'text' (id {doc_id!r})")
    if not text.strip():
        return LoadFailure(origin, f"line {lineno}: empty 'text' (id {doc_id!r})")
    if doc_id in seen:
        return LoadFailure(origin, f"line {lineno}: duplicate id {doc_id!r} (kept the earlier line)")
    seen.add(doc_id)
    title = obj.get("title")
    title = title.strip() if isinstance(title, str) and title.strip() else None
    source = obj.get("source")
    source = source.strip() if isinstance(source, str) and source.strip() else doc_id
    date = parse_date(obj.get("date")) if obj.get("date") else None
    return SourceDocument(doc_id=doc_id, origin=origin, source=source, raw_text=_normalize_newlines(text),
                          kind="jsonl", title=title, date=date)


# --------------------------------------------------------------------------- URLs

_CONTENT_TYPES = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
}


def _kind_for_response(content_type: str, url: str, head: bytes) -> str | None:
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime:
        return _CONTENT_TYPES.get(mime)
    # No Content-Type: go by the URL's extension, then sniff.
    path = url.split("?", 1)[0].split("#", 1)[0]
    kind = _kind_of(path)
    if kind and kind != "jsonl":
        return kind
    sniff = head[:512].lstrip().lower()
    if sniff.startswith((b"<!doctype html", b"<html")) or b"<body" in sniff:
        return "html"
    if sniff.startswith(b"%pdf-"):
        return "pdf"
    return "text"


def _charset_of(content_type: str) -> str | None:
    m = re.search(r"charset\s*=\s*\"?([^\s;\"]+)", content_type, re.I)
    return m.group(1) if m else None


# ----- SSRF guard: which addresses a URL may reach, checked on every hop

class UnsafeURLError(ValueError):
    """A URL that ingestion refuses to fetch: not http(s), or a host that is not public."""


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# True: any address; False: public ones only; networks: public ones and those.
AllowPrivate = bool | Iterable[str | ipaddress.IPv4Network | ipaddress.IPv6Network]


def is_public_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True only for a globally routable unicast address.

    False for loopback, private (10/8, 172.16/12, 192.168/16, fc00::/7), shared (100.64/10),
    link-local (169.254/16 with the cloud metadata address 169.254.169.254, fe80::/10),
    multicast, unspecified, reserved and documentation ranges, and for anything that is not
    an IP address. IPv6 forms that carry an IPv4 address (::ffff:a.b.c.d, NAT64, 6to4, Teredo)
    are judged by that address too.
    """
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])  # drop an IPv6 zone id
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
            return is_public_address(ip.ipv4_mapped)
        if ip in _NAT64:  # a NAT64 gateway connects to the IPv4 address in the low 32 bits
            return is_public_address(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        if any(not is_public_address(v4) for v4 in (ip.sixtofour, *(ip.teredo or ())) if v4 is not None):
            return False
        if ip.is_site_local:  # deprecated fec0::/10, still routed inside some networks
            return False
    return ip.is_global and not (
        ip.is_multicast or ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified
    )


def _allowed(address: str, allow_private: bool | tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    if allow_private is True or is_public_address(address):
        return True
    if allow_private is False:
        return False
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return any(ip.version == net.version and ip in net for net in allow_private)


@dataclass(frozen=True)
class VettedURL:
    """A URL whose every resolved address passed the policy: connect to ``addresses`` only."""

    url: str
    scheme: str  # "http" | "https"
    host: str  # as in the Host header and TLS server name: ASCII (IDNA), no brackets
    port: int
    target: str  # path and query, percent-encoded
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}[self.scheme]
        return host if self.port == default else f"{host}:{self.port}"


def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    """Addresses of ``host`` from the system resolver, within ``timeout`` (None: its own)."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            outcome["error"] = exc

    # A daemon thread: getaddrinfo cannot be cancelled, and a slow resolver must not hold up
    # the deadline (nor, if it hangs, the interpreter's exit).
    worker = threading.Thread(target=work, name="kbqa-resolve", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise TimeoutError(f"resolving {host} took longer than {timeout:g}s")
    if "error" in outcome:
        raise outcome["error"]
    return list(dict.fromkeys(info[4][0] for info in outcome["infos"]))


def vet_url(url: str, *, allow_private: AllowPrivate = False, timeout: float | None = None) -> VettedURL:
    """Check one hop before anything connects; raises :class:`UnsafeURLError` when refused.

    Only http and https. The host is resolved here (a literal IP as is) and the URL is refused
    when ANY of its addresses is not public, unless ``allow_private`` is True (any address) or
    a list of networks that address lies in (e.g. ``["10.1.0.0/16"]`` for an intranet server).
    Fetch the result only from ``addresses``: resolving again at connect time would let a
    DNS answer that changed in between (DNS rebinding) pick another address.
    Resolver failures raise OSError (``socket.gaierror``) or TimeoutError.
    """
    import httpx

    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise UnsafeURLError(f"invalid URL ({exc})") from None
    scheme = parsed.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeURLError(f"unsupported URL scheme {scheme + ':' if scheme else '(none)'} (only http and https)")
    try:
        host = parsed.raw_host.decode("ascii").rstrip(".").lower()
    except UnicodeDecodeError:
        raise UnsafeURLError("invalid host name") from None
    if not host:
        raise UnsafeURLError("URL has no host")
    port = parsed.port or (443 if scheme == "https" else 80)
    if not isinstance(allow_private, bool):
        allow_private = tuple(ipaddress.ip_network(net, strict=False) for net in allow_private)
    try:
        addresses = [str(ipaddress.ip_address(host))]  # a literal IP: nothing to resolve
    except ValueError:
        addresses = _resolve(host, port, timeout)
    if not addresses:
        raise OSError(f"{host} has no address")
    refused = [a for a in addresses if not _allowed(a, allow_private)]
    if refused:
        what = host if refused == [host] else f"{host} ({', '.join(refused)})"
        raise UnsafeURLError(
            f"refused to fetch {what}: not a public address (loopback, private, link-local, reserved ...);"
            " allow_private_urls lets ingestion reach it"
        )
    target = parsed.raw_path.decode("ascii") or "/"
    return VettedURL(str(parsed), scheme, host, port, target, tuple(addresses))


class _DeadlineStream(httpcore.NetworkStream):
    """Every read and write waits at most until the fetch's deadline, not a fresh timeout each."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def _timeout(self, timeout: float | None, error: type[Exception]) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise error("deadline passed")
        return left if timeout is None else min(timeout, left)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._timeout(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._timeout(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = self._timeout(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects a host only to the addresses :func:`vet_url` approved for it (no DNS here),
    and bounds connecting, TLS and every read and write by the fetch's deadline."""

    def __init__(self, deadline: float) -> None:
        self._inner = httpcore.SyncBackend()
        self._deadline = deadline
        self._pins: dict[tuple[str, int], tuple[str, ...]] = {}

    def pin(self, vetted: VettedURL) -> None:
        self._pins[(vetted.host, vetted.port)] = vetted.addresses

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._pins.get((host, port))
        if not addresses:
            raise httpcore.ConnectError(f"{host}:{port} was not vetted")
        error: Exception = httpcore.ConnectError(f"cannot connect to {host}:{port}")
        for address in addresses:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("deadline passed")
            try:
                stream = self._inner.connect_tcp(
                    address, port, timeout=left if timeout is None else min(timeout, left),
                    local_address=local_address, socket_options=socket_options,
                )
            except httpcore.ConnectError as exc:  # try the next address; timeouts end the fetch
                error = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise error

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not fetched")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _fetch(url: str, max_bytes: int, timeout: float, allow_private: AllowPrivate) -> tuple[str, bytes] | LoadFailure:
    """GET ``url`` following up to URL_MAX_REDIRECTS redirects, vetting every hop; returns the
    Content-Type and the body. All of it, DNS included, ends by ``timeout`` seconds from now.

    httpcore (under httpx) rather than httpx: its network backend is the one place where the
    connection can be pinned to the vetted addresses and held to a total deadline. Direct
    connections only: proxy environment variables are not used (a proxy would connect for us).
    """
    import httpx

    deadline = time.monotonic() + timeout
    backend = _PinnedBackend(deadline)
    current = url
    with httpcore.ConnectionPool(network_backend=backend, max_connections=2, http1=True, http2=False) as pool:
        for hop in range(URL_MAX_REDIRECTS + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise httpcore.ConnectTimeout("deadline passed")
            try:
                vetted = vet_url(current, allow_private=allow_private, timeout=left)
            except UnsafeURLError as exc:
                return LoadFailure(url, f"{'redirect to ' + current + ': ' if hop else ''}{exc}")
            backend.pin(vetted)
            request_url = httpcore.URL(scheme=vetted.scheme.encode(), host=vetted.host.encode("ascii"),
                                       port=vetted.port, target=vetted.target.encode("ascii"))
            headers = [(b"Host", vetted.host_header.encode("ascii")), (b"User-Agent", USER_AGENT.encode()),
                       (b"Accept", b"text/html,text/plain;q=0.9,*/*;q=0.5"), (b"Accept-Encoding", b"identity")]
            timeouts = {"connect": left, "read": left, "write": left, "pool": left}
            with pool.stream("GET", request_url, headers=headers, extensions={"timeout": timeouts}) as resp:
                response_headers = httpx.Headers(resp.headers)
                if resp.status in _REDIRECTS and response_headers.get("location"):
                    try:
                        current = str(httpx.URL(vetted.url).join(response_headers["location"]).copy_with(fragment=None))
                    except (httpx.InvalidURL, TypeError, ValueError) as exc:
                        return LoadFailure(url, f"invalid redirect Location ({exc})")
                    continue
                if resp.status >= 400:
                    reason = resp.extensions.get("reason_phrase", b"").decode("ascii", "replace")
                    return LoadFailure(url, f"HTTP {resp.status} {reason}".strip())
                encoding = response_headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    return LoadFailure(url, f"unsupported content encoding {encoding!r}")
                content_type = response_headers.get("content-type", "")
                declared_len = response_headers.get("content-length", "")
                if declared_len.isdigit() and int(declared_len) > max_bytes:
                    return LoadFailure(url, f"response too large ({int(declared_len):,} bytes > limit {max_bytes:,})")
                mime = content_type.split(";", 1)[0].strip().lower()
                if mime and mime not in _CONTENT_TYPES:
                    return LoadFailure(url, f"unsupported content type {mime!r}")
                buf = bytearray()
                for piece in resp.iter_stream():
                    buf += piece
                    if len(buf) > max_bytes:
                        return LoadFailure(url, f"response too large (> {max_bytes:,} bytes)")
                return content_type, bytes(buf)
    return LoadFailure(url, f"too many redirects (more than {URL_MAX_REDIRECTS})")


def _load_url(url: str, max_bytes: int, timeout: float, allow_private: AllowPrivate = False) -> SourceDocument | LoadFailure:
    try:
        fetched = _fetch(url, max_bytes, timeout, allow_private)
    except httpcore.TimeoutException:
        return LoadFailure(url, f"timed out after {timeout:g}s")
    except TimeoutError as exc:
        return LoadFailure(url, f"timed out after {timeout:g}s ({exc})")
    except socket.gaierror as exc:
        return LoadFailure(url, f"cannot resolve host ({exc.strerror or exc})")
    except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
        return LoadFailure(url, f"request failed ({type(exc).__name__}: {exc})")
    if isinstance(fetched, LoadFailure):
        return fetched
    content_type, data = fetched
    if not data.strip():
        return LoadFailure(url, "empty response")
    kind = _kind_for_response(content_type, url, data)
    if kind is None:
        return LoadFailure(url, f"unsupported content type {content_type!r}")
    try:
        return _document_from_bytes(data, kind, doc_id=url, origin=url, source=url, max_bytes=max_bytes,
                                    declared_charset=_charset_of(content_type))
    except DecodeError as exc:
        return LoadFailure(url, str(exc))


# --------------------------------------------------------------------------- entry point

def _is_url(value: str) -> bool:
    # Any scheme://, so file://, ftp:// ... are refused as URLs instead of looked up as paths.
    return bool(re.match(r"^[a-z][a-z0-9+.-]+://", value.strip(), re.IGNORECASE))


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _iter_one_file(path: Path, doc_id: str, max_bytes: int) -> Iterator[SourceDocument | LoadFailure]:
    kind = _kind_of(path.name)
    if kind is None:
        yield LoadFailure(str(path.absolute()), f"unsupported file type {path.suffix or path.name!r}")
    elif kind == "jsonl":
        yield from _iter_jsonl(path, max_bytes)
    else:
        yield _load_file(path, doc_id, kind, max_bytes)


def iter_documents(
    inputs: Sequence[str],
    *,
    max_bytes: int = 20_000_000,
    url_timeout: float = 15.0,
    allow_private_urls: bool | Iterable[str] = False,
    follow_symlinks: bool = False,
) -> Iterator[SourceDocument | LoadFailure]:
    """Yield one SourceDocument per readable document and one LoadFailure per problem.

    ``max_bytes`` bounds each file / HTTP response; for ``.jsonl`` corpora (streamed) it
    bounds each line instead, so large corpora are fine. ``url_timeout`` bounds the whole of
    each URL fetch (DNS, connect, redirects, body), not each read.

    URLs (SSRF guard, see :func:`vet_url`): only http(s); every hop, redirects included, is
    resolved here and refused if any of its addresses is loopback, private, link-local
    (169.254.169.254), multicast, unspecified or reserved, and the connection goes to the
    vetted address. ``allow_private_urls`` (``settings.allow_private_urls``) lifts that:
    True for any address, or a list of networks (``["10.1.0.0/16"]``) for just those.

    Folders: a symlink inside one is followed only while its target stays inside the folder,
    unless ``follow_symlinks`` (``settings.follow_symlinks``); the others are LoadFailures
    (see :func:`_walk_folder`). A symlink given as an input itself is followed: the operator
    named it.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]  # type: ignore[list-item]
    if not isinstance(allow_private_urls, bool):
        allow_private_urls = tuple(allow_private_urls)  # used once per URL: not a one-shot iterator
    for item in inputs:
        item = os.fspath(item)
        if _is_url(item):
            try:
                yield _load_url(item.strip(), max_bytes, url_timeout, allow_private_urls)
            except Exception as exc:  # never let one input stop the run
                log.exception("unexpected error loading %s", item)
                yield LoadFailure(item, f"unexpected error ({type(exc).__name__}: {exc})")
            continue
        path = Path(item).expanduser()
        if path.is_dir():
            jobs = _walk_folder(path, follow_symlinks)
        elif path.is_file():
            jobs = [(path.name, path)]
        else:
            yield LoadFailure(str(path.absolute()), "no such file or folder")
            continue
        for doc_id, file_path in jobs:
            if isinstance(file_path, LoadFailure):
                yield file_path
                continue
            if not _is_utf8(doc_id) or not _is_utf8(str(file_path.absolute())):
                # Undecodable bytes in a name (kept as lone surrogates) can't be an id or an origin.
                yield LoadFailure(str(file_path.absolute()), "file name is not valid UTF-8: rename it")
                continue
            try:
                yield from _iter_one_file(file_path, doc_id, max_bytes)
            except Exception as exc:
                log.exception("unexpected error loading %s", file_path)
                yield LoadFailure(str(file_path.absolute()), f"unexpected error ({type(exc).__name__}: {exc})")
