"""Uploaded files: which kinds are taken, the one path component a file's name becomes, and
where each knowledge base's uploads are kept (``<uploads>/<name>/uploads/<name>``, ingested as
the folder ``<uploads>/<name>``, so the document id is ``uploads/<name>``; see web/admin/__init__.py)."""

import os
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path

from starlette.datastructures import UploadFile

from kbcore.settings import Settings
from kbcore.types import IngestReport
from kbqa.knowledge_base import DEFAULT_KB, KnowledgeBase

# Single-document kinds (ingest.discovery.SUPPORTED_EXTENSIONS without the .jsonl corpora,
# whose ids come from inside the file: the command line's business).
UPLOAD_TYPES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx")
UPLOAD_NAMESPACE = "uploads"
MAX_NAME_CHARS = 100  # characters of a stored name
# Bytes of a stored name: file systems count bytes (ext4: 255), and 100 CJK characters are 300
# in UTF-8 (an 84-character Chinese report title was a 500 "File name too long").
MAX_NAME_BYTES = 240


def uploads_dir(settings: Settings, kb: str = DEFAULT_KB) -> Path:
    """Where knowledge base ``kb``'s uploads are kept: a folder of its own, so one file name
    uploaded to two knowledge bases is two files (and removing one leaves the other). An upload
    folder is named after a file and has its extension: never ``_kb``."""
    root = settings.uploads_dir or settings.store / "uploads"
    return root if kb == DEFAULT_KB else root / "_kb" / kb


_UNSAFE = re.compile(r"[^\w\-.()（）\[\]【】 ]+")


def safe_name(filename: str | None) -> str:
    """One path component for an uploaded file's name: the last part of what the client sent
    (``/`` and ``\\`` both end a folder), NFC, controls, separators and punctuation beyond
    ``-._()[] `` turned into ``_``, no leading dots or spaces (walk_folder skips hidden files),
    at most MAX_NAME_CHARS characters and MAX_NAME_BYTES bytes of UTF-8 with the extension
    kept. Raises ValueError for a name that is empty or of a type that is not uploaded
    (UPLOAD_TYPES)."""
    name = unicodedata.normalize("NFC", filename or "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE.sub("_", name)
    name = re.sub(r"\s+", " ", name).strip(" .~$")
    lower = name.lower()
    ext = next((e for e in sorted(UPLOAD_TYPES, key=len, reverse=True) if lower.endswith(e)), None)
    if ext is None:
        raise ValueError(f"unsupported file type (upload {' '.join(UPLOAD_TYPES)})")
    stem = name[: -len(ext)].rstrip(" .")
    if not stem:
        raise ValueError("the file name is empty")
    stem = stem[: MAX_NAME_CHARS - len(ext)]
    # Cut by bytes too, at a character boundary (a partial character's bytes are dropped).
    stem = stem.encode("utf-8")[: MAX_NAME_BYTES - len(ext)].decode("utf-8", "ignore").rstrip(" .")
    return stem + name[-len(ext):].lower()


def _private_folder(path: Path) -> None:
    """``path`` and any missing folder above it made with mode 0700 (``mkdir(parents=True,
    mode=)`` gives the parents the umask's default, 0755 with the usual 022)."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def store_upload(root: Path, name: str, upload: UploadFile) -> Path:
    """Write one upload to ``<root>/<name>/uploads/<name>`` (a temporary file renamed over it,
    so a replaced upload is swapped whole and a symlink planted there is replaced, never
    followed); returns the folder to ingest."""
    folder = root / name
    inner = folder / UPLOAD_NAMESPACE
    _private_folder(inner)
    real_root = root.resolve()
    if inner.resolve().parent.parent != real_root:  # safe_name makes this impossible; checked anyway
        raise ValueError(f"refused name {name!r}")
    fd, tmp = tempfile.mkstemp(dir=inner, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out:
            upload.file.seek(0)
            shutil.copyfileobj(upload.file, out, 1 << 20)
        os.replace(tmp, inner / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return folder


def upload_folder(root: Path, origin: str) -> Path | None:
    """The folder under ``root`` an upload's origin lives in, or None for any other origin."""
    try:
        rel = Path(origin).resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    parts = rel.parts
    if len(parts) == 3 and parts[1] == UPLOAD_NAMESPACE and parts[0] == parts[2]:
        return root / parts[0]
    return None


def forget_failed_uploads(kb: KnowledgeBase, uploads: Path, report: IngestReport) -> None:
    """Upload folders (under ``uploads``) whose file did not ingest into ``kb``, and that hold no
    document, are removed: a file that is not in the knowledge base is not kept on the server."""
    held = {d.doc_id: d.origin for d in kb.documents(complete_only=False)}
    for origin, _ in report.failed:
        folder = upload_folder(uploads, origin)
        if folder is None:
            continue
        holder = held.get(f"{UPLOAD_NAMESPACE}/{folder.name}")
        # Kept only when an earlier upload of this name is the stored document (its file is
        # its source); an id held by another source does not keep this file.
        if holder is None or upload_folder(uploads, holder) != folder:
            shutil.rmtree(folder, ignore_errors=True)


def checked_uploads(form) -> list[tuple[str, UploadFile]]:
    """An upload form's files, each with the name it is stored under (``safe_name``); a
    ValueError, whose message the 422 gives, for a form that is not one or more distinct,
    non-empty files of a supported type in the field ``files``."""
    unknown = sorted({name for name in form if name != "files"})
    if unknown:
        raise ValueError(f"unknown form field(s): {', '.join(unknown)} (send files as 'files')")
    files = form.getlist("files")
    if not files or not all(isinstance(f, UploadFile) for f in files):
        raise ValueError("no files: send one or more files in the multipart field 'files'")
    names: list[str] = []
    for upload in files:
        try:
            name = safe_name(upload.filename)
        except ValueError as exc:
            raise ValueError(f"{upload.filename!r:.120}: {exc}") from None
        if name in names:
            raise ValueError(f"two files named {name!r} in one upload")
        if not upload.size:
            raise ValueError(f"{name!r}: the file is empty")
        names.append(name)
    return list(zip(names, files))
