"""HTML -> (text, title, date): trafilatura for the main content (recall-oriented), and a plain,
non-recursive stdlib scan for the metadata and as the fallback text."""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser

from ingest.dates import parse_date
from ingest.decoding import normalize_newlines

log = logging.getLogger(__name__)

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


class HtmlScanner(HTMLParser):
    """Event-based (non-recursive, depth-proof) HTML scan: metadata plus plain block text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
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


def scan_html(html: str) -> HtmlScanner:
    """The page scanned once: ``.text()``, ``.title()`` and ``.date()`` of the result."""
    scanner = HtmlScanner()
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
    scanner = scan_html(html)
    text = _trafilatura_text(html)
    if text is None:
        text = scanner.text()
    text = normalize_newlines(text)
    return text, scanner.title(), scanner.date()


_META_CHARSET_RE = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def meta_charset(data: bytes) -> str | None:
    """The charset a page declares in a ``<meta>`` tag near its start, or None."""
    m = _META_CHARSET_RE.search(data[:4096])
    return m.group(1).decode("ascii", "ignore") if m else None
