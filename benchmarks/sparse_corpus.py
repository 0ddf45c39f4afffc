"""Large sparse corpora for retrieval-engine benchmarks, made from the real BEIR corpora.

``load_corpus(name, n_docs, kind, seed)`` returns a :class:`SparseCorpus` (documents and queries as
CSR). Names:

- ``"real"``: the documents of SciFact, CISI, MED and CACM pooled (10,880 documents; ``n_docs`` is
  ignored); ``"scifact"``, ``"cisi"``, ``"med"``, ``"cacm"``: one of them alone.
- ``"iid"``: the adversarial case. BM25 kind: document lengths drawn from the real analysed
  lengths, tokens i.i.d. from the pooled real unigram distribution
  (:func:`benchmarks.bench_bm25.synthetic`). Impact kind: the number of terms per document drawn
  from the real SPLADE vectors', terms i.i.d. with probability proportional to their real document
  frequency (distinct within a document), weights i.i.d. from the real weights.
- ``"realistic"``: the generators below, calibrated on the real corpora.
- ``"realistic-diverse"``: the same generators set to make documents grown from the same real
  document less alike (a sensitivity check: see "Limits").

Both kinds share the 458 real test queries of the four datasets. BM25 kind: term ids are the
engine's English analyzer terms, exactly as ``benchmarks.bench_bm25.load_real`` builds them (its
vocabulary also holds XQuAD-R (en), whose documents are left out here); values are term
frequencies; queries are the analysed unique terms, weight 1. Impact kind: term ids are SPLADE-tiny
WordPiece ids (``n_terms`` = 30,522), values its weights. The documents' vectors are read from the
SPLADE legs of the collections that ``python -m benchmarks.bench_hybrid_quality`` builds under
``benchmarks/out/hybrid-<name>/`` (an error says so when they are missing); the queries are encoded
with the model those collections name (cached in ``benchmarks/out/sparse-corpus/``).

Why not i.i.d. tokens
    Real text is topical and bursty: a term occurs in fewer documents than its frequency predicts
    (a document that uses a word tends to use it again) and the terms of a query meet in the same
    documents more often than independence predicts. Both decide whether dynamic pruning
    (MaxScore, WAND, block-max) can skip: with i.i.d. tokens every frequent term's postings are
    longer and a query's best documents barely stand out, which flatters exhaustive scoring.

The BM25 generator
    A synthetic document grows from a *seed*, one real document: the seeds are successive random
    permutations of the 10,880 real documents (so at 10,880 documents every real one seeds one
    synthetic document, at 1M each seeds 91 or 92). It takes the seed's length (the real length
    distribution, and the real tie between length and subject). It mixes in ``n_mix`` of the seed's
    ``k_near`` nearest real documents (TF-IDF cosine): the seed's neighbourhood is its topic, found
    without choosing a number of topics. Then position by position:

    - with probability ``p_seed`` the position takes the seed's token at that position of a random
      shuffle of the seed, so the seed's tokens are drawn without replacement and its own repeats
      (burstiness) are kept; otherwise a uniform token of one of the mixed-in neighbours;
    - a seed's rare terms (real df <= ``rare_df``) always stay and a neighbour's are never taken:
      names and other rare words belong to their document, and the real df distribution (whose
      median term occurs in one document) survives the mixing;
    - a Pólya urn (Dirichlet-multinomial / Chinese restaurant process): position ``i`` repeats a
      uniform earlier token of the document with probability ``i / (i + alpha)``, more repetition
      in longer documents, as in real text.

    Compared with ``benchmarks/scale_data.py`` (a uniform topic document, each word i.i.d. from it
    with probability 0.6, else from the pooled unigram distribution, lengths capped at 96) this
    keeps the seed's own repeats and rare words, spreads the topic over real neighbours instead of
    the pooled background (background draws bring other subjects' words, which breaks the
    co-occurrence of frequent terms: calibration preferred no background at all), and uses the real
    uncapped lengths and the engine's analyzer. The calibrated urn is weak (``alpha`` = 3000: about
    2 % of a 150-token document's positions repeat, 14 % of a 1,000-token one's) because the
    seed's own repeats and the neighbours' tokens, drawn with replacement, already repeat at the
    real rate.

The impact generator
    A synthetic document takes a seed's SPLADE vector (seeds as above), keeps each of its terms
    with probability ``keep`` and adds each other term of one of the seed's ``k_near`` nearest real
    documents (cosine of the SPLADE vectors) with probability ``add``; weights are multiplied by
    log-normal noise (``sigma``, mean 1) and capped at the term's largest real weight, so the
    per-term maxima that MaxScore / WAND bound scores with stay the real ones. Which terms go
    together, the weights and the number of terms per document are SPLADE's own.

Calibration
    :data:`MODELS` were chosen by small grid searches minimising the summed |log ratio| of the
    statistics of ``benchmarks.corpus_stats`` between a 10,880-document sample and the pooled real
    corpora (equal size matters: several statistics depend on N). Results, real / realistic / iid
    side by side at 10,880 and 1M documents: ``benchmarks/results/corpus_stats.json``. At 10,880
    documents (real / realistic / iid):

    - BM25, matching: terms per document 69.7 / 71.9 / 101.8; number of terms 33,672 / 33,672 /
      28,341; df / N p90 0.0022 / 0.0024 / 0.0051, max 0.36 / 0.36 / 0.58; share of postings
      with tf > 1 0.269 / 0.269 / 0.065; pairs of the 200 most frequent terms with lift > 2
      0.073 / 0.073 / 0; oracle-MaxScore share of postings at k = 10 0.285 / 0.288 / 0.351;
      nearest-neighbour cosine p50 0.32 / 0.33 / 0.12.
    - BM25, slightly off: frequent terms are a little less bursty than real ones (df deficit
      1.46 vs 1.54, P(tf >= 2 | tf >= 1) 0.273 vs 0.284) and the spread of PMI among frequent
      terms is a little narrower (0.58 vs 0.62).
    - Impact, matching: terms per document, weight quantiles (capped noise: p99 2.08 vs 2.03),
      df / N quantiles; oracle-MaxScore share 0.381 / 0.392 / 0.599; query-term-pair
      containment 0.29 / 0.28 / 0.18.
    - Impact, off: fewer strongly associated frequent-term pairs (lift > 2: 0.047 vs 0.057,
      iid 0) and the most frequent term in 60 % of documents instead of 63 %.
    - Not discriminating (so not used for calibration): for BM25 the query-term-pair containment
      and median lift are about as high for iid tokens as for real text (0.19 / 1.42 vs 0.17 /
      1.38): i.i.d. tokens inflate every df and long documents hold many terms, which offsets
      the missing topicality; the mean PMI of frequent pairs is even higher for iid (0.50 vs
      0.33) for the same reason. Their spread (PMI std, lift > 2) and the oracle-MaxScore share
      do separate real text from iid tokens.

Limits
    - The vocabulary is the real one and does not grow with the corpus. Real text at millions of
      documents keeps adding rare terms (Heaps' law); here every term's df scales with N, so df / N
      quantiles stay those of a 10,880-document corpus and the rarest term of a 1M corpus occurs
      in ~90 documents.
    - The topics are the 10,880 real documents' neighbourhoods, so at 1M each seed has ~92
      descendants and documents have near duplicates: the median cosine to the nearest other
      document rises from the real 0.32 (bm25) / 0.36 (impact) to 0.83 / 0.90 at 1M, and higher
      at 10M. ``"realistic-diverse"`` lowers that to 0.59 / 0.65 at 1M at some cost to the
      equal-size match (bm25: tf > 1 share 0.32, the rarest terms spread over several documents;
      impact: lift > 2 share 0.028). The oracle-MaxScore share moves little between the two at
      1M (bm25 0.178 vs 0.186, impact 0.286 vs 0.314, against iid 0.275 and 0.555), but methods
      that cluster or reorder documents (block-max over reordered ids, Seismic's clustered
      blocks, BMP) may gain from near duplicates more than they would on a real corpus of that
      size: compare both corpora before trusting such a gain.
    - Impact documents are mixtures of real SPLADE vectors, not encodings of text: their vectors
      are as sparse as the model's, but a real large corpus would hold vectors of documents
      unlike any of the 10,880.

Cache
    Generated corpora are written as ``.npy`` under ``benchmarks/out/sparse-corpus/
    <name>-<kind>-<n>-<seed>/`` and memory-mapped (read-only) on the next call. Generation goes in
    batches of :data:`CHUNK` documents, each a pure function of (seed, batch number), written to
    disk as it is made, so 10M documents need no more memory than a batch (disk: about 8 bytes per
    posting, ~5.8 GB for 10M bm25 documents, ~17 GB for 10M impact ones). A folder whose
    ``meta.json`` names another :data:`FORMAT` or other model parameters is generated again.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numba import njit

from benchmarks.common import BEIR, CACHE

CORPORA = ("scifact", "cisi", "med", "cacm")
NAMES = ("realistic", "iid", "real", *CORPORA, "realistic-diverse")
KINDS = ("bm25", "impact")
OUT = CACHE / "sparse-corpus"
#: version of the generators and the cache layout; cached corpora of another version are rebuilt
FORMAT = 2
#: documents per generation batch
CHUNK = 100_000
SPLADE_VOCAB = 30522


@dataclass
class SparseCorpus:
    """Documents and queries of a sparse corpus, both as CSR.

    Attributes
    ----------
    name : str
        e.g. ``"realistic-1M"``, ``"iid-1M"``, ``"real"``, ``"scifact"``.
    kind : str
        ``"bm25"`` (values are term frequencies, float32 integers) or ``"impact"`` (SPLADE-like
        float32 weights > 0).
    indptr : numpy.ndarray of int64, shape (n_docs + 1,)
    indices : numpy.ndarray of uint32
        Term ids, unique and ascending within a row, all below ``n_terms``.
    values : numpy.ndarray of float32
        Term frequencies or weights, > 0.
    n_terms : int
        Vocabulary size.
    q_indptr : numpy.ndarray of int64, shape (n_queries + 1,)
    q_indices : numpy.ndarray of uint32
        Query term ids, unique and ascending within a row.
    q_values : numpy.ndarray of float32
        1.0 per query term (bm25) or the query's SPLADE weights (impact).
    """

    name: str
    kind: str
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    n_terms: int
    q_indptr: np.ndarray
    q_indices: np.ndarray
    q_values: np.ndarray

    @property
    def n_docs(self) -> int:
        return len(self.indptr) - 1

    @property
    def n_queries(self) -> int:
        return len(self.q_indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def __repr__(self) -> str:
        return (
            f"SparseCorpus({self.name!r}, {self.kind}, docs={self.n_docs:,}, nnz={self.nnz:,}, "
            f"terms={self.n_terms:,}, queries={self.n_queries})"
        )


@dataclass(frozen=True)
class TextModel:
    """Parameters of the BM25 (term frequency) generator; see the module docstring.

    Attributes
    ----------
    p_seed : float
        Share of positions that take the seed's (shuffled) token; the others take a token of one
        of the document's ``n_mix`` neighbours.
    alpha : float
        Pólya urn concentration: position ``i`` repeats an earlier token of the document with
        probability ``i / (i + alpha)``.
    k_near : int
        Neighbourhood size: the seed's nearest real documents by TF-IDF cosine.
    n_mix : int
        Neighbours (drawn from the ``k_near``) that one document mixes in.
    rare_df : int
        Terms of at most this document frequency in the real corpora are their documents' own:
        a seed's rare tokens are always kept, a neighbour's are never taken.
    """

    p_seed: float = 0.7
    alpha: float = 3000.0
    k_near: int = 30
    n_mix: int = 2
    rare_df: int = 5


@dataclass(frozen=True)
class ImpactModel:
    """Parameters of the impact (SPLADE) generator; see the module docstring.

    Attributes
    ----------
    keep : float
        Probability that each term of the seed vector is kept.
    add : float
        Probability that each term of the chosen neighbour (absent from the seed) is added.
    sigma : float
        Standard deviation of the log-normal weight noise.
    k_near : int
        Neighbourhood size (nearest real documents by SPLADE cosine).
    """

    keep: float = 0.92
    add: float = 0.1
    sigma: float = 0.1
    k_near: int = 30


TEXT_MODEL = TextModel()
IMPACT_MODEL = ImpactModel()
#: the generators' parameters per (name, kind)
MODELS: dict[tuple[str, str], TextModel | ImpactModel] = {
    ("realistic", "bm25"): TEXT_MODEL,
    ("realistic", "impact"): IMPACT_MODEL,
    # documents grown from the same seed less alike (see "Limits" in the module docstring)
    ("realistic-diverse", "bm25"): TextModel(p_seed=0.45, alpha=1000.0, rare_df=0),
    ("realistic-diverse", "impact"): ImpactModel(keep=0.6, add=0.5),
}


# ---------------------------------------------------------------------------------------- public
def load_corpus(
    name: str, n_docs: int = 1_000_000, kind: str = "bm25", seed: int = 0
) -> SparseCorpus:
    """A corpus by name (see the module docstring), generated once and cached.

    Parameters
    ----------
    name : str
        ``"realistic"``, ``"realistic-diverse"``, ``"iid"``, ``"real"`` (the four real corpora
        pooled) or one real corpus (``"scifact"``, ``"cisi"``, ``"med"``, ``"cacm"``).
    n_docs : int
        Number of documents of a generated corpus (ignored for real ones).
    kind : str
        ``"bm25"`` or ``"impact"``.
    seed : int
        Seed of a generated corpus; the corpus is a pure function of (name, n_docs, kind, seed).

    Returns
    -------
    SparseCorpus
        Arrays are read-only: a generated corpus's are memory-mapped from the cache, a real
        corpus's and the queries are shared between calls.
    """
    if name not in NAMES:
        raise ValueError(f"name must be one of {NAMES}; got {name!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    q = _queries(kind)
    if name in ("real", *CORPORA):
        parts = CORPORA if name == "real" else (name,)
        ptr, idx, val, n_terms = _real_csr(kind, parts)
        return SparseCorpus(name, kind, ptr, idx, val, n_terms, *q)
    if n_docs <= 0:
        raise ValueError(f"n_docs must be positive; got {n_docs}")
    folder = OUT / f"{name}-{kind}-{n_docs}-{seed}"
    meta = _read_meta(folder)
    model = MODELS.get((name, kind))
    want = None if model is None else asdict(model)
    if meta is None or meta.get("format") != FORMAT or meta.get("model") != want:
        t0 = time.perf_counter()
        n_terms = _generate(folder, name, kind, n_docs, seed)
        print(f"[sparse_corpus] {folder.name}: {time.perf_counter() - t0:.1f} s", flush=True)
        meta = _read_meta(folder)
        assert meta is not None and meta["n_terms"] == n_terms
    arrays = [np.asarray(np.load(folder / f"{a}.npy", mmap_mode="r")) for a in _ARRAYS]
    label = f"{name}-{_short(n_docs)}"
    return SparseCorpus(label, kind, *arrays[:3], int(meta["n_terms"]), *q)


def generation_seconds(name: str, n_docs: int, kind: str = "bm25", seed: int = 0) -> float | None:
    """Seconds the cached corpus took to generate (from its meta.json), or None."""
    meta = _read_meta(OUT / f"{name}-{kind}-{n_docs}-{seed}")
    return None if meta is None else meta.get("seconds")


def as_text_lines(corpus: SparseCorpus) -> Iterator[str]:
    """Each document as text for engines that tokenise themselves (PISA): space-joined tokens
    ``t<id>``, each repeated tf times (BM25 kind only)."""
    if corpus.kind != "bm25":
        raise ValueError("as_text_lines needs a corpus of kind 'bm25' (values are counts)")
    names = np.array([f"t{i}" for i in range(corpus.n_terms)], dtype=object)
    step = 20_000
    for a in range(0, corpus.n_docs, step):
        b = min(a + step, corpus.n_docs)
        ptr = np.asarray(corpus.indptr[a : b + 1], np.int64)
        lo, hi = int(ptr[0]), int(ptr[-1])
        counts = np.asarray(corpus.values[lo:hi]).astype(np.int64)
        toks = names[np.repeat(np.asarray(corpus.indices[lo:hi]), counts)].tolist()
        row = np.repeat(np.arange(b - a), np.diff(ptr))
        ends = np.cumsum(np.bincount(row, weights=counts, minlength=b - a)).astype(np.int64)
        start = 0
        for end in ends.tolist():
            yield " ".join(toks[start:end])
            start = end


def query_texts(corpus: SparseCorpus) -> list[str]:
    """The queries as text (``t<id>`` tokens, repeated by their integer counts; BM25 kind)."""
    if corpus.kind != "bm25":
        raise ValueError("query_texts needs a corpus of kind 'bm25'")
    out = []
    for i in range(corpus.n_queries):
        a, b = corpus.q_indptr[i], corpus.q_indptr[i + 1]
        reps = np.maximum(np.asarray(corpus.q_values[a:b]).astype(np.int64), 1)
        out.append(
            " ".join(
                f"t{t}" for t, r in zip(corpus.q_indices[a:b].tolist(), reps) for _ in range(r)
            )
        )
    return out


# ------------------------------------------------------------------------------------ real data
@functools.cache
def _real_text() -> tuple[
    dict[str, tuple[np.ndarray, np.ndarray]], int, dict[str, list[list[int]]], list
]:
    """Analysed real documents: {corpus: (ptr, int32 tokens)}, vocabulary size, the token lists
    of the four corpora (for ``bench_bm25.synthetic``), and the analysed queries."""
    from benchmarks.bench_bm25 import load_real
    from granite_index.encoders.analyzer import Analyzer, Vocabulary

    vocab = Vocabulary()
    _, docs, queries = load_real(Analyzer("en"), vocab)
    docs = {name: docs[name] for name in CORPORA}
    out = {}
    for name, lists in docs.items():
        lens = np.fromiter(map(len, lists), np.int64, len(lists))
        flat = np.fromiter((t for d in lists for t in d), np.int32, int(lens.sum()))
        out[name] = (np.concatenate([[0], np.cumsum(lens)]), flat)
    return out, len(vocab), docs, queries


@functools.cache
def _pooled_text() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pooled real documents: start and length of each (int64), the tokens (int32)."""
    per, _, _, _ = _real_text()
    lens = np.concatenate([np.diff(per[c][0]) for c in CORPORA])
    flat = np.concatenate([per[c][1] for c in CORPORA])
    start = np.concatenate([[0], np.cumsum(lens)[:-1]])
    return start, lens, flat


