"""Numba kernels that build and rewrite sparse index segments (see :mod:`granite_index.index.segment`).

Segment layout as in :mod:`granite_index._kernels.sparse_scoring`. Their oracles are the
brute-force checks of :mod:`tests._kernels`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# ---------------------------------------------------------------------------- building segments


@njit(cache=True, nogil=True)
def csr_to_csc(indptr, terms, values, n_vocab):
    """Document-major CSR (rows = local docs) → term-major segment arrays.

    Returns ``(term_ids uint32, term_ptr int64, post_doc uint32, post_w float32)``; postings of a
    term come in ascending document order.
    """
    counts = np.zeros(n_vocab + 1, dtype=np.int64)
    for j in range(len(terms)):
        counts[terms[j] + 1] += 1
    n_present = 0
    for t in range(n_vocab):
        if counts[t + 1] > 0:
            n_present += 1
    term_ids = np.empty(n_present, dtype=np.uint32)
    term_ptr = np.zeros(n_present + 1, dtype=np.int64)
    slot = np.full(n_vocab, -1, dtype=np.int64)
    i = 0
    for t in range(n_vocab):
        c = counts[t + 1]
        if c > 0:
            term_ids[i] = t
            term_ptr[i + 1] = term_ptr[i] + c
            slot[t] = i
            i += 1
    fill = term_ptr[:-1].copy()
    post_doc = np.empty(len(terms), dtype=np.uint32)
    post_w = np.empty(len(terms), dtype=np.float32)
    for d in range(len(indptr) - 1):
        for j in range(indptr[d], indptr[d + 1]):
            s = slot[terms[j]]
            post_doc[fill[s]] = d
            post_w[fill[s]] = values[j]
            fill[s] += 1
    return term_ids, term_ptr, post_doc, post_w


@njit(cache=True, nogil=True)
def merge_segments(a_terms, a_ptr, a_doc, a_w, a_base, b_terms, b_ptr, b_doc, b_w, b_base, alive):
    """Merge two segments (b's positions follow a's) into one based at ``a_base``; dead postings go."""
    off = b_base - a_base
    # pass 1: sizes
    na, nb = len(a_terms), len(b_terms)
    i = j = 0
    n_terms = 0
    n_post = 0
    while i < na or j < nb:
        if j >= nb or (i < na and a_terms[i] < b_terms[j]):
            t_a, t_b = i, -1
            i += 1
        elif i >= na or b_terms[j] < a_terms[i]:
            t_a, t_b = -1, j
            j += 1
        else:
            t_a, t_b = i, j
            i += 1
            j += 1
        c = 0
        if t_a >= 0:
            for p in range(a_ptr[t_a], a_ptr[t_a + 1]):
                if alive[a_base + a_doc[p]]:
                    c += 1
        if t_b >= 0:
            for p in range(b_ptr[t_b], b_ptr[t_b + 1]):
                if alive[b_base + b_doc[p]]:
                    c += 1
        if c > 0:
            n_terms += 1
            n_post += c
    term_ids = np.empty(n_terms, dtype=np.uint32)
    term_ptr = np.zeros(n_terms + 1, dtype=np.int64)
    post_doc = np.empty(n_post, dtype=np.uint32)
    post_w = np.empty(n_post, dtype=np.float32)
    # pass 2: fill
    i = j = 0
    ti = 0
    w = 0
    while i < na or j < nb:
        if j >= nb or (i < na and a_terms[i] < b_terms[j]):
            t_a, t_b, t = i, -1, a_terms[i]
            i += 1
        elif i >= na or b_terms[j] < a_terms[i]:
            t_a, t_b, t = -1, j, b_terms[j]
            j += 1
        else:
            t_a, t_b, t = i, j, a_terms[i]
            i += 1
            j += 1
        start = w
        if t_a >= 0:
            for p in range(a_ptr[t_a], a_ptr[t_a + 1]):
                if alive[a_base + a_doc[p]]:
                    post_doc[w] = a_doc[p]
                    post_w[w] = a_w[p]
                    w += 1
        if t_b >= 0:
            for p in range(b_ptr[t_b], b_ptr[t_b + 1]):
                if alive[b_base + b_doc[p]]:
                    post_doc[w] = b_doc[p] + off
                    post_w[w] = b_w[p]
                    w += 1
        if w > start:
            term_ids[ti] = t
            term_ptr[ti + 1] = w
            ti += 1
    return term_ids, term_ptr, post_doc, post_w


@njit(cache=True, nogil=True)
def has_repeats(term_ptr, post_doc):
    """Whether a document appears twice in one term's postings (a row that repeated a term)."""
    for i in range(len(term_ptr) - 1):
        for p in range(term_ptr[i] + 1, term_ptr[i + 1]):
            if post_doc[p] == post_doc[p - 1]:
                return True
    return False


@njit(cache=True, nogil=True)
def dead_postings(terms, term_ids, term_ptr, post_doc, base, alive):
    """Per term of ``terms``: how many of its postings in a segment (``term_ids`` sorted,
    ``term_ptr``, ``post_doc`` relative to position ``base``) belong to deleted documents
    (``alive[position] == 0``)."""
    out = np.zeros(len(terms), dtype=np.int64)
    for j in range(len(terms)):
        i = np.searchsorted(term_ids, terms[j])
        if i == len(term_ids) or term_ids[i] != terms[j]:
            continue
        c = 0
        for p in range(term_ptr[i], term_ptr[i + 1]):
            if alive[base + post_doc[p]] == 0:
                c += 1
        out[j] = c
    return out


@njit(cache=True, nogil=True)
def renumber(post_doc, old_base, new_base, remap):
    """Rewrite local doc numbers after compaction: remap[old position] = new position."""
    out = np.empty(len(post_doc), dtype=np.uint32)
    for p in range(len(post_doc)):
        out[p] = remap[old_base + post_doc[p]] - new_base
    return out
