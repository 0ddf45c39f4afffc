"""Two git revisions of the whole package timed side by side, each running its own benchmark.

Run:  .venv/bin/python -m benchmarks.ab_revisions REV_A REV_B --results bm25_speed \\
          [--rounds 3] -- benchmarks.bench_bm25 --n-docs 200000 --repeats 3

Each revision is checked out into a temporary git worktree (sharing this checkout's
``benchmarks/out`` cache of built collections, read as it is) and runs ``python -m MODULE ARGS``
there, with that revision's own package and benchmark script. Rounds alternate the order
(A B, B A, A B, ...), so a drift of this shared machine hits both alike. After each run the
worktree's ``benchmarks/results/RESULTS.json`` is read; the numeric figures whose name matches
``--keys`` are reported per revision as the median over rounds, with B / A.

``--bench-from-here`` copies this checkout's benchmark module into both worktrees first, for a
benchmark newer than the older revision (its results then differ only by the package).

Use it to show that a change moved no figure beyond run-to-run noise: the spread of each
revision's own rounds is reported next to the ratio. Writes ``benchmarks/results/ab_RESULTS.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.common import BEIR, CACHE, ROOT, machine, markdown_table, write_results

DEFAULT_KEYS = r"(ours_qps|ours_docs_per_s|ratio|p50_ms|p99_ms|qps_one_at_a_time|ndcg@10)$"
# With --bench-from-here the benchmark module of this checkout replaces each revision's copy.


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def flatten(x: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a JSON value by slash-joined path (list items by index)."""
    out: dict[str, float] = {}
    if isinstance(x, dict):
        for k, v in x.items():
            out.update(flatten(v, f"{prefix}/{k}"))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out.update(flatten(v, f"{prefix}/{i}"))
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        out[prefix] = float(x)
    return out


def worktree(rev: str, parent: Path) -> Path:
    folder = parent / rev.replace("/", "_")
    git("worktree", "add", "--detach", str(folder), rev)
    out = folder / "benchmarks" / "out"
    if CACHE.is_dir() and not out.exists():
        out.symlink_to(CACHE, target_is_directory=True)
    return folder


def run_once(folder: Path, command: list[str], results: str) -> dict[str, Any]:
    """Run ``python -m command`` in ``folder``; its results JSON."""
    target = folder / "benchmarks" / "results" / f"{results}.json"
    target.unlink(missing_ok=True)
    env = {**os.environ, "GRANITE_DATA": str(BEIR.parent)}  # the data beside this checkout
    proc = subprocess.run(
        [sys.executable, "-m", *command], cwd=folder, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed in {folder}:\n{proc.stderr[-3000:]}")
    return json.loads(target.read_text())


def summarise(runs: dict[str, list[dict[str, float]]], keys: str) -> list[dict[str, Any]]:
    a, b = list(runs)
    pattern = re.compile(keys)
    rows = []
    for path in runs[a][0]:
        if not pattern.search(path) or not all(path in r for r in runs[a] + runs[b]):
            continue
        va, vb = [r[path] for r in runs[a]], [r[path] for r in runs[b]]
        ma, mb = statistics.median(va), statistics.median(vb)
        rows.append(
            {
                "figure": path,
                a: ma,
                b: mb,
                "b_over_a": round(mb / ma, 3) if ma else None,
                f"{a}_spread": round((max(va) - min(va)) / ma, 3) if ma else None,
                f"{b}_spread": round((max(vb) - min(vb)) / mb, 3) if mb else None,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("rev_a")
    ap.add_argument("rev_b")
    ap.add_argument("--results", required=True, help="the benchmark's results name (NAME.json)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keys", default=DEFAULT_KEYS, help="regex of the figures to compare")
    ap.add_argument(
        "--bench-from-here",
        action="store_true",
        help="run this checkout's copy of the benchmark module in both worktrees (for a benchmark "
        "newer than one of the revisions)",
    )
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, command = ap.parse_args(argv[:cut]), argv[cut + 1 :]
    if not command:
        ap.error("give the benchmark after --: -- MODULE [ARGS...]")
    revs = {r: git("rev-parse", "--short", r) for r in (args.rev_a, args.rev_b)}
    labels = list(dict.fromkeys(revs.values()))
    if len(labels) != 2:
        ap.error("the two revisions are the same commit")
    parent = Path(tempfile.mkdtemp(prefix="granite-ab-"))
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in labels}
    raw: dict[str, list[dict[str, Any]]] = {label: [] for label in labels}
    try:
        folders = {label: worktree(label, parent) for label in labels}
        if args.bench_from_here:
            module = Path(*command[0].split(".")).with_suffix(".py")
            for folder in folders.values():
                shutil.copyfile(ROOT / module, folder / module)
        for i in range(args.rounds):
            for label in labels if i % 2 == 0 else labels[::-1]:
                print(f"round {i + 1}: {label}", flush=True)
                result = run_once(folders[label], command, args.results)
                raw[label].append(result)
                runs[label].append(flatten(result))
    finally:
        for label in labels:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(parent / label)],
                cwd=ROOT,
                capture_output=True,
            )
        shutil.rmtree(parent, ignore_errors=True)
    rows = summarise(runs, args.keys)
    a, b = labels
    print(
        markdown_table(
            ["figure", a, b, "B / A", f"{a} spread", f"{b} spread"],
            [
                [r["figure"], r[a], r[b], r["b_over_a"], r[f"{a}_spread"], r[f"{b}_spread"]]
                for r in rows
            ],
        )
    )
    out = {
        "machine": machine(),
        "command": command,
        "revisions": {"a": a, "b": b},
        "rounds": args.rounds,
        "bench_from_here": args.bench_from_here,
        "figures": rows,
        "runs": raw,
    }
    print("wrote", write_results(f"ab_{args.results}", out))


if __name__ == "__main__":
    main()
