"""The term-counting kernel against its numpy twin (the analyzer's ``counts_csr``)."""

from __future__ import annotations

import numpy as np

from granite_index._kernels.terms import count_terms
from granite_index.encoders.analyzer import counts_csr


def test_count_terms_kernel_matches_numpy_twin():
    rng = np.random.default_rng(1)
    lens = rng.integers(0, 12, 50)
    indptr = np.concatenate([[0], np.cumsum(lens)])
    flat = rng.integers(0, 9, int(lens.sum()))
    for got, want in zip(count_terms(indptr, flat, 9), counts_csr(indptr, flat)):
        np.testing.assert_array_equal(got, want)
