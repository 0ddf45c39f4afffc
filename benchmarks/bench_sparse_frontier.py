"""Sparse query processing against the research frontier: granite-index, bm25s, PISA, Seismic, BMP.

Run:  .venv/bin/python -m benchmarks.bench_sparse_frontier [--corpora realistic iid real]
      [--kinds bm25 impact] [--n-docs 1000000] [--with-10m] [--threads 1 2] [--ks 10 1000]
      [--repeats 3] [--engines granite bm25s pisa pisa-q8 seismic bmp] [--seismic-postings N ...]
      [--small] [--merge]
``--small``: 20,000 documents (a smoke run). ``--merge``: keep the runs of other corpora / kinds /
sizes already in the results file (e.g. a 1M run added to a small one), and of a run repeated,
the engines this run did not measure (recorded as ``carried_engines`` with their command/date).

Every engine indexes the same documents (the same term ids and values) and answers the same
queries, in the same run.

Corpora: ``benchmarks.sparse_corpus.load_corpus`` (``realistic``, ``iid``, ``real``; see that
module), each in two kinds: ``bm25`` (values are term frequencies; BM25 with k1 = 1.2, b = 0.75)
and ``impact`` (SPLADE weights; dot product); the 458 real test queries.

Engines, and the call that is timed
- granite-index: ``SparseIndex.search((indptr, indices, values), k=k, threads=t)``. The query
  CSR goes in raw, so ``prepare`` (idf weighting, ordering) is inside the timing, as a user pays
  it. Where ``search`` takes ``strategy``, ``"exhaustive"`` and ``"pruned"`` (MaxScore-style,
  exact) both run (``"auto"``, the default, is exhaustive today and is not run twice); where it
  takes ``share`` (impact kind), the approximate mode runs at each of ``GRANITE_SHARES`` (the
  share of the query's weight its candidate pass uses; exact rescoring of the best
  candidates). A mode that raises on a one-query probe is reported and skipped.
- bm25s (bm25 kind): ``BM25(method="lucene", backend="numba").retrieve(token id lists, k,
  n_threads)``, documents and queries as token id lists (a term repeated tf times); the same
  BM25 as granite-index.
- PISA through ``pyterrier_pisa``: the inverted collection (``inv.docs`` / ``inv.freqs`` /
  ``inv.sizes``, ``fwd.*``) is written from the CSR with numpy, byte-identical to what
  ``PisaIndex(path, stemmer='none', stops='none').toks_indexer(scale=1.0)`` writes from
  ``{term: tf}`` dicts (``checks.pisa_writer`` compares the files on a 2,000-document slice every
  run) but without its Python loop; then ``_pisathon.prepare_index`` builds the block-max data and
  the ``block_simdbp`` index, as ``PisaRetrieve`` does. Queries: ``_pisathon.retrieve`` called as
  ``PisaRetrieve.transform`` calls it (``(i, {term: weight})`` pairs, ``pretokenised``, result
  arrays allocated per call), so no pandas is timed; ``query_weighted=1`` (PISA repeats a term
  ``int(weight)`` times and weights it by the count). Every disjunctive algorithm runs:
  ``maxscore``, ``block_max_maxscore``, ``block_max_wand``, ``wand``, ``ranked_or`` (document at
  a time) and ``ranked_or_taat`` (term at a time, 1 thread only: the wrapper's query function
  owns one accumulator that its threads share, and 2-thread answers come out wrong); not the
  conjunctive ``*ranked_and``, nor ``ranked_or_taat_lazy`` (run unweighted by the wrapper).
  ``best`` in the table is the fastest algorithm per cell.
  * ``pisa``, bm25 kind: PISA's ``bm25`` scorer over the integer tf and the same document lengths.
    Its idf is Robertson's ``max(1e-6, ln((N - df + .5) / (df + .5))) * (1 + k1)``, not Lucene's
    ``ln(1 + (N - df + .5) / (df + .5))``: the same BM25 otherwise (``checks.pisa_bm25``: PISA's
    scores against that formula by brute force), but different rankings, and terms in over half
    the documents weigh ~0, which helps its pruning.
  * ``pisa``, impact kind: the ``quantized`` scorer over weights floored to integers at scale
    100 (pyterrier_pisa's default ``toks_scale``), queries likewise.
  * ``pisa-q8``, bm25 kind: the ``quantized`` scorer over granite-index's (Lucene) BM25 term
    scores quantised linearly to 1..255, as PISA's own impact precomputation does: granite-index's
    ranking up to 8-bit quantisation, and PISA's usual benchmark configuration.
  Documents stay in corpus order: no docid reordering (published PISA and BMP figures use
  BP-reordered collections, which tighten block maxima and compression).
- Seismic (``pyseismic-lsr``; impact kind; approximate): ``SeismicIndex.build_from_dataset`` with
  ``n_postings`` = 3,500 (the authors' MS MARCO value, 8.8M documents) scaled to the corpus size,
  at least 400, ``centroid_fraction=0.1``, ``summary_energy=0.4``; ``batch_search(ids, terms,
  weights, k, query_cut, heap_factor, num_threads=t)`` over a grid of (query_cut, heap_factor).
  Its answers come back in no particular query order (matched by query id).
- BMP (impact kind; exact at alpha = beta = 1, approximate below): ``bmp.Indexer(path, bsize=32,
  compress_range=False)``, ``Searcher(path).search({term: int}, k, alpha, beta)``. BMP keeps
  8-bit impacts (larger values wrap around), so weights are scaled by 100 as its pyterrier wrapper
  does only if that fits, else by ``255 / max weight``, floored; queries use the same scale.
  ``search`` takes one query and holds the GIL (2 Python threads run slower than 1), and there is
  no batch or thread option: a Python loop over the queries, 1 thread only.

Measured for each engine and setting: build time (s; each engine's default threads on this
2-core machine; for BMP and Seismic it includes making their per-document Python inputs, which
alone take ``input_s``); index size on disk (PISA: compressed index, block-max data, lexicons;
the uncompressed collection is ``collection_bytes``); for 1 and 2 threads at k = 10 and 1000,
queries/s and ms/query (batch wall time / queries: at 1 thread the mean latency), the median of
``--repeats`` passes after a warm-up pass, all settings taking turns within each pass so drift on
a shared machine hits all. Recall@k, tie-aware, against granite-index's exact (exhaustive) top-k
on the same vectors: a returned document counts when its exact score (``SparseIndex.score``)
reaches the exact k-th score. ``recall_self``: the same against the engine's own exact answer
(PISA bm25: ``ranked_or``'s scores; BMP and PISA ``quantized``: an exact index over the same
integer weights), which tells pruning loss from quantisation loss.

Outputs: ``benchmarks/results/sparse_frontier.json`` (``table(results)`` rebuilds the markdown
table from it) and ``benchmarks/results/sparse_frontier.png`` (a panel per run, k = 10, 1 thread:
ms/query, log scale, against recall@10; exact settings as points, approximate ones as curves).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import inspect
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, machine, markdown_table, write_results
from benchmarks.sparse_corpus import SparseCorpus, load_corpus
from granite_index import SparseIndex

K1, B = 1.2, 0.75
PISA_ALGORITHMS = [
    "maxscore",
    "block_max_maxscore",
    "block_max_wand",
    "wand",
    "ranked_or",
    "ranked_or_taat",
]
PISA_ENCODING = "block_simdbp"
PISA_SCALE = 100.0
SEISMIC_GRID = [(3, 0.7), (5, 0.8), (5, 0.9), (8, 0.9), (10, 0.9), (10, 1.0), (20, 1.0)]
BMP_GRID = [(1.0, 1.0), (0.95, 1.0), (0.9, 1.0), (0.8, 1.0), (0.9, 0.9), (0.8, 0.8), (0.7, 0.7)]
#: approximate learned-sparse search: shares of the query weight that pick the candidates
GRANITE_SHARES = [0.3, 0.4, 0.5, 0.6, 0.7]
ENGINES = ["granite", "bm25s", "pisa", "pisa-q8", "seismic", "bmp"]
#: from this many documents granite-index is searched memory-mapped from its saved folder, so
#: that the peers' builds find the memory its build used (10M BM25: 5.8 GB of postings)
MMAP_FROM = 5_000_000
#: bm25s needs Python token lists (~40 bytes a token): skipped above this many documents
BM25S_MAX_DOCS = 2_000_000


# ------------------------------------------------------------------ corpora
def load(name: str, kind: str, n_docs: int, seed: int = 0) -> SparseCorpus:
    """The corpus of ``benchmarks.sparse_corpus`` (``real`` has as many documents as it has)."""
    return load_corpus(name, n_docs=n_docs, kind=kind, seed=seed)


def term_names(n_terms: int) -> np.ndarray:
    """Zero-padded decimal term names: their string order is their id order (PISA's lexicon
    is sorted by string)."""
    width = len(str(max(n_terms - 1, 0)))
    return np.char.zfill(np.arange(n_terms).astype(str), width)


def quantise(values: np.ndarray, scale: float, cap: int | None = None) -> np.ndarray:
    """Floats → integers as the peers' wrappers do (``int(v * scale)``, floored), capped."""
    q = np.floor(values.astype(np.float64) * scale)
    if cap is not None:
        q = np.minimum(q, cap)
    return q.astype(np.int64)


