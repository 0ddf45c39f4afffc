"""Compiled hot loops: pure numba functions over arrays and scalars, each with a plain-numpy twin
that the tests compare it against.

Modules
-------
- :mod:`~granite_index._kernels.sparse_scoring`: BM25 / impact scoring of a query batch against a
  segment, exact top-k (heap and block-maxima paths), scoring given documents, merging per-segment
  top-k lists, the per-segment BM25 weight cache.
- :mod:`~granite_index._kernels.pruning`: exact top-k with MaxScore dynamic pruning, term upper
  bounds, and the document-major copy of a segment with its exact rescoring (impact lookups).
- :mod:`~granite_index._kernels.segments`: building segments from CSR rows, merging segments,
  dropping and renumbering deleted documents' postings.
- :mod:`~granite_index._kernels.terms`: term counts per row (the BM25 analyzer's term frequencies).
- :mod:`~granite_index._kernels.fusion`: the union of hybrid legs' candidate lists and the fused
  top-k in one pass.
- :mod:`~granite_index._kernels.topk`: row-wise top-k of a dense score matrix.
- :mod:`~granite_index._kernels.batches`: a batch kernel compiled serial and parallel, and the
  call between them (plain Python, shared by the kernel modules).

Rules (checked by ``lint-imports``, see ``pyproject.toml``): a kernel module imports numpy,
numba and :mod:`~granite_index._kernels.batches` only: nothing else of granite_index, and no other
kernel module, so that no compiled function calls one defined in another file (numba's on-disk
cache would not see that file change). No objects, no thread policy, no I/O.
Tests: ``tests/_kernels/``.
"""
