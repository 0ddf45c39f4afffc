"""What the segmented indexes (dense, id map, sparse) share on disk: deletion files beside an
immutable segment, the listing that names a commit's segments, and folder identity.

A segment folder is written once; its deletions are a separate ``dead-<uuid>.npy`` (the deleted
rows, sorted) written by the commit that deleted them, and a commit's ``index.json`` lists
``{"name": segment, "dead": file or null}`` per segment.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np


def same_dir(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when ``a`` and ``b`` name one folder (after making them absolute and normal)."""
    return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


def write_deletions(folder: Path, rows: np.ndarray) -> str:
    """Write the deleted ``rows`` of the segment in ``folder`` as a new ``dead-<uuid>.npy``
    (tmp + rename); returns its name."""
    name = f"dead-{uuid.uuid4().hex[:12]}.npy"
    tmp = folder / f".tmp-{name}"
    np.save(tmp, rows)
    os.replace(tmp, folder / name)
    return name


def dead_mask(n: int, rows: np.ndarray) -> np.ndarray:
    """bool (n,), True at ``rows``."""
    mask = np.zeros(n, bool)
    mask[rows] = True
    return mask


def listed_files(path: str | os.PathLike[str]) -> set[str]:
    """Files of a shared segments folder that the listing ``path/index.json`` uses: segment
    folder names and ``<segment>/<deletion file>``; none when there is no listing."""
    file = Path(path) / "index.json"
    if not file.exists():
        return set()
    out: set[str] = set()
    for s in json.loads(file.read_text())["segments"]:
        out.add(s["name"])
        if s["dead"]:
            out.add(f"{s['name']}/{s['dead']}")
    return out
