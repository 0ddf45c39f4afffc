"""Hypothesis strategies shared by the fusion tests and the fusion kernel tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

NINF = -np.inf


@st.composite
def leg_lists(draw, legs=("bm25", "dense")):
    nq = draw(st.integers(1, 3))
    out = {}
    for leg in legs:
        width = draw(st.integers(0, 8))
        ids = np.full((nq, width), -1, dtype=np.int64)
        scores = np.full((nq, width), NINF, dtype=np.float32)
        for q in range(nq):
            n = draw(st.integers(0, width))
            ids[q, :n] = draw(st.lists(st.integers(0, 15), min_size=n, max_size=n, unique=True))
            vals = draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
            scores[q, :n] = sorted(vals, reverse=True)
        out[leg] = (ids, scores)
    return out
