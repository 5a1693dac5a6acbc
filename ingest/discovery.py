"""Which files a folder holds for ingestion: supported kinds by extension, hidden files skipped,
and symlinks followed only while they stay inside the folder; and whether a file can be read."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ingest.records import LoadFailure

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


def kind_of(path: Path | str) -> str | None:
    """The document kind of a file name by its extension (``SUPPORTED_EXTENSIONS``), or None."""
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


def walk_folder(folder: Path, follow_symlinks: bool = False) -> list[tuple[str, Path | LoadFailure]]:
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
                    elif kind_of(name) is not None and entry.is_file(follow_symlinks=False):
                        found.append((rel, path))
                    continue
                try:
                    st = os.stat(path)  # follows the link
                except OSError as exc:
                    if kind_of(name) is not None:
                        refuse(rel, path, f"broken symlink ({exc.strerror or exc}): not followed")
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if not is_dir and kind_of(name) is None:
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
                if kind_of(name) is not None:
                    refuse(rel, path, f"cannot read file ({exc.strerror or exc})")
    found.sort(key=lambda item: item[0])
    return found


def readable_size(path: Path) -> int | LoadFailure:
    """The size of a file about to be read, or the LoadFailure of one that can't be (no access,
    vanished) or is empty."""
    origin = str(path.absolute())
    try:
        size = path.stat().st_size
    except OSError as exc:
        return LoadFailure(origin, f"cannot read file ({exc.strerror or exc})")
    return LoadFailure(origin, "empty file") if size == 0 else size
