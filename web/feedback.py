"""The chat's 👍/👎 on answers: ``FeedbackStore``, SQLite beside the store (exported, admin
only, at ``GET /api/feedback.csv``: web/admin/).

One row a vote: when (UTC), the question, the answer's text as shown, and the vote (+1 / -1).
Nothing about the visitor (no address, session or browser) is stored.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from kbcore.settings import Settings

MAX_ROWS = 100_000  # past this the oldest votes go: a visitor clicking all day can't fill the disk
MAX_TEXT = 20_000  # characters kept of a question or an answer

_SCHEMA = """CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    vote INTEGER NOT NULL CHECK (vote IN (-1, 1))
)"""


def feedback_path(settings: Settings) -> Path:
    return settings.feedback_db or settings.store / "feedback.sqlite3"


class FeedbackStore:
    """Votes in one SQLite file; a connection per call (the chat's events run on many threads)."""

    def __init__(self, path: Path, *, max_rows: int = MAX_ROWS) -> None:
        self.path = Path(path)
        self.max_rows = max_rows
        self._lock = threading.Lock()  # one writer at a time in this process
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        if not self._ready:
            with conn:
                conn.execute(_SCHEMA)
            self._ready = True
        return conn

    def add(self, question: str, answer: str, liked: bool) -> None:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with self._lock:
            conn = self._connect()
            try:
                with conn:
                    conn.execute(
                        "INSERT INTO feedback (at, question, answer, vote) VALUES (?, ?, ?, ?)",
                        (at, question[:MAX_TEXT], answer[:MAX_TEXT], 1 if liked else -1),
                    )
                    conn.execute(
                        "DELETE FROM feedback WHERE id <= (SELECT MAX(id) FROM feedback) - ?", (self.max_rows,)
                    )
            finally:
                conn.close()

    def rows(self) -> list[tuple[str, str, str, int]]:
        if not self.path.exists():
            return []
        conn = self._connect()
        try:
            return conn.execute("SELECT at, question, answer, vote FROM feedback ORDER BY id").fetchall()
        finally:
            conn.close()

    def csv_lines(self) -> Iterator[str]:
        """The votes as CSV (UTF-8 with a BOM, so Excel reads the Chinese), a header first.
        Cells a spreadsheet would run as a formula (a visitor's question "=HYPERLINK(...)")
        start with a ``'``: the export is read by an admin, written by anyone."""
        yield "\ufeff"
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["time", "question", "answer", "vote"])
        for at, question, answer, vote in self.rows():
            writer.writerow([at, _inert(question), _inert(answer), vote])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
        yield buffer.getvalue()


def _inert(cell: str) -> str:
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell
