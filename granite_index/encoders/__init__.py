"""Text encoders: dense bi-encoder (CLS / mean pooling), SPLADE sparse encoder, model resolution,
the BM25 analyzer, and the Hugging Face helpers (:mod:`granite_index.encoders.hf`) the trainer
shares.

Imports: the shared modules and :mod:`granite_index._kernels` (term counting); never an index,
storage or search. Tests: ``tests/encoders/``.

Names load lazily, so that lexical-only users (``Analyzer``, ``SparseIndex``) never import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_DENSE_MODEL": "granite_index.encoders.resolve",
    "ModelSource": "granite_index.encoders.resolve",
    "resolve_model": "granite_index.encoders.resolve",
    "DenseEncoder": "granite_index.encoders.dense",
    "DenseEncoderConfig": "granite_index.encoders.dense",
    "DEFAULT_SPARSE_MODEL": "granite_index.encoders.resolve",
    "SparseEncoder": "granite_index.encoders.sparse",
    "SparseEncoderConfig": "granite_index.encoders.sparse",
    "SparseVectors": "granite_index.types",
    "Analyzer": "granite_index.encoders.analyzer",
    "Vocabulary": "granite_index.encoders.analyzer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
