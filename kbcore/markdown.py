"""Markdown that renders as the text it was given: document text is untrusted, so anything
taken from a document (or typed by a user) is escaped before it is put in Markdown — it cannot
open links, images, HTML, headings, lists, code or tables.

``escape_markdown`` is what the chat page (web/chat/) and the briefer (kbqa/briefing.py) both
use; ``briefing_markdown`` renders a briefing's structure (``kbcore.types.Briefing``) with GFM
footnotes, and ``note_fields`` is a footnote's parts, shared with the briefing's plain notes.
"""

from __future__ import annotations

import re

from kbcore.types import BriefSection, Chunk, Citation

# Every ASCII character with a meaning in CommonMark/GFM inline syntax: emphasis, code, links,
# images, raw HTML, entities, tables, strikethrough, math ($ for renderers with LaTeX), e-mail
# autolinks. A backslash before ASCII punctuation always renders as the character itself.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]()<>#!|~&$@])")
_AUTOLINK = re.compile(r"(?i)(?<=[a-z])(:)(?=//)|(?<=www)(\.)")  # GFM's bare-URL links
_LINE_START = re.compile(r"^([-+=])|^(\d+)([.)])")  # list items, setext underlines


def escape_markdown(text: str) -> str:
    """``text`` as one line of Markdown that renders as exactly this text.

    Whitespace runs (newlines included) become one space, so nothing can start a block
    (heading, list item, quote, code block, table) or end the line it is put on.
    """
    text = " ".join(text.split())
    text = _INLINE_SPECIAL.sub(r"\\\1", text)
    text = _AUTOLINK.sub(lambda m: "\\" + (m.group(1) or m.group(2)), text)
    return _LINE_START.sub(lambda m: f"\\{m.group(1)}" if m.group(1) else f"{m.group(2)}\\{m.group(3)}", text)


_SAFE_URL = re.compile(r"https?://[^\s<>\\\x00-\x1f\x7f]+", re.I)


def _source_markdown(source: str) -> str:
    """http(s) sources become autolinks (as in the chat's source panel); anything else,
    a ``javascript:`` URL included, is plain escaped text."""
    if _SAFE_URL.fullmatch(source):
        return f"<{source}>"
    return escape_markdown(source)



# --- a briefing --------------------------------------------------------------------------------


def note_fields(chunk: Chunk) -> list[str]:
    """``title, date, section, source``, the empty ones left out. The source (or, without one,
    the document id) is always there: a Markdown definition of a single word would read as a
    link reference definition ("[^1]: target") to renderers that know no footnotes."""
    fields = [chunk.title.strip() or chunk.doc_id]
    fields += [part for part in (chunk.date or "", chunk.section) if part.strip()]
    fields.append(chunk.source.strip() or chunk.doc_id)
    return fields


def briefing_markdown(
    title: str, lead: tuple[str, ...], sections: tuple[BriefSection, ...], sources: tuple[Citation, ...]
) -> str:
    """A briefing's GitHub-flavoured Markdown: the title, the lead paragraphs, a heading and a
    bullet list per section (each point with its ``[^n]``), then the footnotes' definitions.
    Everything that came from a document (or the topic) is escaped."""
    lines = [f"# {escape_markdown(title)}"]
    for paragraph in lead:
        lines += ["", escape_markdown(paragraph)]
    for section in sections:
        lines += ["", f"## {escape_markdown(section.heading)}", ""]
        lines += [f"- {escape_markdown(point.text)}[^{point.n}]" for point in section.points]
    lines.append("")
    if sources:
        for citation in sources:
            *fields, source = note_fields(citation.passage.chunk)
            lines.append(f"[^{citation.n}]: {' · '.join([*map(escape_markdown, fields), _source_markdown(source)])}")
        lines.append("")
    return "\n".join(lines)
