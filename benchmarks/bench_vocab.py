"""BM25 vocabularies of real-text size: what a commit, an open and a first query cost.

Run:  PYTHONPATH=. .venv/bin/python -m benchmarks.bench_vocab [--sizes 100000 1000000 3000000]

Real text at millions of documents has millions of distinct terms (names, numbers, typos), where
the synthetic corpora of ``bench_scale`` draw from about 40,000. Per vocabulary size, on terms
shaped like real ones (a base word plus a numeric or alphabetic variant, 6-16 characters):

- ``whole list`` (what indexes of sparse format 1 did): the term list rewritten as one Arrow file
  at every commit, read back and turned into a Python dict at open;
- ``segments`` (:class:`granite_index.index.vocab.StoredVocabulary`): a commit writes a segment
  of its new terms; open reads the segment list and memory-maps the segments.

Measured in fresh processes (median of ``--repeats``), after importing what an open collection
has loaded anyway (pyarrow and its compute module, one Arrow file written): a commit that adds
1,000 new terms (save only, no fsync), open, RSS added by open, and the first lookup of 1,000
words (500 known, 500 unknown) after open. Writes ``benchmarks/results/vocab.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from typing import Any

from benchmarks.common import CACHE, machine, markdown_table, write_results

_CHILD = r"""
import json, sys, time
from pathlib import Path
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

layout, folder, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
from granite_index.encoders.analyzer import Vocabulary
from granite_index.index.vocab import StoredVocabulary

def term(i):
    return f"w{i * 2654435761 % 4294967291:x}t{i % 97}"

# what an open collection has loaded anyway: Arrow compute, and a first Arrow file write
import pyarrow.compute  # noqa: F401
feather.write_feather(pa.table({"x": [1]}), folder / "warm.arrow")
new = [f"new{i}x{n}" for i in range(1000)]
probe = [term(i * 997 % n) for i in range(500)] + [f"absent{i}" for i in range(500)]
out = {}
before = rss_kib()
t0 = time.perf_counter()
if layout == "whole":
    terms = feather.read_table(folder / "vocab.arrow").column("term").to_pylist()
    vocab = Vocabulary(terms)
else:
    vocab = StoredVocabulary.load(folder / "vocab")
out["open_s"] = time.perf_counter() - t0
out["rss_added_by_open_mib"] = (rss_kib() - before) / 1024
t0 = time.perf_counter()
found = vocab.lookup(probe)
out["first_lookup_1000_s"] = time.perf_counter() - t0
assert sum(f is not None for f in found) == 500, sum(f is not None for f in found)
vocab.extend(new)
t0 = time.perf_counter()
if layout == "whole":
    feather.write_feather(
        pa.table({"term": pa.array(vocab.terms, pa.string())}),
        folder / "vocab.arrow",
        compression="uncompressed",
    )
else:
    vocab.save(folder / "vocab", segments_dir=folder / "segments")
out["commit_1000_new_terms_s"] = time.perf_counter() - t0
print(json.dumps(out))
"""

_BUILD = r"""
import sys
from pathlib import Path
import pyarrow as pa
import pyarrow.feather as feather
from granite_index.index.vocab import StoredVocabulary

folder, n = Path(sys.argv[1]), int(sys.argv[2])
terms = [f"w{i * 2654435761 % 4294967291:x}t{i % 97}" for i in range(n)]
(folder / "whole").mkdir(parents=True)
feather.write_feather(
    pa.table({"term": pa.array(terms, pa.string())}),
    folder / "whole" / "vocab.arrow",
    compression="uncompressed",
)
vocab = StoredVocabulary()
for start in range(0, n, 100_000):  # as bulk adds would grow it
    vocab.extend(terms[start : start + 100_000])
vocab.save(folder / "segments" / "vocab", segments_dir=folder / "segments" / "segments")
"""


def _run(code: str, *args: Any) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def run_size(n: int, repeats: int) -> dict[str, Any]:
    folder = CACHE / f"vocab-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    _run(_BUILD, folder, n)
    out: dict[str, Any] = {"n_terms": n}
    for layout, sub in (("whole", "whole"), ("segments", "segments")):
        runs = []
        for _ in range(repeats):
            work = folder / f"run-{layout}"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(folder / sub, work)
            runs.append(json.loads(_run(_CHILD, layout, work, n)))
        out[layout] = {k: round(statistics.median(r[k] for r in runs), 4) for k in runs[0]}
        out[layout]["bytes"] = sum(
            p.stat().st_size for p in (folder / sub).rglob("*") if p.is_file()
        )
    shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(out), flush=True)
    return out


def table(results: dict[str, Any]) -> str:
    rows = []
    for r in results["sizes"]:
        for layout, name in (("whole", "whole list (format 1)"), ("segments", "segments")):
            x = r[layout]
            rows.append(
                [
                    f"{r['n_terms']:,}",
                    name,
                    x["commit_1000_new_terms_s"],
                    x["open_s"],
                    round(x["rss_added_by_open_mib"], 1),
                    x["first_lookup_1000_s"],
                    round(x["bytes"] / 2**20, 1),
                ]
            )
    head = ["terms", "layout", "commit +1,000 terms, s", "open, s", "RSS added, MiB"]
    return markdown_table([*head, "first 1,000 lookups, s", "on disk, MiB"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 3_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    results = {"sizes": [run_size(n, args.repeats) for n in args.sizes], "machine": machine()}
    write_results("vocab", results)
    print(table(results))


if __name__ == "__main__":
    main()
