"""Soak: writer processes (add / delete / upsert) and reader processes on one collection for a
fixed time, with writers SIGKILLed at random and restarted; then every acknowledged write is
checked, and the collection against a from-scratch rebuild of its documents.

Run:  .venv/bin/python -m benchmarks.bench_soak [--seconds 600] [--writers 2] [--readers 2]

The collection has a BM25 leg and a flat dense leg. Documents are short texts of real SciFact
words; each document's 384-d vector is a function of its id and version (seeded normal,
normalised), given as ``vectors=``, so a rebuild can make the same vectors without a model.

* A writer loops over random operations on its own ids: add 1-5 new documents, delete 1-2 of its
  documents, upsert one of them with a new version. Before each call it logs ``BEGIN``, after the
  call returns ``ACK`` (each line flushed and fsynced): an acknowledged write.
* Every ``--kill-every`` seconds on average the runner SIGKILLs a random writer and starts it
  again (its ids carry a generation number).
* A reader loops: open the collection, check that the manifest, the documents and both indexes
  agree on the number of documents, search BM25 and dense, check every hit resolves to a stored
  document; every exception or failed check is counted with its reason.

At the end: each id whose last operation was acknowledged must be in the collection with the
text of its last acknowledged version (or absent if deleted); an id whose last operation was
begun but not acknowledged (a writer killed in the call) may be in its state before or after;
no id is stored twice; and BM25 and dense results for 200 queries equal those of a collection
built from scratch, in one commit, from the documents read back. Writes
benchmarks/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from benchmarks.common import BEIR, ROOT, machine, markdown_table, write_results

DIM = 384


def vector(doc_id: str, version: int) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(f"{doc_id}#{version}".encode()))
    v = rng.standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def text(words: list[str], doc_id: str, version: int) -> str:
    rng = random.Random(zlib.crc32(f"{doc_id}#{version}".encode()))
    return f"{doc_id} v{version} " + " ".join(rng.choice(words) for _ in range(rng.randint(5, 30)))


def vocabulary() -> list[str]:
    from granite_index.eval import load_beir

    words = " ".join(load_beir(BEIR / "scifact").documents()[:500]).lower().split()
    return sorted({w.strip(".,;:()[]") for w in words if w.isalpha() and len(w) > 3})


# ---------------------------------------------------------------- roles (child processes)
def writer(path: str, name: str, seconds: float, log: str) -> None:
    from granite_index import Collection, ConflictError

    words = vocabulary()
    col = Collection.open(path, lock_timeout=120)
    rng = random.Random(f"{name}{os.getpid()}")
    mine: dict[str, int] = {}  # id -> version, as acknowledged by this process
    n = 0
    with open(log, "a", encoding="utf-8") as fh:

        def note(line: str) -> None:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            op = rng.random()
            if op < 0.6 or len(mine) < 5:
                ids = [f"{name}-{n + j}" for j in range(rng.randint(1, 5))]
                n += len(ids)
                note("BEGIN ADD " + " ".join(ids))
                col.add(
                    ids,
                    [text(words, i, 0) for i in ids],
                    vectors=np.stack([vector(i, 0) for i in ids]),
                )
                note("ACK ADD " + " ".join(ids))
                mine.update(dict.fromkeys(ids, 0))
            elif op < 0.8:
                ids = rng.sample(sorted(mine), rng.randint(1, 2))
                note("BEGIN DEL " + " ".join(ids))
                try:
                    col.delete(ids)
                except ConflictError:  # cannot happen: only this writer touches its ids
                    note("CONFLICT DEL " + " ".join(ids))
                    raise
                note("ACK DEL " + " ".join(ids))
                for i in ids:
                    del mine[i]
            else:
                i = rng.choice(sorted(mine))
                v = mine[i] + 1
                note(f"BEGIN UPS {i} {v}")
                col.upsert([i], [text(words, i, v)], vectors=vector(i, v)[None, :])
                note(f"ACK UPS {i} {v}")
                mine[i] = v


def reader(path: str, seconds: float, log: str) -> None:
    from granite_index import Collection

    words = vocabulary()
    rng = random.Random(os.getpid())
    opens, failures = 0, []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            col = Collection.open(path)
            n = len(col)
            assert n == col.manifest.n_docs == len(col.bm25_index) == len(col.dense_index), n
            q = " ".join(rng.choice(words) for _ in range(3))
            lexical = col.search(q, k=10, mode="bm25").doc_ids()[0]
            dense = col.search(vector(q, 0)[None, :], k=10, mode="dense").doc_ids()[0]
            assert len(dense) == min(10, n), (len(dense), n)
            for found in (lexical, dense):
                if found:  # every hit is a stored document
                    assert col.get(found).num_rows == len(found)
            opens += 1
        except Exception as exc:  # every failure is counted with its reason
            failures.append(f"{type(exc).__name__}: {exc}"[:300])
    Path(log).write_text(json.dumps({"opens": opens, "failures": failures}))


# ---------------------------------------------------------------- the runner
def expected(logs: list[Path]) -> tuple[dict[str, int | None], set[str]]:
    """From the writers' logs: id -> last acknowledged version (None: deleted), and the ids
    whose last operation was begun but not acknowledged."""
    state: dict[str, int | None] = {}
    pending: set[str] = set()
    for log in logs:
        if not log.exists():  # killed before it wrote anything
            continue
        open_op = None
        for line in log.read_text().splitlines():
            kind, op, *rest = line.split()
            if kind == "BEGIN":
                open_op = (op, rest)
                continue
            if kind != "ACK":
                continue
            open_op = None
            if op == "ADD":
                state.update(dict.fromkeys(rest, 0))
            elif op == "DEL":
                state.update(dict.fromkeys(rest, None))
            else:
                state[rest[0]] = int(rest[1])
        if open_op is not None:  # killed in the call
            op, rest = open_op
            pending.update(rest[:1] if op == "UPS" else rest)
    return state, pending


def spawn(role: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_soak", "--role", role, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def same_ranking(x, y) -> bool:
    """Equal scores, and the same documents at each score above the last one kept (tied
    documents may come in either order; a cut through a tie may keep any of its members)."""
    sx, sy = x.scores[0], y.scores[0]
    if not np.allclose(sx, sy, rtol=1e-5, atol=1e-6):
        return False
    groups = []
    for res, scores in ((x, sx), (y, sy)):
        ids = res.doc_ids()[0]
        last = scores[len(ids) - 1] if ids else 0.0
        g: dict[float, set] = {}
        for doc_id, score in zip(ids, scores):
            if score > last + 1e-6:
                g.setdefault(round(float(score), 4), set()).add(doc_id)
        groups.append(g)
    return groups[0] == groups[1]


def check(path: Path, logs: list[Path], words: list[str]) -> dict:
    from granite_index import Collection, DenseEncoder

    col = Collection.open(path)
    state, pending = expected(logs)
    ids = [i for i in col.ids_of(np.arange(col.manifest.next_key)[None, :])[0] if i is not None]
    table = col.get(ids)
    texts = dict(zip(table.column("id").to_pylist(), table.column("text").to_pylist()))
    lost, wrong, unexpected = [], [], []
    for doc_id, version in state.items():
        if doc_id in pending:
            continue
        if version is None:
            if doc_id in texts:
                unexpected.append(doc_id)
        elif doc_id not in texts:
            lost.append(doc_id)
        elif not texts[doc_id].startswith(f"{doc_id} v{version} "):
            wrong.append(doc_id)
    strays = [i for i in texts if i not in state and i not in pending]
    lance_rows = col.manifest.n_docs
    duplicates = len(ids) - len(set(ids))
    # a rebuild from the documents read back, in one commit
    versions = {i: int(t.split()[1][1:]) for i, t in texts.items()}
    with tempfile.TemporaryDirectory(prefix="soak-rebuild-") as tmp:
        enc = DenseEncoder()
        fresh = Collection.create(Path(tmp) / "r", encoder=enc, sparse="bm25")
        order = sorted(texts)
        fresh.add(
            order,
            [texts[i] for i in order],
            vectors=np.stack([vector(i, versions[i]) for i in order]),
        )
        rng = random.Random(7)
        mismatches = 0
        for _ in range(200):
            q = " ".join(rng.choice(words) for _ in range(3))
            a, b = col.search(q, k=10, mode="bm25"), fresh.search(q, k=10, mode="bm25")
            v = vector(q, 0)[None, :]
            c, d = col.search(v, k=10, mode="dense"), fresh.search(v, k=10, mode="dense")
            for x, y in ((a, b), (c, d)):
                if not same_ranking(x, y):
                    mismatches += 1
    return {
        "documents": len(texts),
        "manifest_n_docs": lance_rows,
        "acknowledged_ids": len(state),
        "pending_ids": len(pending),
        "lost": len(lost),
        "wrong_version": len(wrong),
        "deleted_but_present": len(unexpected),
        "strays": len(strays),
        "duplicates": duplicates,
        "rebuild_mismatches": mismatches,
        "examples": {"lost": lost[:5], "wrong": wrong[:5], "unexpected": unexpected[:5]},
    }


def run(args: argparse.Namespace) -> dict:
    from granite_index import Collection, DenseEncoder

    folder = Path(tempfile.mkdtemp(prefix="granite-soak-"))
    path = folder / "col"
    Collection.create(path, encoder=DenseEncoder(), sparse="bm25")
    rng = random.Random(args.seed)
    end = time.monotonic() + args.seconds
    writer_logs: list[Path] = []
    writers: dict[int, subprocess.Popen] = {}
    generation = 0

    def start_writer(slot: int) -> None:
        nonlocal generation
        generation += 1
        log = folder / f"writer-{slot}-{generation}.log"
        writer_logs.append(log)
        left = max(1.0, end - time.monotonic())
        writers[slot] = spawn("writer", str(path), f"w{slot}g{generation}", f"{left:.1f}", str(log))

    for slot in range(args.writers):
        start_writer(slot)
    readers = [
        spawn("reader", str(path), str(args.seconds), str(folder / f"reader-{r}.json"))
        for r in range(args.readers)
    ]
    kills, crashed = 0, []
    while time.monotonic() < end - 2:
        time.sleep(min(rng.expovariate(1 / args.kill_every), max(0.0, end - 2 - time.monotonic())))
        if time.monotonic() >= end - 2:
            break
        slot = rng.randrange(args.writers)
        proc = writers[slot]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        elif proc.returncode != 0:
            crashed.append(proc.stderr.read().decode()[-500:])
        start_writer(slot)
    for proc in writers.values():
        proc.wait()
        if proc.returncode not in (0, -signal.SIGKILL):
            crashed.append(proc.stderr.read().decode()[-500:])
    for proc in readers:
        proc.wait()
    reads = [json.loads((folder / f"reader-{r}.json").read_text()) for r in range(args.readers)]
    acks = sum(
        line.startswith("ACK ")
        for log in writer_logs
        if log.exists()
        for line in log.read_text().splitlines()
    )
    result = check(path, writer_logs, vocabulary())
    return {
        "seconds": args.seconds,
        "writers": args.writers,
        "readers": args.readers,
        "writes_acknowledged": acks,
        "writer_kills": kills,
        "writer_crashes": crashed,
        "reader_opens": sum(r["opens"] for r in reads),
        "reader_failures": sum(len(r["failures"]) for r in reads),
        "reader_failure_examples": [f for r in reads for f in r["failures"]][:5],
        **result,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--kill-every", type=float, default=5.0, help="mean seconds between kills")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print only (for a smoke test)")
    ap.add_argument("--role", choices=["writer", "reader"], help=argparse.SUPPRESS)
    ap.add_argument("role_args", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "writer":
        path, name, seconds, log = args.role_args
        return writer(path, name, float(seconds), log)
    if args.role == "reader":
        path, seconds, log = args.role_args
        return reader(path, float(seconds), log)
    out = {"machine": machine(), **run(args)}
    keys = [
        "seconds",
        "writers",
        "readers",
        "writes_acknowledged",
        "writer_kills",
        "reader_opens",
        "reader_failures",
        "lost",
        "wrong_version",
        "deleted_but_present",
        "duplicates",
        "rebuild_mismatches",
    ]
    print(markdown_table(keys, [[out[k] for k in keys]]))
    if args.no_write:
        print(json.dumps({k: v for k, v in out.items() if k != "machine"}))
    else:
        print("wrote", write_results("soak", out))


if __name__ == "__main__":
    main()
