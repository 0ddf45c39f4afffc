"""Random CSR rows shared by the sparse index tests and the sparse kernel tests."""

from __future__ import annotations

import numpy as np


def random_csr(rng, n_docs, n_vocab, max_len=12, impacts=False):
    indptr, indices, values = [0], [], []
    for _ in range(n_docs):
        terms = rng.choice(n_vocab, size=rng.integers(0, max_len), replace=False)
        indices.extend(terms.tolist())
        if impacts:
            values.extend(rng.random(len(terms)).round(3).tolist())
        else:
            values.extend(rng.integers(1, 4, len(terms)).tolist())
        indptr.append(len(indices))
    return np.array(indptr), np.array(indices, np.int64), np.array(values, np.float32)


def topical_csr(rng, n_docs=6000, n_vocab=3000, impacts=False):
    """Documents that each draw from one of 60 topics (a few hundred terms) plus background:
    rare topical terms and long background lists, where pruning has something to skip."""
    topics = [rng.choice(n_vocab, 200, replace=False) for _ in range(60)]
    indptr, indices, values = [0], [], []
    for _ in range(n_docs):
        own = rng.choice(topics[rng.integers(60)], rng.integers(3, 15), replace=False)
        bg = rng.choice(50, rng.integers(1, 6), replace=False)  # frequent background terms
        terms = np.unique(np.concatenate([own, bg]))
        indices.extend(terms.tolist())
        values.extend(
            (rng.random(len(terms)) if impacts else rng.integers(1, 4, len(terms))).tolist()
        )
        indptr.append(len(indices))
    return np.array(indptr), np.array(indices, np.int64), np.array(values, np.float32), topics
