"""Answers, sources and briefings as the page shows them. Document text is untrusted: it
reaches the browser only HTML-escaped (the chatbot renders its messages without Markdown, so an
answer shows exactly as quoted); a briefing's Markdown comes escaped from the briefer."""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from kbcore.types import Answer
from kbqa.knowledge_base import DEFAULT_KB
from web.chat.session import Turn
from web.i18n import Lang, as_lang, text


def no_sources_html(lang: Lang = "zh") -> str:
    return f'<p class="kb-none">{text(lang, "no_sources")}</p>'


DOWNLOADS = (("md", "download"), ("txt", "download_txt"), ("docx", "download_docx"))  # extension, i18n key


def no_download_html(lang: Lang = "zh") -> str:
    return " ".join(f'<span class="kb-download kb-download-off">{text(lang, key)}</span>' for _, key in DOWNLOADS)


NO_SOURCES_HTML = no_sources_html()
NO_DOWNLOAD_HTML = no_download_html()


def _highlight(text: str, offset: int, spans: list[list[int]], answer_span: list[int] | None = None) -> str:
    """Escape ``text`` and wrap each span (document offsets; the text starts at ``offset``) in
    <mark>, and the reader's ``answer_span`` inside them in <strong class="kb-answer-span">."""

    def local(start: int, end: int) -> tuple[int, int]:
        # Clamp to the passage: spans are document offsets and must not index past it.
        return max(0, min(len(text), start - offset)), max(0, min(len(text), end - offset))

    marked = [local(start, end) for start, end in spans]
    strong = local(*answer_span) if answer_span else (0, 0)
    cuts = sorted({0, len(text), *(x for span in marked for x in span), *strong})
    out: list[str] = []
    for a, b in zip(cuts, cuts[1:]):
        piece = html.escape(text[a:b])
        if strong[0] <= a and b <= strong[1]:
            piece = f'<strong class="kb-answer-span">{piece}</strong>'
        if any(start <= a and b <= end for start, end in marked):
            piece = f"<mark>{piece}</mark>"
        out.append(piece)
    return "".join(out)


def _source_link(source: str) -> str:
    # Only http(s) sources become links: a document could carry a javascript: URL.
    if source.startswith(("http://", "https://")):
        url = html.escape(source, quote=True)
        return f'<a href="{url}" target="_blank" rel="noopener noreferrer">{html.escape(source)}</a>'
    return html.escape(source)


def download_links(topic: str, lang: Lang = "zh", kb: str = DEFAULT_KB) -> str:
    """The briefing's downloads: links to ``GET /api/brief.md``, ``.txt`` and ``.docx``
    (relative, so they work under any mount path) of knowledge base ``kb``, in the page's
    language. The briefing is composed again there, so nothing is written to Gradio's cache
    for it."""
    query = f"topic={quote(topic, safe='')}" + ("" if kb == DEFAULT_KB else f"&kb={quote(kb, safe='')}")
    query += "" if as_lang(lang) == "zh" else f"&lang={as_lang(lang)}"
    links = []
    for extension, key in DOWNLOADS:
        href = html.escape(f"api/brief.{extension}?{query}", quote=True)
        links.append(f'<a class="kb-download" href="{href}" download>{text(lang, key)}</a>')
    return " ".join(links)


def _meta(title: str, date: str | None, section: str, source: str) -> list[str]:
    meta = [f'<span class="kb-title">{html.escape(title)}</span>']
    meta += [html.escape(part) for part in (date, section) if part]
    if source:
        meta.append(_source_link(source))
    return meta


def render_sources(answer: Answer, turn: int = 1, lang: Lang = "zh") -> str:
    """Answer ``turn``'s sources: ``[n] title · date · section · source`` and the passage with
    the cited spans highlighted; item ``n`` has the id ``kb-src-<turn>-<n>`` its mark links to.
    A refusal's are the related passages it found, said not to be an answer (no marks, nothing
    highlighted), or a line saying it found none."""
    if not answer.found or not answer.citations:
        if not answer.related:
            return f'<p class="kb-none">{text(lang, "no_related")}</p>'
        items = "".join(
            f'<li class="kb-source"><div class="kb-meta">'
            f'{" · ".join(_meta(p.chunk.title or p.chunk.doc_id, p.chunk.date, p.chunk.section, p.chunk.source))}</div>'
            f'<p class="kb-passage">{html.escape(p.chunk.text)}</p></li>'
            for p in answer.related
        )
        return f'<p class="kb-related-note">{text(lang, "related_note")}</p><ul class="kb-sources kb-related">{items}</ul>'
    items = []
    for c in (citation.to_dict() for citation in answer.citations):
        meta = _meta(c["title"] or c["doc_id"], c["date"], c["section"], c["source"])
        passage = _highlight(c["text"], c["passage_start"], c["spans"], c.get("answer_span"))
        items.append(
            f'<li class="kb-source" id="kb-src-{turn}-{c["n"]}">'
            f'<div class="kb-meta"><span class="kb-n">[{c["n"]}]</span> {" · ".join(meta)}</div>'
            f'<p class="kb-passage">{passage}</p></li>'
        )
    return f'<ol class="kb-sources">{"".join(items)}</ol>'


