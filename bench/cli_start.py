"""``python -m bench.cli_start``: wall time of ``python -m ingest --help / --list / --remove``.

Each command runs as a whole process, ``--runs`` times, on a store holding the demo ``kb/``
(ingested first, not timed); the median and range are reported against the goal (1 s, issue
13) and, in the same run, against two baselines: an empty interpreter (``python -c pass``)
and ``python -c "import chromadb"`` (the floor of any command that opens a Chroma store).
Writes ``bench/results/cli_start.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
GOAL_SECONDS = 1.0


def timed(argv: list[str], runs: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        seconds.append(time.perf_counter() - t0)
    return {"median": statistics.median(seconds), "min": min(seconds), "max": max(seconds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "cli_start")
    args = parser.parse_args(argv)
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="cli-start-") as tmp:
        store = str(Path(tmp) / "chroma")
        subprocess.run([py, "-m", "ingest", "kb/", "--store", store, "--no-progress"], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
        commands = {
            "baseline: python -c pass": [py, "-c", "pass"],
            "baseline: python -c 'import chromadb'": [py, "-c", "import chromadb"],
            "python -m ingest --help": [py, "-m", "ingest", "--help"],
            "python -m ingest --list": [py, "-m", "ingest", "--list", "--store", store],
            "python -m ingest --remove <missing id>": [py, "-m", "ingest", "--remove", "x", "--store", store],
        }
        rows = {name: timed(cmd, args.runs) for name, cmd in commands.items()}
    results = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        "runs": args.runs,
        "goal_seconds": GOAL_SECONDS,
        "seconds": {k: {s: round(v, 3) for s, v in row.items()} for k, row in rows.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    lines = [f"Measured {results['date']} on {results['machine']}; {args.runs} runs each, whole processes.", "",
             "| command | median s | min–max s | goal |", "|---|---|---|---|"]
    for name, row in rows.items():
        goal = "—" if name.startswith("baseline") else f"≤ {GOAL_SECONDS:g} s"
        lines.append(f"| {name} | {row['median']:.2f} | {row['min']:.2f}–{row['max']:.2f} | {goal} |")
    md = "\n".join(lines) + "\n"
    args.out.with_suffix(".md").write_text(md, encoding="utf-8")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
