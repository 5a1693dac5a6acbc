"""A briefing as a Word file with real footnotes: what ``GET /api/brief.docx`` serves.

Built from the briefing's structure (``Briefing.lead``, ``sections``, ``notes``: plain text),
not from its Markdown, so no ``[^n]`` or backslash escape can reach the Word text: the title is
a Title paragraph, each section a Heading 1, each point a List Bullet paragraph ending in its
footnote reference, each source a footnote ("title · date · section · source").

python-docx (1.2) writes headings, paragraphs and lists but has no footnote API (its issue #1,
open since 2013; 1.2 added comments, not footnotes). So this module writes the footnotes part
through python-docx's OPC layer, as Word itself lays it out: a ``/word/footnotes.xml`` part
(content type ``…wordprocessingml.footnotes+xml``) related to the document part, holding the
separator and continuation separator (ids -1 and 0, named in the settings' ``w:footnotePr``)
and one ``w:footnote`` per source; the body's runs carry ``w:footnoteReference``.

A source cited by several points keeps one footnote, as in the Markdown: its first point
carries the footnote reference (inside a bookmark), later points a ``NOTEREF`` field to that
bookmark showing the same number — what Word's "cross-reference to a footnote number" writes.
Word numbers footnotes in the order their references appear, which is the briefing's order of
first appearance, so the numbers are the Markdown's.

Text is set through python-docx's run API (lxml escapes it); characters XML 1.0 cannot hold
(control characters in a scraped title, say) are dropped.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from io import BytesIO

from docx import Document
from docx.document import Document as WordDocument
from docx.enum.style import WD_STYLE_TYPE
from docx.opc.constants import CONTENT_TYPE, RELATIONSHIP_TYPE
from docx.opc.packuri import PackURI
from docx.opc.part import XmlPart
from docx.oxml import OxmlElement, parse_xml
from docx.oxml.ns import nsdecls, qn
from docx.oxml.text.run import CT_R
from docx.shared import Pt
from docx.text.paragraph import Paragraph

from kbcore.types import Briefing

__all__ = ["DOCX_MEDIA_TYPE", "briefing_docx"]

DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

# Word's built-in style names (python-docx's default template defines neither).
FOOTNOTE_TEXT = "footnote text"
FOOTNOTE_REFERENCE = "footnote reference"
# Styles are set by id: python-docx resolves a style name by scanning every style of the
# template for the default one (~3 ms a call, ~0.5 s a briefing of 20 points).
TITLE, HEADING, BULLET, NOTE_TEXT, NOTE_MARK = "Title", "Heading1", "ListBullet", "FootnoteText", "FootnoteReference"

CORE_PROPERTY_CHARS = 255
AUTHORS = {"zh": "知识库简报", "en": "Knowledge base briefing"}  # by the briefing's language
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# Settings that follow w:footnotePr in CT_Settings' schema order (Word rejects misplaced ones).
_AFTER_FOOTNOTE_PR = ("w:endnotePr", "w:compat", "w:docVars", "w:rsids", "m:mathPr", "w:attachedSchema",
                      "w:themeFontLang", "w:clrSchemeMapping", "w:doNotIncludeSubdocsInStats",
                      "w:doNotAutoCompressPictures", "w:forceUpgrade", "w:captions", "w:readModeInkLockDown",
                      "w:smartTagType", "sl:schemaLibrary", "w:shapeDefaults", "w:doNotEmbedSmartTags",
                      "w:decimalSymbol", "w:listSeparator")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("", text)


def briefing_docx(briefing: Briefing) -> bytes:
    """The briefing as the bytes of a .docx file."""
    document = Document()
    _prepare(document, briefing)
    footnotes = _Footnotes(document)
    _style(document.add_paragraph(_xml_text(briefing.title)), TITLE)
    for text in briefing.lead:
        document.add_paragraph(_xml_text(text))
    for section in briefing.sections:
        _style(document.add_paragraph(_xml_text(section.heading)), HEADING)
        for point in section.points:
            paragraph = _style(document.add_paragraph(_xml_text(point.text)), BULLET)
            footnotes.cite(paragraph, point.n, _xml_text(briefing.notes[point.n - 1]))
    out = BytesIO()
    document.save(out)
    return out.getvalue()


def _prepare(document: WordDocument, briefing: Briefing) -> None:
    """Chinese as the East Asian language (the template says en-US, so Word would pick a
    Japanese-style fallback font for Han characters), the footnote styles, the metadata."""
    for lang in document.styles.element.xpath("w:docDefaults/w:rPrDefault/w:rPr/w:lang"):
        lang.set(qn("w:eastAsia"), "zh-CN")
    text = document.styles.add_style(FOOTNOTE_TEXT, WD_STYLE_TYPE.PARAGRAPH, builtin=True)
    text.style_id = NOTE_TEXT
    text.base_style = document.styles["Normal"]
    text.font.size = Pt(9)
    text.paragraph_format.space_after = Pt(0)
    reference = document.styles.add_style(FOOTNOTE_REFERENCE, WD_STYLE_TYPE.CHARACTER, builtin=True)
    reference.style_id = NOTE_MARK
    reference.font.superscript = True
    properties = document.core_properties
    # Core properties hold at most 255 characters (python-docx raises beyond: a topic of 253+
    # characters was a 500); the full title is the document's first paragraph.
    properties.title = _xml_text(briefing.title)[:CORE_PROPERTY_CHARS]
    properties.subject = _xml_text(briefing.topic)[:CORE_PROPERTY_CHARS]
    properties.author = properties.last_modified_by = AUTHORS.get(briefing.lang, AUTHORS["zh"])
    properties.comments = ""
    properties.created = properties.modified = datetime.now(UTC).replace(microsecond=0)
    properties.revision = 1


class _Footnotes:
    """The document's footnotes part, and the references to its footnotes in the body."""

    def __init__(self, document: WordDocument):
        self.document = document
        separators = "".join(
            f'<w:footnote w:type="{kind}" w:id="{i}"><w:p><w:pPr><w:spacing w:after="0" w:line="240"'
            f' w:lineRule="auto"/></w:pPr><w:r><w:{kind}/></w:r></w:p></w:footnote>'
            for i, kind in ((-1, "separator"), (0, "continuationSeparator"))
        )
        self.element = parse_xml(f"<w:footnotes {nsdecls('w')}>{separators}</w:footnotes>")
        part = XmlPart(PackURI("/word/footnotes.xml"), CONTENT_TYPE.WML_FOOTNOTES, self.element, document.part.package)
        document.part.relate_to(part, RELATIONSHIP_TYPE.FOOTNOTES)
        settings = parse_xml(f'<w:footnotePr {nsdecls("w")}><w:footnote w:id="-1"/><w:footnote w:id="0"/></w:footnotePr>')
        document.settings.element.insert_element_before(settings, *_AFTER_FOOTNOTE_PR)
        self.written: set[int] = set()

    def cite(self, paragraph: Paragraph, n: int, note: str) -> None:
        """End ``paragraph`` with footnote ``n``'s mark: the footnote itself (holding ``note``)
        at its first citation, a cross-reference to that one after."""
        if n not in self.written:
            self._write(n, note)
            bookmark = {qn("w:id"): str(n), qn("w:name"): _bookmark(n)}
            paragraph._p.append(OxmlElement("w:bookmarkStart", attrs=bookmark))
            _mark(paragraph).append(OxmlElement("w:footnoteReference", attrs={qn("w:id"): str(n)}))
            paragraph._p.append(OxmlElement("w:bookmarkEnd", attrs={qn("w:id"): str(n)}))
            self.written.add(n)
            return
        # A NOTEREF field: \f formats the number as a footnote reference, \h links it to the note.
        begin, separate, end = (OxmlElement("w:fldChar", attrs={qn("w:fldCharType"): kind})
                                for kind in ("begin", "separate", "end"))
        instruction = OxmlElement("w:instrText", attrs={qn("xml:space"): "preserve"})
        instruction.text = f" NOTEREF {_bookmark(n)} \\f \\h "
        for child in (begin, instruction, separate, None, end):
            run = _mark(paragraph)
            if child is None:
                run.text = str(n)  # the field's result until Word updates it: the same number
            else:
                run.append(child)

    def _write(self, n: int, note: str) -> None:
        footnote = OxmlElement("w:footnote", attrs={qn("w:id"): str(n)})
        self.element.append(footnote)
        p = OxmlElement("w:p")
        footnote.append(p)
        paragraph = _style(Paragraph(p, self.document.part), NOTE_TEXT)
        _mark(paragraph).append(OxmlElement("w:footnoteRef"))
        paragraph.add_run(f" {note}")


def _style(paragraph: Paragraph, style_id: str) -> Paragraph:
    paragraph._p.get_or_add_pPr().style = style_id
    return paragraph


def _mark(paragraph: Paragraph) -> CT_R:
    """A new run of ``paragraph`` in the footnote reference style."""
    run = paragraph.add_run()._r
    run.get_or_add_rPr().style = NOTE_MARK
    return run


def _bookmark(n: int) -> str:
    return f"_RefNote{n}"  # a leading underscore: a hidden bookmark, like Word's own _Ref…
