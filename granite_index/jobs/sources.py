"""Corpus inputs read in bounded chunks: jsonl files, parquet files and BEIR folders.

A source numbers its records by *position*: the 1-based line number of a jsonl file (blank lines
included, so the numbers match an editor's), or the 1-based row number of a parquet file. A chunk
covers the positions ``start + 1 .. end`` and holds the good records among them plus the bad ones
(position and reason). Reading resumes at any chunk boundary without rereading what came before:
a jsonl source seeks to the byte offset the previous chunk ended at, a parquet source skips whole
row groups.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_BLOCK = 1 << 20


@dataclass
class Chunk:
    """The records of input positions ``start + 1 .. end``.

    Attributes
    ----------
    start, end : int
        Positions covered: ``start`` records were read before this chunk, ``end`` after it.
    end_byte : int
        Byte offset just past the chunk (jsonl), or ``end`` (parquet): where the next chunk starts.
    ids, texts, titles : list of str
        The good records: id (as a string), the text to encode (``title + " " + text``,
        stripped) and the title (``""`` when none).
    bad : list of [int, str]
        ``[position, reason]`` of each record that was skipped.
    done : bool
        The input ends with this chunk.
    """

    start: int
    end: int
    end_byte: int
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    bad: list[list[Any]] = field(default_factory=list)
    done: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, position: int, rec: Any, error: str | None = None) -> None:
        """Add record ``rec`` (a dict) read at ``position``, or note why it is bad."""
        reason = error or _record_problem(rec)
        if reason is not None:
            self.bad.append([position, reason])
            return
        title = rec.get("title") or ""
        self.ids.append(str(rec["_id"] if "_id" in rec else rec["id"]))
        self.titles.append(title if isinstance(title, str) else str(title))
        self.texts.append(f"{self.titles[-1]} {rec['text']}".strip())


def _record_problem(rec: Any) -> str | None:
    """Why ``rec`` cannot be encoded, or None when it can."""
    if not isinstance(rec, dict):
        return f"expected a JSON object, got {type(rec).__name__}"
    doc_id = rec.get("_id", rec.get("id"))
    if doc_id is None or isinstance(doc_id, (bool, dict, list)) or doc_id == "":
        return "no id (an '_id' or 'id' string or integer)"
    if "text" not in rec or rec["text"] is None:
        return "no 'text' field"
    if not isinstance(rec["text"], str):
        return f"'text' is a {type(rec['text']).__name__}, not a string"
    title = rec.get("title") or ""
    if not (str(title) + rec["text"]).strip():
        return "empty text (and no title)"
    return None


class JsonlSource:
    """One JSON object per line; ``id`` or ``_id``, ``text``, optional ``title``."""

    kind = "jsonl"
    unit = "line"

    def __init__(self, path: Path) -> None:
        self.path = path

    def total(self) -> int:
        """Number of lines (a final line without a newline counts), read in 1 MiB blocks."""
        lines, last = 0, b"\n"
        with open(self.path, "rb") as fh:
            while block := fh.read(_BLOCK):
                lines += block.count(b"\n")
                last = block[-1:]
        return lines + (last != b"\n")

    def fingerprint(self) -> dict[str, Any]:
        return _fingerprint(self.path, self.kind)

    def chunks(self, start: int, start_byte: int, size: int) -> Iterator[Chunk]:
        """Chunks of ``size`` lines from line ``start + 1`` (byte ``start_byte``) to the end."""
        with open(self.path, "rb") as fh:
            fh.seek(start_byte)
            chunk = Chunk(start, start, start_byte)
            for raw in fh:
                chunk.end += 1
                chunk.end_byte += len(raw)
                if raw.strip():
                    rec, error = _parse_line(raw)
                    chunk.add(chunk.end, rec, error)
                if chunk.end - chunk.start == size:
                    yield chunk
                    chunk = Chunk(chunk.end, chunk.end, chunk.end_byte)
            if chunk.end > chunk.start:
                yield chunk

    def chunk_starts(self, start: int, start_byte: int, size: int) -> list[tuple[int, int]]:
        """``(start, start_byte)`` of each chunk :meth:`chunks` would yield from there, found by
        counting newlines (no parsing), so that the chunks can be read independently."""
        import numpy as np

        starts: list[tuple[int, int]] = []
        end = self.path.stat().st_size
        if start_byte < end:
            starts.append((start, start_byte))
        lines, offset = 0, start_byte
        with open(self.path, "rb") as fh:
            fh.seek(start_byte)
            while block := fh.read(_BLOCK):
                nl = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
                done = lines + 1 + np.arange(len(nl))  # lines finished at each newline
                for i in np.flatnonzero(done % size == 0):
                    if offset + nl[i] + 1 < end:
                        starts.append((start + int(done[i]), offset + int(nl[i]) + 1))
                lines += len(nl)
                offset += len(block)
        return starts


def _parse_line(raw: bytes) -> tuple[Any, str | None]:
    """(record, None), or (None, why the line is not a JSON value)."""
    try:
        return json.loads(raw.rstrip(b"\r\n")), None
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8 ({exc.reason})"
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno}); corrupt or truncated line"


class ParquetSource:
    """A parquet file with ``id`` or ``_id``, ``text`` and optional ``title`` columns."""

    kind = "parquet"
    unit = "row"

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self._file = pq.ParquetFile(path)
        names = self._file.schema_arrow.names
        id_col = next((c for c in ("_id", "id") if c in names), None)
        if id_col is None or "text" not in names:
            raise ValueError(
                f"{path}: a parquet corpus needs id (or _id) and text columns; has {names}"
            )
        self.columns = [id_col, "text"] + (["title"] if "title" in names else [])

    def total(self) -> int:
        return int(self._file.metadata.num_rows)

    def fingerprint(self) -> dict[str, Any]:
        return _fingerprint(self.path, self.kind)

    def chunk_starts(self, start: int, start_byte: int, size: int) -> list[tuple[int, int]]:
        """``(start, start_byte)`` of each chunk :meth:`chunks` would yield from ``start``."""
        return [(p, p) for p in range(start, self.total(), size)]

    def chunks(self, start: int, start_byte: int, size: int) -> Iterator[Chunk]:
        """Chunks of ``size`` rows from row ``start + 1``, skipping the row groups before it."""
        meta = self._file.metadata
        first, skip = 0, start
        while first < meta.num_row_groups and skip >= meta.row_group(first).num_rows:
            skip -= meta.row_group(first).num_rows
            first += 1
        groups = list(range(first, meta.num_row_groups))
        chunk = Chunk(start, start, start)
        if not groups:
            return
        batches = self._file.iter_batches(batch_size=size, row_groups=groups, columns=self.columns)
        for batch in batches:
            if skip >= batch.num_rows:  # still inside the first row group's committed rows
                skip -= batch.num_rows
                continue
            for rec in batch.slice(skip).to_pylist():
                chunk.end += 1
                chunk.end_byte = chunk.end
                chunk.add(chunk.end, rec)
                if chunk.end - chunk.start == size:
                    yield chunk
                    chunk = Chunk(chunk.end, chunk.end, chunk.end)
            skip = 0
        if chunk.end > chunk.start:
            yield chunk


def open_source(path: str | os.PathLike[str]) -> JsonlSource | ParquetSource:
    """The source for ``path``: a ``.jsonl`` file, a ``.parquet`` file or a BEIR folder.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist, or a folder has no ``corpus.jsonl``.
    ValueError
        A file that is neither jsonl nor parquet, or a parquet file without id / text columns.
    """
    path = Path(path)
    if path.is_dir():
        corpus = path / "corpus.jsonl"
        if not corpus.is_file():
            raise FileNotFoundError(f"{path} is not a BEIR folder: corpus.jsonl is missing")
        return JsonlSource(corpus)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist")
    if path.suffix == ".parquet":
        return ParquetSource(path)
    if path.suffix in (".jsonl", ".json", ".ndjson"):
        return JsonlSource(path)
    raise ValueError(f"input {path}: expected a .jsonl or .parquet file or a BEIR folder")


def _fingerprint(path: Path, kind: str) -> dict[str, Any]:
    """What identifies an input: resolved path, size, and a hash of its first and last MiB."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read(_BLOCK))
        if size > _BLOCK:
            fh.seek(max(_BLOCK, size - _BLOCK))
            digest.update(fh.read(_BLOCK))
    return {"kind": kind, "path": str(path.resolve()), "size": size, "sha256": digest.hexdigest()}
