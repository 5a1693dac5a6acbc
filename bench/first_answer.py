"""``python -m bench.first_answer``: seconds from ``git clone`` to the first cited answer.

Clones this repository's HEAD into a temp folder, runs the README's run command
(``make run ARGS="--port N"``) with ``PIP_CACHE_DIR`` and ``UV_CACHE_DIR`` pointed at new,
empty folders (every package is downloaded again), waits for the app to answer the seed
question through ``POST /api/ask``, and reports each phase. Goal (issue 13): at most 60 s.

Writes ``bench/results/first_answer.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from bench.servers import free_port

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
SEED_QUESTION = "锦州的“三个开放”是什么？"
GOAL_SECONDS = 60.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "first_answer")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="first-answer-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KB_", "VIRTUAL_ENV"))}
    env |= {"PIP_CACHE_DIR": str(work / "pip-cache"), "UV_CACHE_DIR": str(work / "uv-cache"), "PYTHONUNBUFFERED": "1"}
    log = (work / "make-run.log").open("w", encoding="utf-8")
    marks: dict[str, float] = {}
    t0 = time.monotonic()
    proc = None
    try:
        subprocess.run(["git", "clone", "-q", str(REPO), str(work / "repo")], check=True)
        marks["cloned"] = time.monotonic() - t0
        proc = subprocess.Popen(
            ["make", "run", f"ARGS=--port {port}"], cwd=work / "repo", env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        answer = None
        while time.monotonic() - t0 < args.timeout:
            if proc.poll() is not None:
                raise SystemExit(f"make run exited with {proc.returncode}; see {log.name}")
            if "installed" not in marks and (work / "repo" / ".venv" / ".app").exists():  # make's stamp
                marks["installed"] = time.monotonic() - t0
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/api/ask", json={"question": SEED_QUESTION}, timeout=10)
                if r.status_code == 200:
                    answer = r.json()
                    marks["first_answer"] = time.monotonic() - t0
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        if answer is None:
            raise SystemExit(f"no answer within {args.timeout:.0f} s; see {log.name}")
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        log.close()
    cached = [f for cache in ("pip-cache", "uv-cache") for f in (work / cache).rglob("*") if f.is_file()]
    pip_mb = sum(f.stat().st_size for f in cached) / 2**20
    venv_mb = sum(f.stat().st_size for f in (work / "repo" / ".venv").rglob("*") if f.is_file()) / 2**20
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, load average at end {os.getloadavg()[0]:.1f}",
        "seconds": {k: round(v, 1) for k, v in marks.items()},
        "goal_seconds": GOAL_SECONDS,
        "downloaded_mb": round(pip_mb, 1),
        "venv_mb": round(venv_mb, 1),
        "answer_found": answer["found"],
        "answer": answer["answer"][:200],
    }
    shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    s = results["seconds"]
    md = (
        f"Measured {results['date']} on {results['machine']}; empty pip and uv caches.\n\n"
        "| fresh clone -> first answer | seconds from `git clone` |\n|---|---|\n"
        f"| git clone done | {s['cloned']} |\n| `make run`: venv + install done | {s.get('installed', '—')} |\n"
        f"| first cited answer (seed question, `/api/ask`) | **{s['first_answer']}** (goal ≤ {GOAL_SECONDS:.0f}) |\n\n"
        f"Downloaded {results['downloaded_mb']} MB; the venv holds {results['venv_mb']} MB. "
        f"Answer: {results['answer']}\n"
    )
    args.out.with_suffix(".md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
