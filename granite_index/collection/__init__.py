"""Collections: documents + vectors + indexes in one folder, and the verbs over them.

Modules
-------
- :mod:`~granite_index.collection.collection`: :class:`Collection` (create / open, add, delete,
  search, fit_fusion, get) over a store and a dict of legs.
- :mod:`~granite_index.collection.spec`: one small spec per leg (:class:`DenseSpec`,
  :class:`Bm25Spec`, :class:`SpladeSpec`), and the keyword shorthand that makes them.
- :mod:`~granite_index.collection.state`: indexes built from specs or loaded from a commit.
- :mod:`~granite_index.collection.store`: the folder, the manifest (the commit point), the Lance
  documents, index folders per commit, the writer lock.
- :mod:`~granite_index.collection.documents`: documents as Arrow tables (rows in, hits out).
- :mod:`~granite_index.collection.ingest`: the one chunked, resumable ingest loop, and
  :func:`add_source` that streams a source through it.
- :mod:`~granite_index.collection.sources`: :func:`read_batches`, documents streamed in batches
  from jsonl / parquet files, BEIR folders, Lance datasets, Arrow data, DataFrames, iterables.
- :mod:`~granite_index.collection.batch`: :class:`Batch`, documents that go in together.
- :mod:`~granite_index.collection.evaluation`: the one BEIR pipeline (index a dataset, search its
  queries, score the run) that the CLI, the trainer and the benchmarks call.

Imports: :mod:`granite_index.search`, ``index``, ``fusion``, ``encoders`` (loaded lazily) and the
shared modules; never the jobs, the LanceDB plugin or the CLI. Tests: ``tests/collection/``.
"""

from __future__ import annotations

from granite_index.collection.batch import Batch
from granite_index.collection.collection import Collection
from granite_index.collection.evaluation import BeirRun, evaluate_beir, index_beir
from granite_index.collection.ingest import add_source, index_corpus, ingest
from granite_index.collection.sources import read_batches
from granite_index.collection.spec import Bm25Spec, DenseSpec, LegSpec, SpladeSpec

__all__ = [
    "Batch",
    "BeirRun",
    "Bm25Spec",
    "Collection",
    "DenseSpec",
    "LegSpec",
    "SpladeSpec",
    "add_source",
    "evaluate_beir",
    "index_beir",
    "index_corpus",
    "ingest",
    "read_batches",
]
