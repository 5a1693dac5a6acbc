"""``python -m bench.conversation``: follow-ups over the seed article, answered through the facade.

Each conversation is a first question, its answer (from the knowledge base itself) and a
follow-up that leans on them; the follow-up counts as correct when its answer is found, cites
the seed and holds the expected words. Written for this bench in other words than the unit
tests use, English ones included (the extractive answerer answers no English question yet:
issue 11 §2). Also reports how often the rewrite gave the expected standalone question and
its time. Writes ``bench/results/conversation.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"

OPENINGS = "锦州坚持的“三个开放”指哪三个？"
STEPS = "数字政府建设的“三大步”是什么？"
AGREEMENT = "2017年华为和锦州签了什么协议？"
PLATFORM = "华为锦州云计算平台是什么时候投入使用的？"
MIGRATION = "锦州有多少家单位把业务系统迁上了华为云？"

# (first question, follow-up, expected standalone question or None to skip that check,
#  words the follow-up's answer must hold; None: the knowledge base does not say, refusal expected)
CONVERSATIONS: list[tuple[str, str, str | None, str | None]] = [
    # The standalone questions expected when the first answer lists the three; when it is a
    # refusal there is no list, and "among the subject" (…“三个开放”中第二个…) is the best a
    # rewrite can do.
    (OPENINGS, "第一个开放具体指什么？", "锦州的开放业务系统具体指什么？", "非涉密类业务系统进行改造升级"),
    (OPENINGS, "那第二个呢？", "锦州的开放数据资源是什么？", "政务数据资源开展研发"),
    (OPENINGS, "其中第三项是什么？", "锦州的开放市场应用是什么？", "市场换工厂"),
    ("锦州的“三个开放”是什么？", "第一个开放具体指什么？", "锦州的开放业务系统具体指什么？", "非涉密类业务系统进行改造升级"),
    ("锦州的“三个开放”是什么？", "那第二个呢？", "锦州的开放数据资源是什么？", "政务数据资源开展研发"),
    ("锦州的“三个开放”是什么？", "其中第三项是什么？", "锦州的开放市场应用是什么？", "市场换工厂"),
    (OPENINGS, "它们是哪一年提出的？", None, None),
    (STEPS, "那“六小步”呢？", "数字政府建设的“六小步”是什么？", "顶层设计"),
    (STEPS, "其中第一步是什么？", None, "新建ICT基础设施"),
    (AGREEMENT, "该协议签署后哪个平台投入了使用？", None, "华为锦州云计算平台"),
    (PLATFORM, "哪些工程迁入了该平台？", None, "智慧医疗"),
    (MIGRATION, "这些单位的业务系统有多少个？", None, "100多个业务系统"),
    (MIGRATION, "腾退了多少个自建机房？", "腾退了多少个自建机房？", "腾退自建机房50个"),  # names its own subject
    ("What are Jinzhou's three openings?", "What does the second one mean?", None, "政务数据资源开展研发"),
    ("What agreement did Huawei and Jinzhou sign in 2017?", "When did that platform go live?", None, "投入使用"),
]


def run(out: Path) -> dict:
    from kbqa.knowledge_base import KnowledgeBase
    from kbcore.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase(Settings(store=Path(tmp) / "store", lexical_cache=Path(tmp) / "bm25"))
        kb.ensure_seeded()
        kb.ready()
        rows = []
        for first_q, follow_up, standalone, expected in CONVERSATIONS:
            first = kb.ask(first_q)
            history = [{"role": "user", "content": first_q}, {"role": "assistant", "content": first.text}]
            t0 = time.perf_counter()
            answer = kb.ask(follow_up, history=history)
            seconds = time.perf_counter() - t0
            cited = any(c.passage.chunk.doc_id.startswith("000_") for c in answer.citations)
            if expected is None:
                outcome = "refused (right)" if not answer.found else "answered (should refuse)"
            elif not answer.found:
                outcome = "refused"
            else:
                outcome = "correct" if cited and expected in answer.text else "wrong"
            rows.append({
                "first": first_q, "first_found": first.found, "first_answer": first.text, "follow_up": follow_up,
                "standalone": answer.standalone_question,
                "standalone_as_expected": None if standalone is None else answer.standalone_question == standalone,
                "outcome": outcome, "answer": answer.text, "rewrite_ms": answer.timings_ms.get("rewrite_ms", 0.0),
                "total_ms": seconds * 1000,
            })
    counts = {k: sum(r["outcome"] == k for r in rows) for k in
              ("correct", "wrong", "refused", "refused (right)", "answered (should refuse)")}
    checked = [r["standalone_as_expected"] for r in rows if r["standalone_as_expected"] is not None]
    result = {
        "conversations": len(rows),
        "counts": counts,
        "standalone_as_expected": f"{sum(checked)}/{len(checked)}",
        "rewrite_ms_p50": statistics.median(r["rewrite_ms"] for r in rows),
        "follow_up_ms_p50": statistics.median(r["total_ms"] for r in rows),
        "rows": rows,
    }
    out.with_suffix(".json").write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    lines = [
        "# Follow-ups over the seed article (`python -m bench.conversation`)", "",
        f"{len(rows)} conversations: " + ", ".join(f"{v} {k}" for k, v in counts.items() if v)
        + f"; the rewrite gave the expected standalone question {result['standalone_as_expected']};"
        + f" rewrite p50 {result['rewrite_ms_p50']:.2f} ms, follow-up answer p50 {result['follow_up_ms_p50']:.1f} ms.", "",
        "| first question (answered?) | follow-up | standalone question | outcome |", "|---|---|---|---|",
    ]
    lines += [
        f"| {r['first']} ({'yes' if r['first_found'] else 'refused'}) | {r['follow_up']} | {r['standalone']} | {r['outcome']} |"
        for r in rows
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.conversation", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=RESULTS / "conversation", help="results path without suffix")
    args = p.parse_args(argv)
    result = run(args.out)
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))
    return 0 if result["rows"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