def _count(
    ptr: np.ndarray, flat: np.ndarray, n_terms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from granite_index._kernels.terms import count_terms

    return count_terms(np.asarray(ptr, np.int64), np.asarray(flat, np.int64), n_terms)


@functools.cache
def _real_csr(kind: str, parts: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    if kind == "bm25":
        per, n_terms, _, _ = _real_text()
        rows = [_count(*per[c], n_terms) for c in parts]
    else:
        n_terms = SPLADE_VOCAB
        rows = [_splade_docs(c) for c in parts]
    ptr = np.concatenate([[0], np.cumsum(np.concatenate([np.diff(r[0]) for r in rows]))])
    idx = np.concatenate([r[1] for r in rows]).astype(np.uint32)
    val = np.concatenate([r[2] for r in rows]).astype(np.float32)
    return (*_frozen(ptr.astype(np.int64), idx, val), n_terms)


def _frozen(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """The arrays made read-only (they are cached and shared between callers)."""
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _hybrid_manifest(name: str) -> tuple[Path, dict]:
    path = CACHE / f"hybrid-{name}"
    file = path / "manifest.json"
    if not file.is_file() or not (path / "splade").is_dir():
        raise FileNotFoundError(
            f"{path} holds no collection with a SPLADE leg: the impact corpora read the real "
            f"SPLADE vectors from it. Build it with `PYTHONPATH=. .venv/bin/python -m "
            f"benchmarks.bench_hybrid_quality --datasets {name}` (encodes the documents with the "
            "bundled SPLADE-tiny; minutes on CPU)."
        )
    return path, json.loads(file.read_text())


@functools.cache
def _splade_docs(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The real SPLADE vectors of ``name``'s documents (document order) as CSR."""
    from granite_index.index.sparse import SparseIndex

    path, manifest = _hybrid_manifest(name)
    idx = SparseIndex.load(path / "splade" / f"{int(manifest['commit']):08d}")
    docs, terms, weights = [], [], []
    for seg in idx.segments:
        counts = np.diff(np.asarray(seg.term_ptr))
        terms.append(np.repeat(np.asarray(seg.term_ids, np.int64), counts))
        docs.append(np.asarray(seg.post_doc, np.int64) + seg.base)
        weights.append(np.asarray(seg.post_w, np.float32))
    doc, term, w = np.concatenate(docs), np.concatenate(terms), np.concatenate(weights)
    alive = np.asarray(idx.alive, bool)
    keys = np.asarray(idx.keys, np.int64)
    live = alive[doc] & (w > 0)
    doc, term, w = doc[live], term[live], w[live]
    # rows in the collection's key order (the order documents were added: the dataset's order)
    rank = np.empty(len(keys), np.int64)
    live_pos = np.flatnonzero(alive)
    rank[live_pos[np.argsort(keys[live_pos], kind="stable")]] = np.arange(len(live_pos))
    row = rank[doc]
    order = np.lexsort((term, row))
    ptr = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=len(live_pos)))])
    n_expected = len(_real_text()[0][name][0]) - 1
    if len(live_pos) != n_expected:
        raise ValueError(f"{path}: {len(live_pos)} SPLADE documents, the dataset has {n_expected}")
    return ptr.astype(np.int64), term[order].astype(np.uint32), w[order]


