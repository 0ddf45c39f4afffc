"""Input checks done once at the public boundary (never ``assert``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from granite_index.errors import DuplicateIdError


def as_list(values: Any, name: str) -> list[Any]:
    """Lists, tuples, numpy arrays, pandas Series and Arrow arrays → a Python list."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence, not a single {type(values).__name__}")
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values.to_pylist()
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional; got shape {values.shape}")
        return values.tolist()
    if hasattr(values, "tolist") and hasattr(values, "dtype"):  # pandas Series / Index
        return list(values.tolist())
    if isinstance(values, Iterable):
        return list(values)
    raise TypeError(f"{name} must be a sequence; got {type(values).__name__}")


def is_text_list(values: Any) -> bool:
    """True for a non-empty sequence whose items are all ``str``."""
    try:
        return len(values) > 0 and all(isinstance(v, str) for v in values)
    except TypeError:
        return False


def check_queries(queries: Any, name: str = "queries") -> list[str]:
    """Query texts: a str, or a non-empty sequence of str, none empty or whitespace only."""
    if isinstance(queries, str):
        texts = [queries]
    elif is_text_list(queries):
        texts = as_list(queries, name)
    else:
        raise TypeError(f"{name} must be a str or a non-empty list of str")
    for i, q in enumerate(texts):
        if not q.strip():
            where = "" if isinstance(queries, str) else f" ({name}[{i}])"
            raise ValueError(f"a query is empty or whitespace only{where}")
    return texts


def check_texts(texts: Any, name: str = "texts") -> list[str]:
    """A non-empty list of non-empty strings."""
    if isinstance(texts, str):
        texts = [texts]
    out = as_list(texts, name)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{name}[{i}] must be a str; got {type(t).__name__}")
        if not t.strip():
            raise ValueError(f"{name}[{i}] is empty or whitespace only")
    return out


def check_ids(ids: Any, name: str = "ids") -> tuple[list[Any], str]:
    """Document ids: all ``int`` or all ``str``, unique. Returns (ids, 'int' | 'str')."""
    out = as_list(ids, name)
    if not out:
        return out, "str"
    kinds = set()
    for i, v in enumerate(out):
        if isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name}[{i}] is a bool; ids must be int or str")
        if isinstance(v, (int, np.integer)):
            kinds.add("int")
            out[i] = int(v)
        elif isinstance(v, str):
            if not v:
                raise ValueError(f"{name}[{i}] is an empty string")
            kinds.add("str")
        else:
            raise TypeError(f"{name}[{i}] must be int or str; got {type(v).__name__}")
    if len(kinds) > 1:
        raise TypeError(f"{name} mixes int and str; use one type")
    seen: set[Any] = set()
    dups = []
    for v in out:
        if v in seen:
            dups.append(v)
        seen.add(v)
    if dups:
        raise DuplicateIdError(f"{name} holds duplicates: {preview(dups)}")
    return out, kinds.pop()


def check_matrix(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    """A C-contiguous float32 matrix of shape (n, dim) with finite values."""
    arr = np.asarray(x)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, dim); got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric; got dtype {arr.dtype}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has dimension {arr.shape[1]}, but the index has dimension {dim}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an int; got {type(k).__name__}")
    if k <= 0:
        raise ValueError(f"k must be positive; got {k}")
    return int(k)


def preview(values: Sequence[Any], n: int = 5) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:n])
    more = f" and {len(values) - n} more" if len(values) > n else ""
    return f"[{shown}]{more}"
