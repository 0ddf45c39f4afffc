"""The fusion kernels against their numpy twins."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from granite_index._kernels.fusion import union, union_numpy
from tests.strategies import NINF, leg_lists


@settings(max_examples=80, deadline=None)
@given(leg_lists(), st.booleans())
def test_union_kernel_equals_its_numpy_twin(legs, repeat_an_id):
    n = max(i.shape[1] for i, _ in legs.values())
    ids = np.stack(
        [np.pad(i, ((0, 0), (0, n - i.shape[1])), constant_values=-1) for i, _ in legs.values()]
    )
    scores = np.stack(
        [np.pad(s, ((0, 0), (0, n - s.shape[1])), constant_values=NINF) for _, s in legs.values()]
    )
    if repeat_an_id and ids.shape[2] >= 2 and (ids[1, :, 0] >= 0).any():
        q = int(np.flatnonzero(ids[1, :, 0] >= 0)[0])
        ids[1, q, 1], scores[1, q, 1] = ids[1, q, 0], scores[1, q, 0]  # leg 1 repeats an id
    valid = (ids >= 0) & (scores != NINF)
    got, want = union(ids, scores, valid), union_numpy(ids, scores, valid)
    assert got[3] == want[3]
    if want[3] < 0:
        for g, w in zip(got[:3], want[:3]):
            np.testing.assert_array_equal(g, w)