_MARK = re.compile(r"\[(\d+)\]")


def refusal_html(message: str, lang: Lang = "zh") -> str:
    """A refusal's text in the chat's refusal style, its badge (CHAT_CSS) in ``lang``."""
    return f'<div class="kb-refusal kb-ui-{as_lang(lang)}">{html.escape(message)}</div>'


def problem_html(message: str) -> str:
    """A question the page could not ask or answer (a failure, a question or filter it can't
    take, filters no document meets): a sentence in the page's language, in its own style —
    not a refusal's badge, which would say the knowledge base was searched."""
    return f'<div class="kb-problem" role="alert">{html.escape(message)}</div>'


def render_answer(answer: Answer, turn: int, lang: Lang = "zh") -> str:
    """An answer as the chat shows it: the text escaped, each ``[n]`` a link to its source in
    the panel (``kb-src-<turn>-<n>``; the page's script opens and flashes it); a refusal in
    its own style. Only marks that name one of the answer's citations become links: a "[3]"
    quoted from a document stays text. The page's own wording around it is in ``lang``; the
    answer's text is in the question's language."""
    notice = f'<div class="kb-notice">{html.escape(answer.notice)}</div>' if answer.notice else ""
    if not answer.found:
        related = "".join(
            f'<li>{html.escape(p.chunk.title or p.chunk.doc_id)}：{html.escape(p.chunk.text[:80])}…</li>'
            for p in answer.related
        )
        extra = f'<div class="kb-related">{text(lang, "related")}<ul>{related}</ul></div>' if related else ""
        return f"{notice}{refusal_html(answer.text, lang)}{extra}"
    cited = len(answer.citations)

    def link(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if not 1 <= n <= cited:
            return match.group(0)
        return f'<a class="kb-cite" href="#kb-src-{turn}-{n}" title="{text(lang, "cite_title", n=n)}">[{n}]</a>'

    checked = ""
    if answer.verification and answer.verification.get("removed"):
        removed = answer.verification["removed"]
        checked = f'<div class="kb-checked">{text(lang, "removed", n=removed)}</div>'
    return f'{notice}<div class="kb-answer">{_MARK.sub(link, html.escape(answer.text))}</div>{checked}'


def render_turns(turns: list[Turn], lang: Lang = "zh") -> str:
    """The sources panel: every answer's sources, newest first, under its question (and, for
    a follow-up, the standalone question it was understood as)."""
    if not turns:
        return no_sources_html(lang)
    sections = []
    for turn, question, sources, _, standalone in reversed(turns):
        understood = ""
        if standalone and standalone != question.strip():
            understood = text(lang, "understood", question=html.escape(standalone))
            understood = f'<span class="kb-standalone">{understood}</span>'
        sections.append(
            f'<section class="kb-turn" id="kb-turn-{turn}"><h4 class="kb-q">{text(lang, "turn", n=turn)}'
            f"{html.escape(question)}{understood}</h4>{sources}</section>"
        )
    return "".join(sections)


_FOOTNOTE_REF = re.compile(r"\[\^(\d+)\]")
_FOOTNOTE_DEF = re.compile(r"^\[\^(\d+)\]: ", re.M)


def render_briefing(markdown: str, lang: Lang = "zh") -> str:
    """A briefing's GitHub Markdown as Gradio's Markdown shows it: that renderer has no
    footnotes, so ``[^n]`` marks become superscript ``[n]`` and the definitions a numbered
    source list. Document text in a briefing is escaped, so a ``[^n]`` with its closing
    bracket unescaped can only be one of the briefer's own marks."""
    first = _FOOTNOTE_DEF.search(markdown)
    if first is None:
        return markdown
    body, notes = markdown[: first.start()], markdown[first.start() :]
    notes = _FOOTNOTE_DEF.sub(lambda m: f"{m.group(1)}. ", notes)
    body = _FOOTNOTE_REF.sub(lambda m: f"<sup>[{m.group(1)}]</sup>", body)
    return f"{body}### {text(lang, 'brief_sources')}\n\n{notes}"
