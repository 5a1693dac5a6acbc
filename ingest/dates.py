"""Calendar dates written the ways Chinese and English pages write them, as ISO ``YYYY-MM-DD``."""

from __future__ import annotations

import datetime as _dt
import re

_DATE_RE = re.compile(
    r"(?<!\d)((?:19|20)\d{2})\s*(?:[-/.]|年)\s*(\d{1,2})\s*(?:[-/.]|月)\s*(\d{1,2})(?!\d)"
)


def parse_date(value: object) -> str | None:
    """First plausible calendar date in ``value`` as ISO ``YYYY-MM-DD`` (None if none).

    Accepts 2023-08-05, 2023/8/5, 2023.8.5, 2023年8月5日 and ISO datetimes.
    """
    if not isinstance(value, str) or not value:
        return None
    for m in _DATE_RE.finditer(value):
        try:
            d = _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
        return d.isoformat()
    return None
