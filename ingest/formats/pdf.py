"""PDF -> text with pypdf, the visual line wraps of each page joined back into paragraphs."""

from __future__ import annotations

import io
import logging

from ingest.dates import parse_date
from ingest.decoding import DecodeError, normalize_newlines, too_many_chars

_PDF_KEEP_BREAK_AFTER = tuple("。！？；：:!?.…”」』)）")
DATE_LINE_CHARS = 25  # "发布时间：2023年08月05日 10:30" fits; a wrapped sentence that starts with a date does not


def _is_cjk(ch: str) -> bool:
    o = ord(ch)
    return 0x3000 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0xFF00 <= o <= 0xFFEF


def _is_date_line(line: str) -> bool:
    return len(line) <= DATE_LINE_CHARS and parse_date(line) is not None


def reflow_pdf_page(text: str) -> str:
    """Join the visual line wraps of one PDF page back into paragraphs.

    A break is kept after sentence-final punctuation or after a clearly short line
    (paragraph end / heading), and around a line that is only a date (a page's date line is
    never the continuation of a wrapped line); otherwise lines are joined (no space between CJK).
    """
    lines = [ln.strip() for ln in normalize_newlines(text).split("\n")]
    lines = [ln for ln in lines if ln]
    if len(lines) < 2:
        return "\n".join(lines)
    lengths = sorted(len(ln) for ln in lines)
    typical = lengths[len(lengths) * 3 // 4]  # upper quartile ~ a full line
    out: list[str] = [lines[0]]
    previous_line = lines[0]  # the last *visual* line (out[-1] may hold several joined ones)
    for line in lines[1:]:
        prev = out[-1]
        keep = (
            previous_line.endswith(_PDF_KEEP_BREAK_AFTER)
            or len(previous_line) < 0.6 * typical
            or _is_date_line(previous_line)
            or _is_date_line(line)
        )
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


def pdf_text(data: bytes, max_chars: int | None = None) -> tuple[str, str | None, str | None]:
    """(text, title, date) of a PDF: pages reflowed; title and creation date from its document
    information, when it has them (raises DecodeError: encrypted, unreadable, no text, or more
    than ``max_chars`` characters, found page by page: the pages after are not read)."""
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
            pages = []
            chars = 0
            for page in reader.pages:
                pages.append(reflow_pdf_page(page.extract_text() or ""))
                chars += len(pages[-1])
                if max_chars is not None and chars > max_chars:
                    raise DecodeError(
                        too_many_chars(f"over {max_chars:,}", max_chars)
                    )
            title, date = _pdf_info(reader)
        except DecodeError:
            raise
        except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError, EOFError) as exc:
            raise DecodeError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    finally:
        pypdf_logger.setLevel(old_level)
    text = "\n\n".join(p for p in pages if p.strip())
    if not text.strip():
        raise DecodeError("PDF has no extractable text (scanned images?)")
    return text, title, date


def _pdf_info(reader) -> tuple[str | None, str | None]:
    """Title and creation date of the PDF's document information; a broken dictionary is no
    reason to refuse the text."""
    try:
        info = reader.metadata
        if info is None:
            return None, None
        title = (info.title or "").strip() or None
        created = info.creation_date  # pypdf parses "D:20230805..." into a datetime
        return title, created.date().isoformat() if created else None
    except Exception:  # noqa: BLE001 - malformed dates and dictionaries raise a zoo of types
        return None, None