@functools.cache
def _queries(kind: str) -> tuple[np.ndarray, ...]:
    if kind == "bm25":
        _, _, _, queries = _real_text()
        rows = [np.unique(np.asarray(q, np.int64)) for q in queries]
        ptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
        idx = np.concatenate(rows).astype(np.uint32)
        return _frozen(ptr, idx, np.ones(len(idx), np.float32))
    return _frozen(*_splade_queries())


def _splade_queries() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 458 real test queries encoded by the collections' SPLADE model (cached)."""
    file = OUT / "queries-impact.npz"
    if file.is_file():
        z = np.load(file)
        return z["indptr"], z["indices"], z["values"]
    from granite_index.encoders import SparseEncoder
    from granite_index.eval import load_beir

    configs = {
        json.dumps(_hybrid_manifest(c)[1]["splade_encoder"], sort_keys=True) for c in CORPORA
    }
    if len(configs) != 1:
        raise ValueError("the four collections' SPLADE legs were encoded by different models")
    enc = SparseEncoder.from_config(json.loads(configs.pop()), device="cpu")
    texts = [t for c in CORPORA for t in load_beir(BEIR / c, split="test").eval_queries()[1]]
    vec = enc.encode_queries(texts)
    OUT.mkdir(parents=True, exist_ok=True)
    ptr, idx, val = (
        vec.indptr.astype(np.int64),
        vec.indices.astype(np.uint32),
        vec.values.astype(np.float32),
    )
    np.savez(file, indptr=ptr, indices=idx, values=val)
    return ptr, idx, val


