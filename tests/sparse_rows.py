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
