"""DOCX -> (text, title) with python-docx: paragraphs and table rows in document order, after a
zip-bomb guard on the package."""

from __future__ import annotations

import io
import zipfile

from ingest.decoding import DecodeError, too_many_chars

# A .docx is a zip; refuse to open one whose members would inflate past this.
DOCX_MAX_UNCOMPRESSED = 100_000_000
DOCX_MAX_MEMBERS = 10_000


W_TEXT = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}t"


def _text_over(zf: zipfile.ZipFile, max_chars: int) -> bool:
    """Whether the body's text runs (``w:t``) hold more than ``max_chars`` characters, read as a
    stream: python-docx builds the whole tree first (94 MB of XML: 24 s and 600 MB), this
    stops at the limit (the same file: 0.07 s)."""
    from lxml import etree

    try:
        part = zf.open("word/document.xml")
    except KeyError:
        return False  # python-docx finds the part by its relationship: let it say what is wrong
    chars = 0
    with part:
        try:
            for _, element in etree.iterparse(part, events=("end",), tag=W_TEXT, resolve_entities=False, no_network=True):
                chars += len(element.text or "")
                element.clear()
                if chars > max_chars:
                    return True
        except etree.XMLSyntaxError:
            return False  # python-docx reports a malformed part
    return False


def docx_text(data: bytes, uncompressed_limit: int, max_chars: int | None = None) -> tuple[str, str | None, str | None]:
    """(text, title, date) of a DOCX, title and creation date from its core properties; refused
    (DecodeError) past ``uncompressed_limit`` bytes unzipped, or with more than ``max_chars``
    characters of text."""
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
    if max_chars is not None:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if _text_over(zf, max_chars):
                raise DecodeError(too_many_chars(f"over {max_chars:,}", max_chars))
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
        created = document.core_properties.created
        date = created.date().isoformat() if created else None
    except (DecodeError, MemoryError):
        raise
    except Exception as exc:  # python-docx raises a zoo of types on malformed packages
        raise DecodeError(f"unreadable DOCX ({type(exc).__name__}: {exc})") from None
    text = "\n".join(lines)
    if not text.strip():
        raise DecodeError("DOCX has no text")
    return text, title, date