# ------------------------------------------------------------------------------------ neighbours
def _neighbours(
    ptr: np.ndarray, idx: np.ndarray, val: np.ndarray, n_terms: int, k: int
) -> np.ndarray:
    """int64 (n, k): each row's ``k`` nearest other rows by cosine of the (already weighted) rows."""
    import scipy.sparse as sp

    n = len(ptr) - 1
    x = sp.csr_matrix((val.astype(np.float32), idx.astype(np.int64), ptr), shape=(n, n_terms))
    norm = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    x = sp.diags(1 / np.maximum(norm, 1e-12)).astype(np.float32) @ x
    xt = x.T.tocsc()
    out = np.empty((n, k), np.int64)
    for a in range(0, n, 1024):
        b = min(a + 1024, n)
        sim = (x[a:b] @ xt).toarray()
        sim[np.arange(b - a), np.arange(a, b)] = -np.inf
        top = np.argpartition(-sim, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, top, axis=1), axis=1, kind="stable")
        out[a:b] = np.take_along_axis(top, order, axis=1)
    return out


@functools.cache
def _real_df() -> np.ndarray:
    """Document frequency of each term in the pooled real corpora (int64)."""
    _, idx, _, n_terms = _real_csr("bm25", CORPORA)
    return np.bincount(idx, minlength=n_terms)


