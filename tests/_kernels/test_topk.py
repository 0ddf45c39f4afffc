"""The row-wise top-k kernel (the dense index's scan) against its numpy twin."""

from __future__ import annotations

import numpy as np

from granite_index._kernels.topk import topk_rows, topk_rows_numpy


def test_topk_rows_equals_its_numpy_twin():
    rng = np.random.default_rng(0)
    for _ in range(50):  # ties (small integers), -inf holes, +inf, k above n
        s = rng.integers(0, 5, size=(3, int(rng.integers(1, 30)))).astype(np.float32)
        s[rng.random(s.shape) < 0.2] = -np.inf
        s[rng.random(s.shape) < 0.05] = np.inf
        k = int(rng.integers(1, 35))
        for got, want in zip(topk_rows(s, k), topk_rows_numpy(s, k)):
            np.testing.assert_array_equal(got, want)
