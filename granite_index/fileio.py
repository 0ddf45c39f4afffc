"""Crash-safe file primitives shared by every writer: an exclusive lock, an atomic file write,
a temporary folder to assemble in and rename into place."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["exclusive_lock", "fsync_dir", "fsync_tree", "make_temp_dir", "write_atomic"]


@contextlib.contextmanager
def exclusive_lock(lock_file: Path, busy: Exception, timeout: float = 0.0) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_file`` (created if missing; released if the process
    dies). Another holder is waited for up to ``timeout`` seconds (0: not at all); then ``busy``
    is raised."""
    deadline = time.monotonic() + max(0.0, timeout)
    with open(lock_file, "a+") as fh:
        pause = 0.005
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise busy from exc
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.1)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A temporary folder with the permissions a plain mkdir would give (mkdtemp makes 0700)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    return tmp


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: write a sibling, fsync it, rename, fsync the
    folder (a crash leaves the old file or the new one, never a mix)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """fsync a folder, so that the names it holds (a rename, a new file) survive a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(
    root: Path, newer_than: float | None = None, synced: dict[str, int] | None = None
) -> int:
    """fsync every file below ``root`` (only those modified at or after ``newer_than``, a
    ``time.time()`` value, when given), then ``root`` and every folder below it (those modified
    since ``newer_than``: a new name changes its folder's time); returns the files synced. A
    commit calls it on what it wrote before the manifest that names it.

    ``synced`` (path → modification time in ns) remembers what was synced: a file or folder
    synced before and not modified since is skipped, so the margin ``newer_than`` leaves for
    coarse file times does not sync the files of recent commits again and again.
    """
    root_s = os.fspath(root)
    if not os.path.exists(root_s):
        return 0
    cutoff = None if newer_than is None else newer_than * 1e9
    n = 0

    def fresh(path: str, st: os.stat_result) -> bool:
        if cutoff is not None and st.st_mtime_ns < cutoff:
            return False
        return synced is None or synced.get(path) != st.st_mtime_ns

    folders: list[tuple[str, os.stat_result]] = []
    for dirpath, _, filenames in os.walk(root_s):
        folders.append((dirpath, os.stat(dirpath)))
        for name in filenames:
            file = os.path.join(dirpath, name)
            st = os.stat(file)
            if not fresh(file, st):
                continue
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
            if synced is not None:
                synced[file] = st.st_mtime_ns
            n += 1
    for folder, st in folders:
        if folder == root_s or fresh(folder, st):
            fsync_dir(Path(folder))
            if synced is not None:
                synced[folder] = st.st_mtime_ns
    return n