@functools.cache
def _text_neighbours(k: int) -> np.ndarray:
    """Nearest real documents by TF-IDF (log tf, idf) cosine."""
    ptr, idx, val, n_terms = _real_csr("bm25", CORPORA)
    n = len(ptr) - 1
    df = np.bincount(idx, minlength=n_terms)
    idf = np.log(n / np.maximum(df, 1))
    return _neighbours(ptr, idx, (1 + np.log(val)) * idf[idx], n_terms, k)


@functools.cache
def _impact_neighbours(k: int) -> np.ndarray:
    """Nearest real documents by cosine of their SPLADE vectors."""
    ptr, idx, val, n_terms = _real_csr("impact", CORPORA)
    return _neighbours(ptr, idx, val, n_terms, k)


# ------------------------------------------------------------------------------------ generators
def _seeds(seed: int, first: int, m: int, n_real: int, salt: int) -> np.ndarray:
    """Seed documents of synthetic documents ``first .. first + m``: successive random
    permutations of the ``n_real`` real documents, so every real document seeds the same number
    of synthetic ones (up to one)."""
    out = np.empty(m, np.int64)
    at = 0
    while at < m:
        epoch, off = divmod(first + at, n_real)
        perm = np.random.default_rng([seed, 2, salt, epoch]).permutation(n_real)
        take = min(m - at, n_real - off)
        out[at : at + take] = perm[off : off + take]
        at += take
    return out


