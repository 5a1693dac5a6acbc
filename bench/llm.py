"""``python -m bench.llm``: the LLM path on a dev sample beside the extractive answerer (issue 11 §4).

A fixed random sample of the dev questions (``--seed``): ``--answerable`` of them asked with
their gold documents in the store, ``--removed`` others asked with them left out of retrieval.
Both answerers get the same passages (the dev store's hybrid search, top 5) and are judged by
``bench/answers.py``'s rule: correct when found, holding ≥ 80% of the gold answer's characters
and citing a gold document. The chat model is Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) on
llama.cpp's server on loopback (``bench/llm_models.py``, ``bench.servers.llama_server``), every
sentence of its reply verified (kbqa/verification.py) as in the app. Seconds per answer count
search and answer. ``--budget-minutes`` bounds the chat model's share: the extractive answerer
then gets exactly the questions the model got to. Writes ``bench/results/llm.{md,json}``, the
answers to ``llm-{llm,extractive}[-removed].answers.jsonl`` (ignored by git) and the server's
log to ``bench/results/tmp/``.

Needs the dev store that ``python -m bench --answers-only`` builds (``--store``), the
``llm-server`` and ``llm-bench`` extras. On 2 shared cores the 1.5B takes ~30 s an answer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import evalset

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
DEV_STORE = REPO / ".kbdata" / "bench" / "e5-small-onnx-2000d-320c-0o" / "chroma"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.llm", description=__doc__.splitlines()[0])
    p.add_argument("--model", default="qwen2.5-coder-1.5b", help="a model of bench/llm_models.py")
    p.add_argument("--answerable", type=int, default=40, help="questions asked with their gold documents")
    p.add_argument("--removed", type=int, default=10, help="other questions asked with their gold documents removed")
    p.add_argument("--seed", type=int, default=0, help="of the question sample")
    p.add_argument("--store", type=Path, default=DEV_STORE, help="the dev store (python -m bench builds it)")
    p.add_argument("--n-threads", type=int, default=2)
    p.add_argument("--n-ctx", type=int, default=4096)
    p.add_argument("--max-tokens", type=int, default=256, help="a reply's bound (KB_LLM_MAX_TOKENS)")
    p.add_argument("--timeout", type=float, default=300, help="seconds before the extractive answer stands in")
    p.add_argument("--budget-minutes", type=float, help="stop asking the chat model past this (the extractive "
                   "answerer then gets the same questions); default: no limit")
    p.add_argument("--out", type=Path, default=RESULTS / "llm")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not evalset.available():
        print(f"bench.llm: {evalset.EVAL_DIR} not found; nothing to measure (skipped)")
        return 0
    if not (args.store / "chroma.sqlite3").is_file():
        raise SystemExit(f"no dev store at {args.store}: build it with `python -m bench --answers-only`")
    from bench.answers import evaluate
    from bench.llm_models import assemble
    from bench.servers import llama_server
    from kbqa.knowledge_base import KnowledgeBase
    from kbcore.settings import Settings

    sample = random.Random(args.seed).sample(evalset.load_questions(), args.answerable + args.removed)
    answerable, removed = sample[: args.answerable], sample[args.answerable :]
    settings = Settings(store=args.store, llm_timeout_seconds=args.timeout, llm_max_tokens=args.max_tokens)
    kb = KnowledgeBase(settings)
    out = args.out
    results: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {platform.platform()}",
        "model": args.model, "n_threads": args.n_threads, "n_ctx": args.n_ctx, "max_tokens": args.max_tokens,
        "seed": args.seed, "load_average_start": os.getloadavg(),
    }

    def run(name: str, answerer, present_qs, removed_qs, budget_s: float | None = None) -> dict:
        print(f"{name}: {len(present_qs)} questions with gold, {len(removed_qs)} without ...", flush=True)
        jsonl, removed_jsonl = (out.with_name(f"{out.name}-{name}{part}.answers.jsonl") for part in ("", "-removed"))
        t0 = time.monotonic()
        # With a budget, the questions with gold get their share of it, the others the rest.
        share = budget_s * len(present_qs) / max(len(present_qs) + len(removed_qs), 1) if budget_s else None
        present = evaluate(kb, present_qs, removed=False, answerer=answerer, out=jsonl,
                           deadline=t0 + share if share else None)
        absent = evaluate(kb, removed_qs, present=False, answerer=answerer, out=removed_jsonl,
                          deadline=t0 + budget_s if budget_s else None)
        print(f"{name}: {json.dumps(present)} {json.dumps(absent)}", flush=True)
        return {"gold_present": present, "gold_removed": absent}

    log = out.parent / "tmp" / f"{out.name}.server.log"  # bench/results/tmp/ is ignored by git
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    with llama_server(assemble(args.model), n_ctx=args.n_ctx, n_threads=args.n_threads, log=log) as (url, _):
        llm = KnowledgeBase(settings.model_copy(update={"llm_base_url": url, "llm_model": args.model}), embedder=kb.embedder)
        budget = args.budget_minutes * 60 if args.budget_minutes else None
        results["llm"] = run("llm", llm.answerer, answerable, removed, budget)
    results["load_average_end"] = os.getloadavg()
    # The extractive answerer on exactly the questions the chat model got to.
    asked = results["llm"]
    results["extractive"] = run("extractive", kb.extractive, answerable[: asked["gold_present"]["questions"]],
                                removed[: asked["gold_removed"]["questions"]])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    print(out.with_suffix(".md").read_text(encoding="utf-8"))
    return 0


def markdown(r: dict) -> str:
    n_present = r["extractive"]["gold_present"]["questions"]
    n_removed = r["extractive"]["gold_removed"]["questions"]
    lines = [
        "# The LLM path beside the extractive answerer (dev sample)",
        "",
        (f"Measured {r['date']} on {r['machine']} (load average {r['load_average_start'][0]:.1f} at the start, "
        f"{r['load_average_end'][0]:.1f} at the end; the machine is shared with other jobs). Chat model "
        f"{r['model']} (Q4_K_M GGUF) on llama.cpp's server, {r['n_threads']} threads, n_ctx {r['n_ctx']}, "
        f"replies ≤ {r['max_tokens']} tokens, temperature 0; {n_present} dev questions asked with their gold "
        f"documents, {n_removed} others without (sample seed {r['seed']}). The extractive answerer's models were "
        "fitted on all of dev, so its row is in-sample."),
        "",
        "| answerer | correct | wrong | refused | refused, gold removed | s / answer (mean) | answer / gold chars (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, key in (("extractive", "extractive"), (f"LLM ({r['model']}), verified", "llm")):
        p, a = r[key]["gold_present"], r[key]["gold_removed"]
        seconds = (p["seconds_per_answer_mean"] * p["questions"] + a["seconds_per_answer_mean"] * a["questions"]) / (
            p["questions"] + a["questions"])
        chars = f"{p['answer_chars_median']:.0f} / {p['gold_answer_chars_median']:.0f}" if p["answer_chars_median"] else "—"
        lines.append(
            f"| {name} | {p['correct']:.3f} ({round(p['correct'] * p['questions'])}/{p['questions']}) "
            f"| {p['wrong']:.3f} ({round(p['wrong'] * p['questions'])}) | {p['refused']:.3f} ({round(p['refused'] * p['questions'])}) "
            f"| {a['refused_gold_removed']:.3f} ({round(a['refused_gold_removed'] * a['questions'])}/{a['questions']}) "
            f"| {seconds:.2f} | {chars} |"
        )
    llm = r["llm"]
    counts = {k: llm["gold_present"].get("verification", {}).get(k, 0) + llm["gold_removed"].get("verification", {}).get(k, 0)
              for k in ("sentences", "verified", "corrected", "removed")}
    notices = llm["gold_present"].get("notices", 0) + llm["gold_removed"].get("notices", 0)
    lines += [
        "",
        (f"The model's replies held {counts['sentences']} sentences: {counts['verified']} verified "
        f"({counts['corrected']} of them with their [n] corrected), {counts['removed']} removed as unsupported. "
        f"Answers with a notice (model unreachable or cut off, the extractive answer standing in): {notices}."),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
