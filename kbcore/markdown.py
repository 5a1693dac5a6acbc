"""Markdown that renders as the text it was given: document text is untrusted, so anything
taken from a document (or typed by a user) is escaped before it is put in Markdown — it cannot
open links, images, HTML, headings, lists, code or tables.

``escape_markdown`` is what the chat page (web/chat/) and the briefer (kbqa/briefing.py) both
use; ``briefing_markdown`` renders a briefing's structure (``kbcore.types.Briefing``) with GFM
footnotes, ``briefing_text`` the same as plain text (no escapes: it is for pasting where Markdown
does not render), and ``note_fields`` is a footnote's parts, shared with the briefing's notes.
"""

from __future__ import annotations

import re

from kbcore.types import BriefSection, Chunk, Citation

# Every ASCII character with a meaning in CommonMark/GFM inline syntax: emphasis, code, links,
# images, raw HTML, entities, tables, strikethrough, math ($ for renderers with LaTeX), e-mail
# autolinks. A backslash before ASCII punctuation always renders as the character itself.
# Parentheses mean something only right after a link's "]", which is escaped, so they stay as
# they are: "\(锦州\)" read badly wherever the Markdown was pasted unrendered.
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>#!|~&$@])")
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


def _is_url(source: str) -> bool:
    return bool(_SAFE_URL.fullmatch(source))


def note_fields(chunk: Chunk) -> list[str]:
    """``title, date, section``, the empty ones left out, then the source when it is a web
    address a reader can open. A file name (``000_d3d8b424e3677781.txt``) tells a client
    nothing, so it stands only for a document without a title, or beside a title that would
    be alone: a Markdown definition of a single word reads as a link reference definition
    ("[^1]: target") to renderers that know no footnotes, and vanishes."""
    source = chunk.source.strip()
    fields = [" ".join(chunk.title.split()) or source or chunk.doc_id]
    fields += [" ".join(part.split()) for part in (chunk.date or "", chunk.section) if part.strip()]
    if _is_url(source) and source not in fields:
        fields.append(source)
    if len(fields) == 1:
        fields.append(source if source and source != fields[0] else chunk.doc_id)
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
            fields = note_fields(citation.passage.chunk)
            shown = [_source_markdown(f) if _is_url(f) else escape_markdown(f) for f in fields]
            lines.append(f"[^{citation.n}]: {' · '.join(shown)}")
        lines.append("")
    return "\n".join(lines)


def briefing_text(
    title: str, lead: tuple[str, ...], sections: tuple[BriefSection, ...], notes: tuple[str, ...], notes_heading: str
) -> str:
    """A briefing as plain text: what the Markdown says, unescaped, for e-mail, chat apps and
    word processors. Bullets are "• ", footnote marks "[n]", the notes a numbered list under
    ``notes_heading``. Whitespace runs in document text become one space, as in the Markdown."""

    def line(text: str) -> str:
        return " ".join(text.split())

    lines = [line(title)]
    for paragraph in lead:
        lines += ["", line(paragraph)]
    for section in sections:
        lines += ["", line(section.heading)]
        lines += [f"• {line(point.text)}[{point.n}]" for point in section.points]
    if notes:
        lines += ["", notes_heading]
        lines += [f"[{n}] {line(note)}" for n, note in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"