def _bm25_realistic(
    rng: np.random.Generator, seeds: np.ndarray, model: TextModel = TEXT_MODEL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Documents grown from the real documents ``seeds`` by the BM25 generator, as CSR (see the
    module docstring)."""
    start, length, flat = _pooled_text()
    nbr = _text_neighbours(model.k_near)
    _, n_terms, _, _ = _real_text()
    m = len(seeds)
    lens = length[seeds]
    ptr = np.concatenate([[0], np.cumsum(lens)])
    total = int(ptr[-1])
    doc = np.repeat(np.arange(m), lens)
    pos = np.arange(total) - ptr[doc]
    # the seed's tokens shuffled within the document: position i, when it draws from the seed,
    # takes shuffled token i, so the seed's tokens are drawn without replacement
    own = flat[start[seeds[doc]] + pos]
    own = own[np.argsort(doc + rng.random(total), kind="stable")]
    # the seed's rare terms are its own: they stay, and come from no other document
    rare = _real_df()[own] <= model.rare_df
    # the other positions: a token of one of the document's n_mix neighbours
    r = rng.random(total)
    u = rng.random(total)
    fresh = (r >= model.p_seed) & ~rare
    mix = nbr[seeds[:, None], rng.integers(0, model.k_near, (m, model.n_mix))]
    nb = mix[doc[fresh], rng.integers(0, model.n_mix, int(fresh.sum()))]
    tok = own.copy()
    tok[fresh] = flat[start[nb] + (u[fresh] * length[nb]).astype(np.int64)]
    other_rare = fresh & (_real_df()[tok] <= model.rare_df)
    tok[other_rare] = own[other_rare]
    del r, u, fresh, nb, own, other_rare
    # Pólya urn: position i repeats a uniform earlier token with probability i / (i + alpha)
    copy = (rng.random(total) * (pos + model.alpha) < pos) & ~rare
    back = (rng.random(total) * pos).astype(np.int64)
    src = np.where(copy, ptr[doc] + back, np.arange(total))
    while True:  # pointer jumping: every copy points to a fresh token
        nxt = src[src]
        if np.array_equal(nxt, src):
            break
        src = nxt
    return _count(ptr, tok[src], n_terms)


def _bm25_iid(seed: int, chunk: int, m: int):
    from benchmarks.bench_bm25 import synthetic

    _, n_terms, docs, _ = _real_text()
    ptr, flat = synthetic(docs, n_terms, m, seed=[seed, chunk])
    return _count(ptr, flat, n_terms)


@njit(cache=True)
def _mix_rows(ptr, idx, val, seeds, nbrs, u, z, keep, add, sigma, cap):  # pragma: no cover - numba
    m = len(seeds)
    out_ptr = np.zeros(m + 1, np.int64)
    out_t = np.empty(len(u), np.uint32)
    out_w = np.empty(len(u), np.float32)
    w = 0
    c = 0
    shift = -0.5 * sigma * sigma
    for r in range(m):
        i, i1 = ptr[seeds[r]], ptr[seeds[r] + 1]
        j, j1 = ptr[nbrs[r]], ptr[nbrs[r] + 1]
        while i < i1 or j < j1:
            if j >= j1 or (i < i1 and idx[i] < idx[j]):
                take, t, x = u[c] < keep, idx[i], val[i]
                i += 1
            elif i >= i1 or idx[j] < idx[i]:
                take, t, x = u[c] < add, idx[j], val[j]
                j += 1
            else:  # in both: the seed's weight unless only the neighbour picks the term
                p = u[c]
                take, t = p < keep + (1 - keep) * add, idx[i]
                x = val[i] if p < keep else val[j]
                i += 1
                j += 1
            if take:
                out_t[w] = t
                out_w[w] = min(x * np.exp(sigma * z[c] + shift), cap[t])
                w += 1
            c += 1
        out_ptr[r + 1] = w
    return out_ptr, out_t[:w].copy(), out_w[:w].copy()


def _impact_realistic(
    rng: np.random.Generator, seeds: np.ndarray, model: ImpactModel = IMPACT_MODEL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Documents grown from the real documents ``seeds`` by the impact generator, as CSR."""
    ptr, idx, val, _ = _real_csr("impact", CORPORA)
    nbr = _impact_neighbours(model.k_near)
    nbrs = nbr[seeds, rng.integers(0, model.k_near, len(seeds))]
    nnz = np.diff(ptr)
    total = int((nnz[seeds] + nnz[nbrs]).sum())
    u = rng.random(total, dtype=np.float32)
    z = rng.standard_normal(total, dtype=np.float32)
    cap = np.zeros(SPLADE_VOCAB, np.float32)
    np.maximum.at(cap, idx, val)  # noise never lifts a weight above the term's real maximum
    return _mix_rows(ptr, idx, val, seeds, nbrs, u, z, model.keep, model.add, model.sigma, cap)


@njit(cache=True)
def _distinct_rows(cand_ptr, cand, want, n_terms):  # pragma: no cover - numba
    """Per row, the first ``want[r]`` distinct candidate terms (ascending) and their positions."""
    m = len(want)
    last = np.full(n_terms, -1, np.int64)
    out_ptr = np.zeros(m + 1, np.int64)
    out_t = np.empty(len(cand), np.uint32)
    out_p = np.empty(len(cand), np.int64)
    w = 0
    for r in range(m):
        s = w
        for j in range(cand_ptr[r], cand_ptr[r + 1]):
            if w - s >= want[r]:
                break
            t = cand[j]
            if last[t] != r:
                last[t] = r
                out_t[w] = t
                out_p[w] = j
                w += 1
        if w - s > 1:
            order = np.argsort(out_t[s:w])
            out_t[s:w] = out_t[s:w][order]
            out_p[s:w] = out_p[s:w][order]
        out_ptr[r + 1] = w
    return out_ptr, out_t[:w].copy(), out_p[:w].copy()


def _impact_iid(rng: np.random.Generator, m: int):
    ptr, idx, val, n_terms = _real_csr("impact", CORPORA)
    want = rng.choice(np.diff(ptr), size=m)
    extra = (want * 3) // 10 + 16  # i.i.d. draws repeat frequent terms: draw more, keep distinct
    cand_ptr = np.concatenate([[0], np.cumsum(want + extra)])
    # a uniform posting's term has probability df / nnz: the real document-frequency distribution
    cand = idx[rng.integers(0, len(idx), int(cand_ptr[-1]))]
    out_ptr, terms, _ = _distinct_rows(cand_ptr, cand, want, n_terms)
    weights = val[rng.integers(0, len(val), len(terms))]
    return out_ptr, terms, weights


# ---------------------------------------------------------------------------------------- cache
_ARRAYS = ("indptr", "indices", "values")


def _short(n: int) -> str:
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if n >= size and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)


