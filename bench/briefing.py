"""``python -m bench.briefing``: topic precision of briefings — the share of a briefing's bullet
points that are about its topic — on ``bench/data/briefing_topics.jsonl``.

The knowledge base is the seed article (``kb/``) and the dev corpus's documents that name one
of the topics' places or things (杭州, 城市大脑, 贵州, 深圳, 数据交易, 量子, …; at most
``--per-word`` each): so most topics are covered by the seed, some only by a news item or two
("barely": 杭州城市大脑 is named by one document of 2,000), and one by nothing ("absent").
Without ../shared/eval only the seed is indexed (the "barely" topics then hold nothing).

The judge is a rule written with the topics, not the briefer's own scoring: each topic lists
groups of words (``about``), and a point is about the topic when every group has a word in the
point's sentence or in the title or section it stands under (a sentence leaves its subject to
its heading: "将全市46家单位……" under 数字锦州的味道). Topic precision is on-topic points /
all points, over all topics (micro) and per topic; a topic the knowledge base does not cover
should give no points at all ("absent" topics' points are all off-topic).

Writes ``bench/results/briefing.{json,md}`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import evalset  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TOPICS = REPO / "bench" / "data" / "briefing_topics.jsonl"
RESULTS = REPO / "bench" / "results"
# Documents of the dev corpus indexed beside the seed: those naming these words.
CORPUS_WORDS = ("杭州", "城市大脑", "贵州", "贵阳", "深圳", "数据交易", "量子", "云计算", "数字经济")


def load_topics(path: Path = TOPICS) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def about(point: str, context: str, groups: list[list[str]]) -> bool:
    """Every group has a word in the point or in its title/section (``context``)."""
    seen = f"{point} {context}".lower()
    return all(any(word.lower() in seen for word in group) for group in groups)


def corpus_slice(per_word: int) -> list[dict]:
    if not evalset.available():
        return []
    corpus = evalset.load_corpus()
    picked: dict[str, dict] = {}
    for word in CORPUS_WORDS:
        hits = [d for d in corpus if word in d["text"] or word in d["title"]]
        for d in hits[:per_word]:
            picked.setdefault(d["id"], d)
    return list(picked.values())


def build(workdir: Path, per_word: int):
    from kbcore.settings import Settings
    from kbqa.knowledge_base import KnowledgeBase

    kb = KnowledgeBase(Settings(store=workdir / "store", lexical_cache=workdir / "bm25"))
    docs = corpus_slice(per_word)
    corpus = workdir / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    kb.ingest([str(REPO / "kb"), *([str(corpus)] if docs else [])])  # incremental: a re-run embeds nothing
    return kb, len(docs)


def measure(kb, topics: list[dict]) -> list[dict]:
    rows = []
    for t in topics:
        t0 = time.perf_counter()
        briefing = kb.brief(t["topic"])
        ms = (time.perf_counter() - t0) * 1000
        points = []
        for section in briefing.sections:
            for point in section.points:
                chunk = briefing.sources[point.n - 1].passage.chunk
                ok = about(point.text, f"{chunk.title} {chunk.section}", t["about"])
                points.append({"section": section.heading, "text": point.text, "about": ok})
        rows.append({
            "topic": t["topic"], "coverage": t["coverage"], "found": briefing.found,
            "points": len(points), "on_topic": sum(p["about"] for p in points), "ms": round(ms, 1),
            "off_topic_points": [p for p in points if not p["about"]],
        })
    return rows


def summary(rows: list[dict]) -> dict:
    def precision(selected: list[dict]) -> float | None:
        n = sum(r["points"] for r in selected)
        return round(sum(r["on_topic"] for r in selected) / n, 3) if n else None

    out = {"topic_precision": precision(rows), "points": sum(r["points"] for r in rows)}
    for kind in ("covered", "barely", "absent"):
        chosen = [r for r in rows if r["coverage"] == kind]
        out[kind] = {"topics": len(chosen), "found": sum(r["found"] for r in chosen),
                     "points": sum(r["points"] for r in chosen), "topic_precision": precision(chosen)}
    return out


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [
        "# Briefing topic precision",
        "",
        f"{result['documents']} documents (the seed + {result['corpus_documents']} of the dev corpus), "
        f"{len(result['rows'])} topics; a point is on topic when each of its topic's word groups "
        "is in the point or its title/section (bench/briefing.py).",
        "",
        "| topics | found | points | topic precision |",
        "|---|---|---|---|",
        f"| all | {sum(r['found'] for r in result['rows'])}/{len(result['rows'])} | {s['points']} | {s['topic_precision']} |",
    ]
    for kind in ("covered", "barely", "absent"):
        k = s[kind]
        lines.append(f"| {kind} | {k['found']}/{k['topics']} | {k['points']} | {k['topic_precision']} |")
    lines += ["", "| topic | coverage | found | points | on topic | ms |", "|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['topic']} | {r['coverage']} | {r['found']} | {r['points']} | {r['on_topic']} | {r['ms']} |")
    off = [(r["topic"], p) for r in result["rows"] for p in r["off_topic_points"]]
    if off:
        lines += ["", "Points judged off topic:", ""]
        lines += [f"* {topic} · {p['section']}: {' '.join(p['text'].split())}" for topic, p in off]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.briefing", description=__doc__.splitlines()[0])
    p.add_argument("--topics", type=Path, default=TOPICS)
    p.add_argument("--per-word", type=int, default=25, help="dev documents indexed per corpus word")
    p.add_argument("--workdir", type=Path, default=REPO / ".kbdata" / "bench-briefing")
    p.add_argument("--out", type=Path, default=RESULTS / "briefing")
    args = p.parse_args(argv)
    kb, n_corpus = build(args.workdir, args.per_word)
    rows = measure(kb, load_topics(args.topics))
    result = {"documents": n_corpus + 1, "corpus_documents": n_corpus, "summary": summary(rows), "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