def drop_zeros(indptr, indices, values):
    """CSR without its zero entries."""
    keep = values > 0
    kept = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    return kept[indptr], indices[keep], values[keep]


# ------------------------------------------------------------------ timing helpers
@contextlib.contextmanager
def quiet(log: Path) -> Iterator[None]:
    """Send file descriptors 1 and 2 to ``log`` (PISA and Seismic print progress from C++ / Rust)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def dir_bytes(*paths: Path) -> int:
    """Total size of files (and files under folders)."""
    total = 0
    for p in paths:
        if p.is_dir():
            total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        elif p.exists():
            total += p.stat().st_size
    return total


@dataclass
class Setting:
    """One engine configuration to time: ``call(k, threads)`` runs the batch, ``parse`` turns its
    output into (ids, scores) arrays of shape (n_queries, k), outside the timing."""

    engine: str
    label: str
    call: Callable[[int, int], Any]
    parse: Callable[[Any, int], tuple[np.ndarray, np.ndarray]]
    exact: bool
    max_threads: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    self_ref: str | None = None  # label of the engine's own exact setting (recall_self)
    self_exact: Any = None  # an index over the engine's own values, for recall_self


@dataclass
class Engine:
    name: str
    build_s: float
    bytes_disk: int
    settings: list[Setting]
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ engines
def granite_variants(idx: SparseIndex, kind: str) -> list[tuple[str, dict[str, Any], bool]]:
    """(label, extra search kwargs, exact) for whatever modes ``SparseIndex.search`` offers."""
    params = inspect.signature(idx.search).parameters
    out: list[tuple[str, dict[str, Any], bool]] = []
    if "strategy" in params:  # "auto" is the default, "exhaustive" today: not run twice
        out += [
            ("exhaustive", {"strategy": "exhaustive"}, True),
            ("pruned", {"strategy": "pruned"}, True),
        ]
    else:
        out.append(("exact", {}, True))
    if "share" in params and kind == "impact":
        out += [(f"share={r:.1f}", {"share": r}, False) for r in GRANITE_SHARES]
    return out


def build_granite(c: SparseCorpus, tmp: Path) -> tuple[Engine, SparseIndex]:
    warm = SparseIndex(c.kind, k1=K1, b=B) if c.kind == "bm25" else SparseIndex("impact")
    m = int(c.indptr[min(100, c.n_docs)])
    warm.add(np.arange(min(100, c.n_docs)), c.indptr[:101], c.indices[:m], c.values[:m])
    t0 = time.perf_counter()
    idx = SparseIndex("bm25", k1=K1, b=B) if c.kind == "bm25" else SparseIndex("impact")
    idx.add(np.arange(c.n_docs), c.indptr, c.indices, c.values)
    build_s = time.perf_counter() - t0
    idx.save(tmp / "granite")
    size = dir_bytes(tmp / "granite")
    mapped = c.n_docs >= MMAP_FROM
    if mapped:
        idx = SparseIndex.load(tmp / "granite", mmap=True)
    else:
        shutil.rmtree(tmp / "granite")
    q = (c.q_indptr, c.q_indices, c.q_values)
    settings = []
    skipped = {}
    for label, kw, exact in granite_variants(idx, c.kind):

        def call(k, threads, kw=kw):
            return idx.search(q, k=k, threads=threads, **kw)

        try:
            idx.search((q[0][:2], q[1][: q[0][1]], q[2][: q[0][1]]), k=10, threads=1, **kw)
        except Exception as e:  # noqa: BLE001 - a mode the index refuses is reported, not fatal
            print(f"  granite-index {label}: skipped ({e!r})", flush=True)
            skipped[label] = repr(e)
            continue
        settings.append(Setting("granite-index", label, call, _parse_granite, exact, params=kw))
    info = {"bytes_memory": int(idx.nbytes), "segments": len(idx.segments), "mmap": mapped}
    if skipped:
        info["skipped"] = skipped
    return Engine("granite-index", build_s, size, settings, info), idx


def _parse_granite(res, k):
    return res.ids, res.scores


def build_bm25s(c: SparseCorpus, tmp: Path) -> Engine:
    import bm25s

    tf = c.values.astype(np.int64)
    flat = np.repeat(c.indices.astype(np.int64), tf).tolist()
    ptr = _row_sums_ptr(c.indptr, tf)
    lists = [flat[ptr[i] : ptr[i + 1]] for i in range(c.n_docs)]
    del flat
    q_tf = c.q_values.astype(np.int64).clip(min=1)
    q_flat = np.repeat(c.q_indices.astype(np.int64), q_tf).tolist()
    q_ptr = _row_sums_ptr(c.q_indptr, q_tf)
    queries = [q_flat[q_ptr[i] : q_ptr[i + 1]] for i in range(c.n_queries)]
    vocab = {i: i for i in range(c.n_terms)}

    def build(token_lists):
        ret = bm25s.BM25(method="lucene", k1=K1, b=B, backend="numba")
        ret.index(bm25s.tokenization.Tokenized(ids=token_lists, vocab=vocab), show_progress=False)
        return ret

    build(lists[:100])  # numba compilation / cache load
    t0 = time.perf_counter()
    ret = build(lists)
    build_s = time.perf_counter() - t0
    del lists
    ret.save(str(tmp / "bm25s"))
    size = dir_bytes(tmp / "bm25s")
    shutil.rmtree(tmp / "bm25s")
    s = ret.scores
    mem = int(s["data"].nbytes + s["indices"].nbytes + s["indptr"].nbytes)

    def call(k, threads):
        return ret.retrieve(queries, k=k, show_progress=False, n_threads=threads)

    def parse(out, k):
        return np.asarray(out[0], np.int64), np.asarray(out[1], np.float32)

    setting = Setting("bm25s", "numba", call, parse, True)
    return Engine("bm25s", build_s, size, [setting], {"bytes_memory": mem})


def _row_sums_ptr(indptr: np.ndarray, x: np.ndarray) -> np.ndarray:
    """indptr of the rows after each entry is repeated ``x`` times."""
    cs = np.concatenate([[0], np.cumsum(x)])
    return cs[indptr]


def write_pisa_collection(
    path: Path, indptr: np.ndarray, indices: np.ndarray, freqs: np.ndarray, names: np.ndarray
) -> None:
    """Write the inverted collection and forward lexicons that ``PisaToksIndexer`` writes.

    Parameters
    ----------
    path : Path
        The index folder (created).
    indptr, indices, freqs : numpy.ndarray
        Document CSR with integer values > 0 (term frequencies or quantised impacts).
    names : numpy.ndarray of str
        Term names, string order equal to id order.

    Notes
    -----
    ``inv.docs``: ``[1, n_docs]`` then per term (in name order) ``[df, doc ids...]``;
    ``inv.freqs``: per term ``[df, values...]``; ``inv.sizes``: ``[n_docs, lengths...]`` with a
    document's length the sum of its values; all uint32. Only terms that occur are listed.
    """
    from pyterrier_pisa import _pisathon

    path.mkdir(parents=True, exist_ok=True)
    n_docs = len(indptr) - 1
    freqs = np.asarray(freqs, np.uint32)
    rows = np.repeat(np.arange(n_docs, dtype=np.uint32), np.diff(indptr))
    order = np.argsort(indices, kind="stable")  # documents stay ascending inside each term
    df = np.bincount(indices, minlength=len(names))
    present = np.flatnonzero(df)
    df_p = df[present].astype(np.uint32)
    heads = np.concatenate([[0], np.cumsum(df_p.astype(np.int64) + 1)[:-1]])
    body = np.ones(len(indices) + len(present), bool)
    body[heads] = False
    out = np.empty(len(body), np.uint32)
    out[heads] = df_p
    out[body] = rows[order]
    with open(path / "inv.docs", "wb") as f:
        np.array([1, n_docs], np.uint32).tofile(f)
        out.tofile(f)
    out[body] = freqs[order]
    out.tofile(path / "inv.freqs")
    del out, order, body
    lens = np.bincount(rows, weights=freqs, minlength=n_docs).astype(np.int64)
    (path / "inv.sizes").write_bytes(np.concatenate([[n_docs], lens]).astype(np.uint32).tobytes())
    (path / "fwd.documents").write_text("".join(f"{i}\n" for i in range(n_docs)))
    (path / "fwd.terms").write_text("".join(f"{t}\n" for t in names[present]))
    _pisathon.build_binlex(str(path / "fwd.documents"), str(path / "fwd.doclex"))
    _pisathon.build_binlex(str(path / "fwd.terms"), str(path / "fwd.termlex"))
    meta = {"type": "sparse_index", "format": "pisa", "package_hint": "pyterrier-pisa"}
    (path / "pt_meta.json").write_text(json.dumps({**meta, "stemmer": "none"}))


def pisa_prepare(path: Path, scorer: str, log: Path):
    """Build PISA's block-max data and compressed index; returns the retrieval context (what
    ``PisaRetrieve.reset_retrieval_context`` does)."""
    from pyterrier_pisa import _pisathon

    ctxt = _pisathon.RetrievalContext()
    kw = {"bm25_k1": K1, "bm25_b": B} if scorer == "bm25" else {}
    with quiet(log):
        _pisathon.prepare_index(
            ctxt, str(path), PISA_ENCODING, scorer, "", quantize=0, stop_fname="", **kw
        )
    return ctxt


def pisa_retrieve(ctxt, algorithm: str, inp: list, k: int, threads: int):
    """``_pisathon.retrieve`` as ``PisaRetrieve.transform`` calls it (arrays allocated per call)."""
    from pyterrier_pisa import _pisathon

    n = len(inp) * k
    qidx = np.empty(n, np.int32)
    docnos = np.empty(n, object)
    ranks = np.empty(n, np.int32)
    scores = np.empty(n, np.float32)
    size = _pisathon.retrieve(
        ctxt,
        algorithm,
        inp,
        k=k,
        threads=threads,
        query_weighted=1,
        pretokenised=True,
        result_qidxs=qidx,
        result_docnos=docnos,
        result_ranks=ranks,
        result_scores=scores,
    )
    return size, qidx, docnos, ranks, scores


def _parse_pisa(out, k, n_q):
    size, qidx, docnos, ranks, scores = out
    ids = np.full((n_q, k), -1, np.int64)
    sc = np.full((n_q, k), -np.inf, np.float32)
    ids[qidx[:size], ranks[:size]] = np.fromiter((int(d) for d in docnos[:size]), np.int64, size)
    sc[qidx[:size], ranks[:size]] = scores[:size]
    return ids, sc


def pisa_query_dicts(c: SparseCorpus, names: np.ndarray, q_int: np.ndarray) -> list:
    """``(query index, {term: weight})`` as ``PisaRetrieve.transform`` builds them; PISA repeats a
    term ``int(weight)`` times and, with ``query_weighted``, weights it by that count."""
    inp = []
    for i in range(c.n_queries):
        a, b = c.q_indptr[i], c.q_indptr[i + 1]
        terms = names[c.q_indices[a:b]].tolist()
        inp.append((i, {t: float(x) for t, x in zip(terms, q_int[a:b].tolist()) if x >= 1}))
    return inp


def lucene_bm25_impacts(c: SparseCorpus) -> np.ndarray:
    """Per posting, granite-index's (Lucene's) BM25 term score ``idf · tf / (tf + norm)``."""
    n = c.n_docs
    tf = c.values.astype(np.float64)
    rows = np.repeat(np.arange(n), np.diff(c.indptr))
    dl = np.bincount(rows, weights=tf, minlength=n)
    df = np.bincount(c.indices, minlength=c.n_terms).astype(np.float64)
    idf = np.log1p((n - df + 0.5) / (df + 0.5))
    return idf[c.indices] * tf / (tf + K1 * (1 - B + B * dl[rows] / dl.mean()))


def build_pisa(c: SparseCorpus, tmp: Path, names: np.ndarray, variant: str = "pisa") -> Engine:
    """PISA over the corpus. ``variant``: ``"pisa"`` (its ``bm25`` scorer over tf, or
    ``quantized`` over impacts scaled by 100) or ``"pisa-q8"`` (bm25 kind: the ``quantized``
    scorer over granite-index's Lucene BM25 term scores linearly quantised to 8 bits, as PISA's
    own impact precomputation does, so the ranking function is the same up to quantisation)."""
    path, log = tmp / variant, tmp / f"{variant}.log"
    t0 = time.perf_counter()
    if variant == "pisa-q8":
        scorer = "quantized"
        imp = lucene_bm25_impacts(c)
        scale = 255.0 / float(imp.max())
        d_val = np.maximum(1, np.rint(imp * scale)).astype(np.int64)
        d_ptr, d_idx = c.indptr, c.indices
        q_int = np.floor(c.q_values).astype(np.int64)  # query term counts
    elif c.kind == "bm25":
        scorer, scale = "bm25", 1.0
        d_ptr, d_idx, d_val = c.indptr, c.indices, c.values.astype(np.int64)
        q_int = np.floor(c.q_values).astype(np.int64)
    else:
        scorer, scale = "quantized", PISA_SCALE
        d_ptr, d_idx, d_val = drop_zeros(c.indptr, c.indices, quantise(c.values, scale))
        q_int = quantise(c.q_values, scale)
    write_pisa_collection(path, d_ptr, d_idx, d_val, names)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ctxt = pisa_prepare(path, scorer, log)
    prepare_s = time.perf_counter() - t0
    size = dir_bytes(*path.glob(f"{scorer}*"), path / "fwd.termlex", path / "fwd.doclex")
    inp = pisa_query_dicts(c, names, q_int)
    n_q = c.n_queries
    self_exact = None
    if scorer == "quantized":
        self_exact = exact_int_index(d_ptr, d_idx, d_val, (c.q_indptr, c.q_indices, q_int))
    settings = []
    for alg in PISA_ALGORITHMS:

        def call(k, threads, alg=alg):
            return pisa_retrieve(ctxt, alg, inp, k, threads)

        def parse(out, k):
            return _parse_pisa(out, k, n_q)

        try:
            call(10, 1)
        except Exception as e:  # noqa: BLE001 - an algorithm PISA refuses is skipped, not fatal
            print(f"  {variant} {alg}: skipped ({e!r})", flush=True)
            continue
        s = Setting(variant, alg, call, parse, True, params={"scorer": scorer})
        if alg == "ranked_or_taat":  # the wrapper shares one accumulator between its threads
            s.max_threads = 1
        if self_exact is None:
            s.self_ref = "ranked_or"
        else:
            s.self_exact = self_exact
        settings.append(s)
    info = {
        "scorer": scorer,
        "scale": round(scale, 6),
        "encoding": PISA_ENCODING,
        "write_collection_s": round(write_s, 3),
        "pisa_prepare_s": round(prepare_s, 3),
        "collection_bytes": dir_bytes(*path.glob("inv.*")),
    }
    return Engine(variant, write_s + prepare_s, size, settings, info)


def exact_int_index(d_ptr, d_idx, d_val, queries):
    """An exact dot-product index over integer weights, with its integer queries (for
    ``recall_self`` of the quantised engines)."""
    idx = SparseIndex("impact")
    idx.add(np.arange(len(d_ptr) - 1), d_ptr, d_idx, d_val.astype(np.float32))
    q_ptr, q_idx, q_int = queries
    return idx, (q_ptr, q_idx, np.asarray(q_int, np.float32))


def build_seismic(
    c: SparseCorpus, tmp: Path, names: np.ndarray, threads: int, n_postings: int | None = None
) -> Engine:
    """Seismic over the corpus; ``n_postings`` (each term's list cut to that many postings by
    static pruning): default the authors' MS MARCO setting (3,500 at 8.8M) scaled to the corpus,
    at least 400."""
    import seismic

    st = seismic.get_seismic_string()
    snames = names.astype(st)
    if n_postings is None:
        n_postings = max(400, round(3500 * c.n_docs / 8_841_823))
    cfg = {
        "n_postings": n_postings,
        "centroid_fraction": 0.1,
        "summary_energy": 0.4,
        "num_threads": threads,
    }

    def docs() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        for i in range(c.n_docs):
            a, b = c.indptr[i], c.indptr[i + 1]
            yield str(i), snames[c.indices[a:b]], c.values[a:b]

    t0 = time.perf_counter()
    for _ in docs():
        pass
    input_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = seismic.SeismicDataset()
    for doc_id, comps, vals in docs():
        ds.add_document(doc_id, comps, vals)
    with quiet(tmp / "seismic.log"):
        index = seismic.SeismicIndex.build_from_dataset(ds, **cfg)
    build_s = time.perf_counter() - t0
    del ds
    with quiet(tmp / "seismic.log"):
        index.save(str(tmp / "seismic"))
    size = dir_bytes(*tmp.glob("seismic*")) - dir_bytes(tmp / "seismic.log")
    qids = np.array([str(i) for i in range(c.n_queries)], dtype=st)
    qc = [snames[c.q_indices[a:b]] for a, b in itertools.pairwise(c.q_indptr)]
    qv = [c.q_values[a:b] for a, b in itertools.pairwise(c.q_indptr)]
    n_q = c.n_queries

    def parse(out, k):
        ids = np.full((n_q, k), -1, np.int64)
        sc = np.full((n_q, k), -np.inf, np.float32)
        for hits in out:  # batch_search returns the queries in no particular order
            for r, (qid, score, doc) in enumerate(hits):
                ids[int(qid), r] = int(doc)
                sc[int(qid), r] = score
        return ids, sc

    settings = []
    for qcut, hf in SEISMIC_GRID:

        def call(k, threads, qcut=qcut, hf=hf):
            return index.batch_search(qids, qc, qv, k, qcut, hf, num_threads=threads)

        label = f"n_postings={n_postings}, query_cut={qcut}, heap_factor={hf}"
        params = {"n_postings": n_postings, "query_cut": qcut, "heap_factor": hf}
        settings.append(Setting("seismic", label, call, parse, False, params=params))
    info = {**cfg, "input_s": round(input_s, 3), "build_threads": threads}
    return Engine("seismic", build_s, size, settings, info)


def bmp_query_weights(q_indptr: np.ndarray, q_int: np.ndarray) -> np.ndarray:
    """The query weights BMP 0.2.8 scores with: ``ceil(q * (32 / max q))`` per query, in float32
    (found by probing ``Searcher.search``; it rescales whatever integers it is given)."""
    q = np.asarray(q_int, np.float32)
    n = np.diff(q_indptr)
    top = np.zeros(len(n), np.float32)
    top[n > 0] = np.maximum.reduceat(q, q_indptr[:-1][n > 0])
    ratio = np.float32(32) / np.maximum(top, np.float32(1))
    return np.where(q > 0, np.ceil(q * np.repeat(ratio, n)), 0).astype(np.int64)


def build_bmp(c: SparseCorpus, tmp: Path, names: np.ndarray, exact: SparseIndex) -> Engine:
    """BMP over the impact corpus. Its ``Searcher`` rescales query weights to at most 32
    (:func:`bmp_query_weights`) and adds scores in 16 bits (a document's score wraps around at
    65,536), and its documents hold 8-bit weights: the document scale is 100 (its pyterrier
    wrapper's) if the largest weight fits in 255, else ``255 / max weight``, and lower still if
    some query's best score (by ``exact``, the float weights) would pass 65,535."""
    import bmp

    max_w = float(c.values.max()) if len(c.values) else 1.0
    q_scale = 100.0 if max_w * 100 <= 255 else 255.0 / max_w
    q_int = quantise(c.q_values, q_scale)
    q_bmp = bmp_query_weights(c.q_indptr, q_int)
    top1 = exact.search((c.q_indptr, c.q_indices, q_bmp.astype(np.float32)), k=1).scores[:, 0]
    best = float(np.max(top1[np.isfinite(top1)], initial=1.0))
    scale = min(q_scale, 65535.0 / best * (1 - 1e-6))
    d_ptr, d_idx, d_val = drop_zeros(c.indptr, c.indices, quantise(c.values, scale, 255))

    def docs() -> Iterator[tuple[str, dict[str, int]]]:
        for i in range(c.n_docs):
            a, b = d_ptr[i], d_ptr[i + 1]
            yield str(i), dict(zip(names[d_idx[a:b]].tolist(), d_val[a:b].tolist()))

    t0 = time.perf_counter()
    for _ in docs():
        pass
    input_s = time.perf_counter() - t0
    path = tmp / "index.bmp"
    t0 = time.perf_counter()
    indexer = bmp.Indexer(str(path), bsize=32, compress_range=False)
    for docno, vec in docs():
        indexer.add_document(docno, vec)
    with quiet(tmp / "bmp.log"):
        indexer.finish()
    build_s = time.perf_counter() - t0
    searcher = bmp.Searcher(str(path))
    queries = []
    for a, b in itertools.pairwise(c.q_indptr):
        w = q_int[a:b]
        queries.append({t: int(x) for t, x in zip(names[c.q_indices[a:b]].tolist(), w) if x > 0})
    n_q = c.n_queries

    def parse(out, k):
        ids = np.full((n_q, k), -1, np.int64)
        sc = np.full((n_q, k), -np.inf, np.float32)
        for i, (docnos, scores) in enumerate(out):
            ids[i, : len(docnos)] = [int(d) for d in docnos]
            sc[i, : len(scores)] = scores
        return ids, sc

    ref = exact_int_index(d_ptr, d_idx, d_val, (c.q_indptr, c.q_indices, q_bmp))
    settings = []
    for alpha, beta in BMP_GRID:

        def call(k, threads, alpha=alpha, beta=beta):
            return [searcher.search(q, k=k, alpha=alpha, beta=beta) for q in queries]

        exact = alpha == 1.0 and beta == 1.0
        s = Setting(
            "bmp",
            f"alpha={alpha}, beta={beta}",
            call,
            parse,
            exact,
            max_threads=1,
            params={"alpha": alpha, "beta": beta},
            self_exact=ref,
        )
        settings.append(s)
    info = {
        "scale": round(scale, 4),
        "query_scale": round(q_scale, 4),
        "scale_limited_by_16_bit_scores": scale < q_scale,
        "bsize": 32,
        "input_s": round(input_s, 3),
    }
    return Engine("bmp", build_s, dir_bytes(path), settings, info)


# ------------------------------------------------------------------ recall
def recall_at_k(ids: np.ndarray, exact_scores: np.ndarray, kth: np.ndarray, n_pos: np.ndarray):
    """Tie-aware recall: a returned document counts when its exact score reaches the exact k-th.

    Parameters
    ----------
    ids : (n_q, k) int64, -1 padding
    exact_scores : (n_q, k) float32
        Exact scores of ``ids`` (NaN for padding).
    kth : (n_q,) float32
        Exact k-th best score (the last positive one when fewer documents match).
    n_pos : (n_q,) int
        Documents with a positive exact score, capped at k.
    """
    tol = 1e-5 * np.abs(kth)[:, None] + 1e-6
    ok = (ids >= 0) & ~np.isnan(exact_scores) & (exact_scores >= kth[:, None] - tol)
    ok &= exact_scores > 0
    hits = np.array([len(set(row[m].tolist())) for row, m in zip(ids, ok)])
    mask = n_pos > 0
    return float(np.mean(hits[mask] / n_pos[mask])) if mask.any() else 1.0


@dataclass
class Reference:
    """Exact top-k of one index over one query batch, for tie-aware recall."""

    index: SparseIndex
    queries: Any
    search_kw: dict[str, Any] = field(default_factory=dict)
    kth: dict[int, np.ndarray] = field(default_factory=dict)
    n_pos: dict[int, np.ndarray] = field(default_factory=dict)

    def ensure(self, k: int) -> None:
        if k in self.kth:
            return
        res = self.index.search(self.queries, k=k, **self.search_kw)
        pos = np.isfinite(res.scores) & (res.scores > 0)
        self.n_pos[k] = pos.sum(1)
        last = np.maximum(self.n_pos[k] - 1, 0)
        self.kth[k] = np.where(
            self.n_pos[k] > 0, res.scores[np.arange(len(last)), last], np.inf
        ).astype(np.float32)

    def recall(self, ids: np.ndarray, k: int) -> float:
        self.ensure(k)
        exact = self.index.score(self.queries, np.where(ids >= 0, ids, -1))
        return recall_at_k(ids, exact, self.kth[k], self.n_pos[k])


def recall_vs_scores(ids, scores, ref_scores) -> float:
    """Tie-aware recall when the engine's own scores are exact (PISA's algorithms, all safe):
    a result counts when its reported score reaches the reference's k-th score."""
    pos = np.isfinite(ref_scores) & (ref_scores > 0)
    n_pos = pos.sum(1)
    last = np.maximum(n_pos - 1, 0)
    kth = np.where(n_pos > 0, ref_scores[np.arange(len(last)), last], np.inf).astype(np.float32)
    s = np.where(np.isfinite(scores), scores, np.nan).astype(np.float32)
    return recall_at_k(ids, s, kth, n_pos)


# ------------------------------------------------------------------ checks
def check_pisa_writer(c: SparseCorpus, names: np.ndarray, tmp: Path, n: int = 2000) -> dict:
    """The numpy writer against ``PisaIndex(...).toks_indexer(scale=1.0)`` on the first ``n``
    documents (tf dicts for bm25, the quantised weights for impact): the same bytes?"""
    import pyterrier_pisa

    n = min(n, c.n_docs)
    m = int(c.indptr[n])
    ptr, idx = c.indptr[: n + 1], c.indices[:m]
    val = c.values[:m].astype(np.int64) if c.kind == "bm25" else quantise(c.values[:m], PISA_SCALE)
    ptr, idx, val = drop_zeros(ptr, idx, val)
    ours, theirs = tmp / "check-ours", tmp / "check-toks"
    write_pisa_collection(ours, ptr, idx, val, names)
    docs = (
        {"docno": str(i), "toks": dict(zip(names[idx[a:b]].tolist(), val[a:b].tolist()))}
        for i, (a, b) in enumerate(itertools.pairwise(ptr))
    )
    index = pyterrier_pisa.PisaIndex(str(theirs), stemmer="none", stops="none")
    with quiet(tmp / "check.log"):
        index.toks_indexer(scale=1.0).index(docs)
    files = ["inv.docs", "inv.freqs", "inv.sizes", "fwd.terms", "fwd.documents"]
    same = {f: (ours / f).read_bytes() == (theirs / f).read_bytes() for f in files}
    shutil.rmtree(ours)
    shutil.rmtree(theirs)
    return {"docs": n, "identical_files": same, "all_identical": all(same.values())}


def check_pisa_bm25(c: SparseCorpus, ids: np.ndarray, scores: np.ndarray, n_q: int = 100) -> dict:
    """PISA's BM25 (``ranked_or``, top-k ``ids`` / ``scores``) against a brute-force BM25 with
    Robertson's idf over the same tf and document lengths: is it the same function, up to idf?"""
    import scipy.sparse as sp

    n = c.n_docs
    tf = c.values.astype(np.float32)
    rows = np.repeat(np.arange(n), np.diff(c.indptr))
    dl = np.bincount(rows, weights=tf, minlength=n)
    norm = (K1 * (1 - B + B * dl / dl.mean())).astype(np.float32)
    docs = sp.csr_matrix((tf / (tf + norm[rows]), c.indices, c.indptr), shape=(n, c.n_terms))
    del rows
    df = np.bincount(c.indices, minlength=c.n_terms).astype(np.float64)
    idf = np.maximum(1e-6, np.log((n - df + 0.5) / (df + 0.5))) * (1 + K1)
    n_q = min(n_q, c.n_queries)
    k = ids.shape[1]
    got = np.full((n_q, k), np.nan, np.float32)
    kth = np.zeros(n_q, np.float32)
    n_pos = np.zeros(n_q, np.int64)
    for lo in range(0, n_q, 20):  # (20, n_docs) dense blocks
        hi = min(lo + 20, n_q)
        a, b = c.q_indptr[lo], c.q_indptr[hi]
        qv = np.floor(c.q_values[a:b]).astype(np.float64) * idf[c.q_indices[a:b]]
        q = sp.csr_matrix((qv, c.q_indices[a:b], c.q_indptr[lo : hi + 1] - a), (hi - lo, c.n_terms))
        full = np.asarray((docs @ q.T).T.todense())
        part = ids[lo:hi]
        got[lo:hi] = np.where(part >= 0, np.take_along_axis(full, np.maximum(part, 0), 1), np.nan)
        top = -np.sort(-np.partition(full, n - min(k, n), axis=1)[:, n - min(k, n) :], axis=1)
        n_pos[lo:hi] = (top > 0).sum(1)
        kth[lo:hi] = top[np.arange(hi - lo), np.maximum(n_pos[lo:hi] - 1, 0)]
    found = ids[:n_q] >= 0
    rel = np.abs(got[found] - scores[:n_q][found]) / np.maximum(np.abs(got[found]), 1e-9)
    return {
        "queries": n_q,
        "idf": "max(1e-6, ln((N - df + 0.5) / (df + 0.5))) * (1 + k1)",
        "max_rel_score_diff": float(rel.max()) if rel.size else 0.0,
        "recall_vs_bruteforce": round(recall_at_k(ids[:n_q], got, kth, n_pos), 4),
    }


# ------------------------------------------------------------------ the run
def time_cells(
    settings: list[Setting],
    ks: list[int],
    threads_list: list[int],
    repeats: int,
    n_q: int,
    ref: Reference,
) -> dict[tuple[str, str], list[dict]]:
    """Time every setting at every (k, threads); settings take turns within each pass."""
    out: dict[tuple[str, str], list[dict]] = {(s.engine, s.label): [] for s in settings}
    for k in ks:
        for threads in threads_list:
            live = [s for s in settings if s.max_threads is None or threads <= s.max_threads]
            outputs = {}
            for s in list(live):  # warm-up pass, kept for recall
                try:
                    outputs[s.label, s.engine] = s.parse(s.call(k, threads), k)
                except BaseException as e:  # a Rust panic (pyo3) is a BaseException
                    if isinstance(e, KeyboardInterrupt):
                        raise
                    print(f"  {s.engine}/{s.label} k={k} threads={threads}: {e!r}", flush=True)
                    out[s.engine, s.label].append({"k": k, "threads": threads, "error": repr(e)})
                    live.remove(s)
            times: dict[tuple[str, str], list[float]] = {(s.engine, s.label): [] for s in live}
            for _ in range(repeats):
                for s in live:
                    t0 = time.perf_counter()
                    s.call(k, threads)
                    times[s.engine, s.label].append(time.perf_counter() - t0)
            own = {}
            for s in live:
                ids, scores = outputs[s.label, s.engine]
                med = statistics.median(times[s.engine, s.label])
                cell = {
                    "k": k,
                    "threads": threads,
                    "qps": round(n_q / med, 1),
                    "ms_per_query": round(1000 * med / n_q, 4),
                    "seconds": [round(x, 4) for x in times[s.engine, s.label]],
                    "recall": round(ref.recall(ids, k), 4),
                }
                if s.self_exact is not None:
                    idx, q = s.self_exact
                    own_ref = own.setdefault(id(idx), Reference(idx, q))
                    cell["recall_self"] = round(own_ref.recall(ids, k), 4)
                elif s.self_ref is not None:
                    ref_ids, ref_scores = outputs[s.self_ref, s.engine]
                    cell["recall_self"] = round(recall_vs_scores(ids, scores, ref_scores), 4)
                out[s.engine, s.label].append(cell)
            line = ", ".join(
                f"{s.engine}/{s.label} {out[s.engine, s.label][-1]['ms_per_query']:.3f} ms "
                f"r={out[s.engine, s.label][-1]['recall']:.3f}"
                for s in live
            )
            print(f"  k={k} threads={threads}: {line}", flush=True)
    return out


def run_one(c: SparseCorpus, args, tmp: Path) -> dict:
    print(
        f"[{c.name}/{c.kind}] {c.n_docs:,} docs, {len(c.indices):,} postings, "
        f"{c.n_queries} queries (sparse_corpus)",
        flush=True,
    )
    names = term_names(c.n_terms)
    engines: list[Engine] = []
    checks: dict[str, Any] = {}
    granite, idx = build_granite(c, tmp)
    if "granite" in args.engines:
        engines.append(granite)
    print(f"  granite-index built in {granite.build_s:.2f}s", flush=True)
    build_threads = os.cpu_count() or 1
    builders: list[tuple[str, Callable[[], Engine]]] = []
    if "bm25s" in args.engines and c.kind == "bm25":
        if c.n_docs <= BM25S_MAX_DOCS:
            builders.append(("bm25s", lambda: build_bm25s(c, tmp)))
        else:
            print(f"  bm25s: skipped above {BM25S_MAX_DOCS:,} documents (memory)", flush=True)
    if "pisa" in args.engines:
        builders.append(("pisa", lambda: build_pisa(c, tmp, names)))
    if "pisa-q8" in args.engines and c.kind == "bm25":
        builders.append(("pisa-q8", lambda: build_pisa(c, tmp, names, "pisa-q8")))
    if "seismic" in args.engines and c.kind == "impact":
        for n_post in args.seismic_postings or [None]:
            builders.append(
                ("seismic", lambda n=n_post: build_seismic(c, tmp, names, build_threads, n))
            )
    if "bmp" in args.engines and c.kind == "impact":
        builders.append(("bmp", lambda: build_bmp(c, tmp, names, idx)))
    for name, build in builders:
        try:
            e = build()
        except Exception as ex:  # noqa: BLE001 - report and go on with the other engines
            print(f"  {name}: build failed ({ex!r})", flush=True)
            checks[f"{name}_error"] = repr(ex)
            continue
        print(f"  {e.name} built in {e.build_s:.2f}s, {e.bytes_disk / 2**20:.1f} MiB", flush=True)
        engines.append(e)
    if "pisa" in args.engines:
        checks["pisa_writer"] = check_pisa_writer(c, names, tmp)
        print("  pisa writer vs toks_indexer:", checks["pisa_writer"], flush=True)
    exact_kw = granite_variants(idx, c.kind)[0][1]  # exhaustive where there is a choice
    ref = Reference(idx, (c.q_indptr, c.q_indices, c.q_values), exact_kw)
    settings = [s for e in engines for s in e.settings]
    cells = time_cells(settings, args.ks, args.threads, args.repeats, c.n_queries, ref)
    pisa = next((e for e in engines if e.name == "pisa"), None)
    if pisa is not None and c.kind == "bm25":
        ror = next((s for s in pisa.settings if s.label == "ranked_or"), None)
        if ror is not None:
            ids, scores = ror.parse(ror.call(10, 1), 10)
            checks["pisa_bm25"] = check_pisa_bm25(c, ids, scores)
            g = idx.search((c.q_indptr, c.q_indices, c.q_values), k=10, **exact_kw)
            same = np.mean([set(a[a >= 0]) == set(b[b >= 0]) for a, b in zip(ids, g.ids)])
            checks["pisa_bm25"]["same_top10_set_as_granite"] = round(float(same), 4)
            print("  pisa bm25 check:", checks["pisa_bm25"], flush=True)
    result = {
        "corpus": c.name,
        "kind": c.kind,
        "corpus_source": "sparse_corpus",
        "n_docs": c.n_docs,
        "n_postings": len(c.indices),
        "n_terms": c.n_terms,
        "n_queries": c.n_queries,
        "mean_query_terms": round(len(c.q_indices) / max(c.n_queries, 1), 2),
        "mean_postings_per_query": round(
            float(np.bincount(c.indices, minlength=c.n_terms)[c.q_indices].sum())
            / max(c.n_queries, 1),
            1,
        ),
        "engines": [],
        "checks": checks,
    }
    for e in engines:
        result["engines"].append(
            {
                "engine": e.name,
                "build_s": round(e.build_s, 3),
                "bytes_disk": e.bytes_disk,
                **e.info,
                "settings": [
                    {
                        "setting": s.label,
                        "exact": s.exact,
                        "params": s.params,
                        "cells": cells[s.engine, s.label],
                    }
                    for s in e.settings
                ],
            }
        )
    return result


# ------------------------------------------------------------------ output
def _cell(setting: dict, k: int, threads: int) -> dict | None:
    cells = (c for c in setting["cells"] if "error" not in c)
    return next((c for c in cells if c["k"] == k and c["threads"] == threads), None)


def with_best(run: dict) -> list[tuple[dict, dict]]:
    """(engine, setting) rows of one run (the engine's dict: one name may have several, e.g.
    Seismic indexes of several sizes); after each PISA variant's algorithms, a ``best`` row: the
    fastest algorithm per cell."""
    rows = []
    for e in run["engines"]:
        rows += [(e, s) for s in e["settings"]]
        if not e["engine"].startswith("pisa") or not e["settings"]:
            continue
        cells = []
        keys = {
            (c["k"], c["threads"]) for s in e["settings"] for c in s["cells"] if "error" not in c
        }
        for k, t in sorted(keys):
            best = min(
                ((s["setting"], _cell(s, k, t)) for s in e["settings"] if _cell(s, k, t)),
                key=lambda x: x[1]["ms_per_query"],
            )
            cells.append({**best[1], "algorithm": best[0]})
        rows.append((e, {"setting": "best", "exact": True, "cells": cells}))
    return rows


def table(results: dict) -> str:
    """The README table, rebuilt from ``sparse_frontier.json``."""
    cols = sorted(
        {
            (c["k"], c["threads"])
            for run in results["runs"]
            for e in run["engines"]
            for s in e["settings"]
            for c in s["cells"]
        }
    )
    headers = ["corpus / kind", "engine", "setting", "build s", "size MiB", "recall@10"]
    headers += ["recall@10 vs own exact"]
    headers += [f"ms/q k={k} {t}t" for k, t in cols]
    rows = []
    for run in results["runs"]:
        for e, s in with_best(run):
            engine = e["engine"]
            c10 = _cell(s, 10, 1)
            setting = s["setting"]
            if setting == "best":
                algs = sorted({c["algorithm"] for c in s["cells"]})
                setting = "best of algorithms (" + ", ".join(algs) + ")"
            row = [
                f"{run['corpus']} / {run['kind']} ({run['n_docs']:,})",
                engine,
                setting,
                f"{e['build_s']:.1f}",
                f"{e['bytes_disk'] / 2**20:.0f}",
                f"{c10['recall']:.3f}" if c10 else "",
                f"{c10['recall_self']:.3f}" if c10 and "recall_self" in c10 else "",
            ]
            for k, t in cols:
                c = _cell(s, k, t)
                row.append(f"{c['ms_per_query']:.3f}" if c else "n/a")
            rows.append(row)
    return markdown_table(headers, rows)


def _fastest(run: dict, engine: str, k: int, *, exact: bool | None = None, recall: float = 0.0):
    """The fastest 1-thread cell at ``k`` of an engine's settings (exact ones only, approximate
    ones only, or any) whose recall@k reaches ``recall``: (ms/query, recall, setting) or None."""
    best = None
    for e in run["engines"]:
        if e["engine"] != engine:
            continue
        for st in e["settings"]:
            if exact is not None and bool(st.get("exact")) != exact:
                continue
            c = _cell(st, k, 1)
            if c is None or c.get("recall", 0.0) < recall:
                continue
            if best is None or c["ms_per_query"] < best[0]:
                best = (c["ms_per_query"], c.get("recall", 0.0), st["setting"])
    return best


def goals_table(results: dict, k: int = 10) -> str:
    """One row per corpus: the fastest 1-thread ms/query at ``k`` of each engine, and the ratios
    the goals are stated in (the peer's time over granite-index's: above 1, granite-index is
    faster). Learned-sparse rows compare approximate settings at equal recall floors."""

    def fmt(x):
        return "–" if x is None else f"{x[0]:.3f} ({x[1]:.2f})"

    def ratio(peer, ours):
        return "–" if peer is None or ours is None else f"{peer[0] / ours[0]:.2f}x"

    rows = []
    for run in results["runs"]:
        name = f"{run['corpus']} / {run['kind']} ({run['n_docs']:,})"
        ours = _fastest(run, "granite-index", k, exact=True)
        if run["kind"] == "bm25":
            pisa = _fastest(run, "pisa", k, exact=True)
            q8 = _fastest(run, "pisa-q8", k, exact=True)
            bm25s = _fastest(run, "bm25s", k, exact=True)
            rows.append([name, fmt(ours), fmt(bm25s), fmt(pisa), fmt(q8), ratio(pisa, ours),
                         ratio(q8, ours), "", "", "", "", ""])  # fmt: skip
            continue
        bmp = _fastest(run, "bmp", k, exact=True)
        cells = []
        for floor in (0.95, 0.90):
            g = _fastest(run, "granite-index", k, exact=False, recall=floor)
            g = ours if ours is not None and (g is None or ours[0] < g[0]) else g
            sm = _fastest(run, "seismic", k, recall=floor)
            cells += [fmt(g), fmt(sm), ratio(sm, g)]
        rows.append([name, fmt(ours), "", fmt(_fastest(run, "pisa", k, exact=True)), "", "",
                     "", fmt(bmp), ratio(bmp, ours), *cells[:2], cells[2] + " / " + cells[5]])  # fmt: skip
    headers = [
        "corpus / kind (docs)",
        "granite-index exact",
        "bm25s",
        "PISA best",
        "PISA q8 best",
        "PISA / granite",
        "PISA q8 / granite",
        "BMP exact",
        "BMP / granite",
        "granite @ recall >= 0.95",
        "Seismic @ recall >= 0.95",
        "Seismic / granite at 0.95 / 0.90",
    ]
    return markdown_table(headers, rows)


def plot(results: dict, path: Path) -> None:
    """One panel per run (corpus, kind, size): ms/query (log) against recall@10, k = 10, 1 thread.
    Exact settings are points; an approximate engine's settings are joined in recall order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = results["runs"]
    if not runs:
        return
    cols = min(3, len(runs))
    rows = -(-len(runs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.5 * cols, 5 * rows), squeeze=False)
    markers = {
        "granite-index": "o",
        "bm25s": "s",
        "pisa": "^",
        "pisa-q8": "<",
        "seismic": "D",
        "bmp": "v",
    }
    for ax, run in zip(axes.ravel(), runs):
        for e in run["engines"]:
            name = e["engine"]
            marker = markers.get(name, "o")
            curve = []
            for s in e["settings"]:
                c = _cell(s, 10, 1)
                if c is None:
                    continue
                if s["exact"]:
                    ax.scatter(
                        c["recall"],
                        c["ms_per_query"],
                        marker=marker,
                        s=30,
                        label=f"{name} {s['setting']}",
                    )
                else:
                    curve.append((c["recall"], c["ms_per_query"]))
            if curve:
                curve.sort()
                n_post = e.get("n_postings")
                same = sum(x["engine"] == name for x in run["engines"]) > 1
                ax.plot(
                    [p[0] for p in curve],
                    [p[1] for p in curve],
                    marker=marker,
                    markersize=4,
                    label=f"{name}{f' n_postings={n_post}' if same and n_post else ''} "
                    "(approximate settings)",
                )
        ax.set_yscale("log")
        ax.set_xlabel("recall@10 vs granite-index exact (tie-aware)")
        ax.set_ylabel("ms / query (1 thread, k = 10)")
        ax.set_title(f"{run['corpus']} / {run['kind']}, {run['n_docs']:,} docs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    for ax in axes.ravel()[len(runs) :]:
        ax.set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def versions() -> dict[str, str]:
    out = {}
    for pkg in ["pyterrier-pisa", "pyseismic-lsr", "bmp", "bm25s", "numba", "numpy"]:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", nargs="+", default=["realistic", "iid", "real"])
    ap.add_argument("--kinds", nargs="+", default=["bm25", "impact"])
    ap.add_argument("--n-docs", type=int, default=1_000_000)
    ap.add_argument("--with-10m", action="store_true", help="also run at 10M documents")
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--ks", nargs="+", type=int, default=[10, 1000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", nargs="+", default=ENGINES, choices=ENGINES)
    ap.add_argument(
        "--seismic-postings",
        nargs="+",
        type=int,
        help="Seismic indexes to build, one per n_postings (default: one, MS MARCO's scaled)",
    )
    ap.add_argument("--small", action="store_true", help="a quick smoke run at ~20k documents")
    ap.add_argument("--out", default="sparse_frontier", help="results name (json and png)")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the runs already in the results file (those of other corpus / kind / size)",
    )
    args = ap.parse_args()
    if args.small:
        args.n_docs = 20_000
    sizes = [args.n_docs] + ([10_000_000] if args.with_10m else [])
    command = "python -m benchmarks.bench_sparse_frontier " + " ".join(sys.argv[1:])
    results: dict[str, Any] = {
        "machine": machine(),
        "command": command,
        "args": {
            "corpora": args.corpora,
            "kinds": args.kinds,
            "n_docs": sizes,
            "threads": args.threads,
            "ks": args.ks,
            "repeats": args.repeats,
            "engines": args.engines,
        },
        "versions": versions(),
        "bm25": {"k1": K1, "b": B},
        "granite_search_params": list(inspect.signature(SparseIndex.search).parameters)[1:],
        "runs": [],
    }
    kept: list[dict] = []
    if args.merge and (RESULTS / f"{args.out}.json").exists():
        kept = json.loads((RESULTS / f"{args.out}.json").read_text())["runs"]
    for n_docs in sizes:
        for name in args.corpora:
            for kind in args.kinds:
                try:
                    c = load(name, kind, n_docs)
                except (LookupError, ValueError) as e:
                    print(f"[{name}/{kind}] skipped: {e}", flush=True)
                    continue
                with tempfile.TemporaryDirectory(prefix="sparse-frontier-") as tmp:
                    run = run_one(c, args, Path(tmp))
                run.update(command=command, repeats=args.repeats, date=time.strftime("%Y-%m-%d"))
                key = (run["corpus"], run["kind"], run["n_docs"])
                old = [r for r in kept if (r["corpus"], r["kind"], r["n_docs"]) == key]
                if old:  # --merge: the earlier run's engines this run did not measure stay
                    have = {e["engine"] for e in run["engines"]}
                    carried = [e for e in old[0]["engines"] if e["engine"] not in have]
                    if carried:
                        run["engines"] += carried
                        run["carried_engines"] = {
                            "engines": sorted({e["engine"] for e in carried}),
                            "command": old[0].get("command"),
                            "date": old[0].get("date"),
                        }
                        for name, check in old[0].get("checks", {}).items():
                            run["checks"].setdefault(name, check)
                kept = [r for r in kept if (r["corpus"], r["kind"], r["n_docs"]) != key]
                results["runs"].append(run)
                del c
                write_results(args.out, {**results, "runs": kept + results["runs"]})
    results["runs"] = kept + results["runs"]
    out = write_results(args.out, results)
    plot(results, RESULTS / f"{args.out}.png")
    print(table(results))
    print(f"wrote {out} and {RESULTS / f'{args.out}.png'}")


if __name__ == "__main__":
    main()