def _read_meta(folder: Path) -> dict | None:
    file = folder / "meta.json"
    if not file.is_file() or not all((folder / f"{a}.npy").is_file() for a in _ARRAYS):
        return None
    return json.loads(file.read_text())


def _generate(folder: Path, name: str, kind: str, n_docs: int, seed: int) -> int:
    """Generate the corpus batch by batch into ``folder`` (parts on disk, then one file each)."""
    t0 = time.perf_counter()
    n_terms = _real_text()[1] if kind == "bm25" else SPLADE_VOCAB
    n_real = len(_pooled_text()[1])
    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")  # another process may race
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sizes = []
    n_chunks = -(-n_docs // CHUNK)
    model = MODELS.get((name, kind))
    salt = 10 * KINDS.index(kind) + NAMES.index(name)
    for c in range(n_chunks):
        m = min(CHUNK, n_docs - c * CHUNK)
        rng = np.random.default_rng([seed, 1, salt, c])
        if isinstance(model, TextModel):
            part = _bm25_realistic(rng, _seeds(seed, c * CHUNK, m, n_real, salt), model)
        elif isinstance(model, ImpactModel):
            part = _impact_realistic(rng, _seeds(seed, c * CHUNK, m, n_real, salt), model)
        elif kind == "bm25":
            part = _bm25_iid(seed, c, m)
        else:
            part = _impact_iid(rng, m)
        ptr, idx, val = part
        np.save(tmp / f"ptr-{c}.npy", np.diff(ptr).astype(np.int64))
        np.save(tmp / f"idx-{c}.npy", idx.astype(np.uint32))
        np.save(tmp / f"val-{c}.npy", val.astype(np.float32))
        sizes.append(len(idx))
    nnz = int(sum(sizes))
    for arr, prefix, dtype, n in (
        ("indptr", "ptr", np.int64, n_docs + 1),
        ("indices", "idx", np.uint32, nnz),
        ("values", "val", np.float32, nnz),
    ):
        out = np.lib.format.open_memmap(tmp / f"{arr}.npy", mode="w+", dtype=dtype, shape=(n,))
        at = 1 if arr == "indptr" else 0
        if arr == "indptr":
            out[0] = 0
        for c in range(n_chunks):
            part = np.load(tmp / f"{prefix}-{c}.npy")
            if arr == "indptr":
                part = np.cumsum(part) + out[at - 1]
            out[at : at + len(part)] = part
            at += len(part)
            (tmp / f"{prefix}-{c}.npy").unlink()
        out.flush()
        del out
    meta = {
        "format": FORMAT,
        "name": name,
        "kind": kind,
        "n_docs": n_docs,
        "seed": seed,
        "nnz": nnz,
        "n_terms": n_terms,
        "model": None if model is None else asdict(model),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    # replace a stale folder (readers keep their memory maps of its unlinked files)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        tmp.rename(folder)
    except OSError:  # another process put the same corpus there first
        shutil.rmtree(tmp, ignore_errors=True)
    return n_terms
