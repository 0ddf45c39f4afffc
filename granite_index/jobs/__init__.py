"""Batch corpus encoding: stream a corpus through the encoders into a resumable Lance dataset.

:func:`encode_corpus` (``granite-index encode``) writes the dataset; :func:`collection_from_encoded`
(``granite-index index --from-encoded``) builds a collection from it without encoding again,
through the collection's one ingest loop.

Imports: :mod:`granite_index.collection` and the layers below, public names only (never the
LanceDB plugin or the CLI). Tests: ``tests/jobs/``.
"""

from __future__ import annotations

from granite_index.jobs.dataset import EncodedDataset, EncodeJobError, JobSpec
from granite_index.jobs.encode import JobSummary, encode_corpus, load_summary
from granite_index.jobs.load import collection_from_encoded, index_encoded

__all__ = [
    "EncodeJobError",
    "EncodedDataset",
    "JobSpec",
    "JobSummary",
    "collection_from_encoded",
    "encode_corpus",
    "index_encoded",
    "load_summary",
]
