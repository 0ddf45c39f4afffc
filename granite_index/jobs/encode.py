"""Encode a corpus into a Lance dataset in resumable chunks (the local backend).

Resume design: each chunk of ``chunk_size`` input records is encoded and appended to the Lance
dataset in one commit whose transaction properties record the input range it covers (see
:mod:`granite_index.jobs.dataset`). A run killed at any moment leaves the dataset as of its last
commit, with that commit naming where the input stands; re-running the same command reads it
and continues with the next record (a jsonl input seeks straight to the byte offset). Chunks
start at the same positions as in an uninterrupted run, so the resumed output is the same rows
in the same order with the same vectors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tqdm.auto import tqdm

from granite_index.fileio import exclusive_lock
from granite_index.jobs import dataset as encoded
from granite_index.jobs.dataset import EncodedDataset, EncodeJobError, JobSpec, Progress
from granite_index.jobs.encoding import EncoderSpec, Pool
from granite_index.jobs.sources import Chunk, open_source

log = logging.getLogger("granite_index.jobs")

#: Seconds to sleep after each commit (tests use it to kill a run part-way); not a user option.
PACE_ENV = "GRANITE_INDEX_JOB_PACE"

OnBadLine = Literal["skip", "fail"]
Backend = Literal["local", "ray"]


@dataclass
class JobSummary:
    """What an encoding run did.

    Attributes
    ----------
    path : pathlib.Path
        The encoded dataset.
    rows : int
        Rows in the dataset now (all runs).
    added : int
        Rows this run added.
    positions : int
        Input records read so far (all runs), out of ``total``.
    bad : list of [int, str]
        Every skipped record so far (all runs): ``[line or row number, reason]``.
    seconds : float
        This run's wall-clock time.
    complete : bool
        The whole input has been read.
    resumed_from : int
        Input records already done when this run started (0 for a fresh run).
    """

    path: Path
    rows: int
    added: int
    positions: int
    total: int
    bad: list[list[Any]] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = False
    resumed_from: int = 0
    unit: str = "line"

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["path"] = str(self.path)
        return out


def encode_corpus(
    input: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    model: str | None = None,
    sparse_model: str | None = None,
    dense: bool = True,
    precision: str = "auto",
    batch_size: int = 32,
    chunk_size: int = 1024,
    workers: int = 1,
    on_bad_line: OnBadLine = "skip",
    backend: Backend = "local",
    show_progress: bool = True,
) -> JobSummary:
    """Encode ``input`` into the Lance dataset ``out``, resuming a previous run of the same job.

    Parameters
    ----------
    input : str or path
        A ``.jsonl`` file (``id`` or ``_id``, ``text``, optional ``title``), a ``.parquet`` file
        with those columns, or a BEIR folder (its ``corpus.jsonl``).
    out : str or path
        The Lance dataset to write; it must not exist or hold this same job's earlier output.
    model, sparse_model, dense, precision, batch_size :
        Encoders: see :class:`~granite_index.jobs.encoding.EncoderSpec`.
    chunk_size : int
        Input records per commit (the unit of resume).
    workers : int
        Encoding processes on a CPU (see :mod:`granite_index.jobs.encoding`), or the Ray
        pipeline's actors.
    on_bad_line : {"skip", "fail"}
        A record that is not valid JSON or lacks an id or a text is skipped, logged and listed
        in the summary (``"skip"``), or stops the job (``"fail"``, raises ``EncodeJobError``).
    backend : {"local", "ray"}
        Encode in local processes, or in a Ray Data pipeline (``map_batches`` on an actor
        pool, :mod:`granite_index.jobs.ray_backend`);
        the output is the same.
    show_progress : bool
        Show a tqdm bar (docs/s, ETA).

    Returns
    -------
    JobSummary

    Raises
    ------
    EncodeJobError
        ``out`` holds an unrelated dataset or one made with other settings, or a bad record
        with ``on_bad_line="fail"``.
    """
    if on_bad_line not in ("skip", "fail"):
        raise ValueError(f"on_bad_line must be 'skip' or 'fail'; got {on_bad_line!r}")
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray'; got {backend!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    t0 = time.perf_counter()
    source = open_source(input)
    out = Path(out)
    spec = EncoderSpec(model, sparse_model, dense, precision, batch_size)
    with _job_lock(out):
        existing = encoded.open_existing(out)  # an unrelated --out fails before models load
        with _Encoding(spec, workers, backend) as encoding:
            job = JobSpec(source.fingerprint(), *encoding.configs())
            if existing is not None:
                encoded.check_resumable(existing, job)
            start = existing.progress() if existing is not None else Progress()
            run = _Run(out, job, source, on_bad_line, start, existing is None)
            total = source.total()
            if not start.done:
                with _bar(total, start.end, show_progress) as bar:
                    run.consume(encoding.items(source, start, chunk_size, run), bar)
    return run.summary(total, time.perf_counter() - t0)


def _bar(total: int, initial: int, show: bool) -> tqdm:
    return tqdm(
        total=total, initial=initial, unit="doc", desc="encode", disable=not show, smoothing=0.1
    )


class _Run:
    """The state of one run: what is committed, and how to commit the next chunk."""

    def __init__(
        self,
        out: Path,
        job: JobSpec,
        source: Any,
        on_bad_line: OnBadLine,
        start: Progress,
        create: bool,
    ) -> None:
        self.out, self.source, self.on_bad_line = out, source, on_bad_line
        self.schema = encoded.schema(job)
        self.start, self.state, self.create = start, start, create
        self.added = 0
        self.pace = float(os.environ.get(PACE_ENV, "0") or 0)

    def checked(self, items: Iterator[Any], encoded: bool = False) -> Iterator[Any]:
        """The chunks (``encoded``: ``(chunk, vectors, sparse)`` items), each chunk marked
        ``done`` when it is the last; bad records logged or fatal."""
        prev = None
        for item in items:
            if prev is not None:
                self._report_bad(_chunk_of(prev))
                yield prev
            prev = item
        if prev is not None:
            self._report_bad(_chunk_of(prev))
            _chunk_of(prev).done = True
            yield prev
        elif not self.state.done:  # an empty input (or one ending exactly at the last commit)
            marker = _final_marker(self.state)
            yield (marker, None, None) if encoded else marker

    def _report_bad(self, chunk: Chunk) -> None:
        for position, reason in chunk.bad:
            where = (
                f"{self.source.path}:{position}"
                if self.source.unit == "line"
                else (f"{self.source.path} row {position}")
            )
            if self.on_bad_line == "fail":
                raise EncodeJobError(f"{where}: {reason} (--on-bad-line fail)")
            log.warning("skipped %s: %s", where, reason)

    def consume(self, encoded_chunks: Iterator[tuple[Chunk, Any, Any]], bar: Any) -> None:
        for chunk, vectors, sparse in encoded_chunks:
            table = encoded.chunk_table(
                chunk.ids, chunk.texts, chunk.titles, vectors, sparse, self.schema
            )
            record = {
                "start": chunk.start,
                "end": chunk.end,
                "end_byte": chunk.end_byte,
                "rows": len(chunk),
                "bad": chunk.bad,
                "done": chunk.done,
            }
            version = encoded.append_chunk(self.out, table, record, self.create)
            self.create = False
            self.added += len(chunk)
            self.state = Progress(
                chunk.end,
                chunk.end_byte,
                self.state.rows + len(chunk),
                version,
                chunk.done,
                self.state.bad + chunk.bad,
            )
            bar.update(chunk.end - chunk.start)
            if self.pace:
                time.sleep(self.pace)

    def summary(self, total: int, seconds: float) -> JobSummary:
        return JobSummary(
            path=self.out,
            rows=self.state.rows,
            added=self.added,
            positions=self.state.end,
            total=total,
            bad=self.state.bad,
            seconds=seconds,
            complete=self.state.done,
            resumed_from=self.start.end,
            unit=self.source.unit,
        )


@contextlib.contextmanager
def _job_lock(out: Path) -> Iterator[None]:
    """Hold ``.<out name>.lock`` beside ``out`` (an flock, released if the process dies), so
    two runs of one job never append the same chunks twice."""
    out.parent.mkdir(parents=True, exist_ok=True)
    busy = EncodeJobError(f"{out} is being written by another encoding run")
    with exclusive_lock(out.parent / f".{out.name}.lock", busy):
        yield


class _Encoding:
    """Where the chunks are encoded: this process or worker processes (``Pool``), or a Ray Data
    pipeline (:mod:`granite_index.jobs.ray_backend`); either way they come back in input order."""

    def __init__(self, spec: EncoderSpec, workers: int, backend: Backend) -> None:
        self.spec, self.workers = spec, workers
        self.pool = Pool(spec, workers) if backend == "local" else None

    def configs(self) -> tuple[dict | None, dict | None, str | None]:
        if self.pool is not None:
            return self.pool.configs()
        from granite_index.jobs import ray_backend

        return ray_backend.encoder_configs(self.spec, self.workers)

    def items(self, source: Any, start: Progress, size: int, run: _Run) -> Iterator[Any]:
        """``(chunk, vectors, sparse)`` from ``start`` to the end, checked by ``run``."""
        if self.pool is not None:
            return self.pool.map(run.checked(source.chunks(start.end, start.end_byte, size)))
        from granite_index.jobs import ray_backend

        items = ray_backend.encode_chunks(
            self.spec, self.workers, source, start.end, start.end_byte, size
        )
        return run.checked(items, encoded=True)

    def __enter__(self) -> _Encoding:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.pool is not None:
            self.pool.close()


def _chunk_of(item: Chunk | tuple[Chunk, Any, Any]) -> Chunk:
    return item[0] if isinstance(item, tuple) else item


def _final_marker(state: Progress) -> Chunk:
    """A chunk of no records that marks the job complete."""
    chunk = Chunk(state.end, state.end, state.end_byte)
    chunk.done = True
    return chunk


def load_summary(path: str | os.PathLike[str]) -> JobSummary:
    """The summary of an encoded dataset on disk (rows, bad lines, complete)."""
    ds = EncodedDataset.open(path)
    p = ds.progress()
    unit = "row" if ds.spec.input.get("kind") == "parquet" else "line"
    return JobSummary(Path(path), p.rows, 0, p.end, p.end, p.bad, 0.0, p.done, p.end, unit)
