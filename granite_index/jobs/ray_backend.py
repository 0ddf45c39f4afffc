"""The Ray backend: the encoding job as a Ray Data pipeline.

Install with ``pip install "granite-index[distributed]"``. The pipeline:

1. the job's process plans the chunks still to do (their first input positions and, for jsonl,
   byte offsets: one pass that counts newlines) and makes them a Ray Dataset of small rows;
2. ``map_batches(_read_chunks)``: Ray tasks read each chunk's records from the input (so on a
   cluster the input must sit where every node can read it, like the output);
3. ``map_batches(_EncodeChunks, compute=ActorPoolStrategy(size=workers))``: an actor pool, each
   actor holding the models (one GPU per actor when the driver sees one or ``device="cuda"``
   was given, else ``cores // workers`` torch threads), encodes one chunk per call;
4. the job's process takes the encoded chunks in input order (``preserve_order``) and commits
   each to the Lance dataset in one version that records its input range, as the local backend
   does.

Step 4 is why Lance is written by the job's process rather than by a Ray ``Datasink``: one
ordered commit per chunk is what makes a killed run resumable with no gaps or duplicates, and
which chunks are done is read back from those commits. A chunk is encoded whole by one actor,
as the local backend encodes it, so the output is the local backend's (tested). ``ray.init()``
is called unless Ray is already initialised (connect to a cluster with
``ray.init(address=...)`` first, or set ``RAY_ADDRESS``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from granite_index.jobs.encoding import EncoderSpec, wants_gpu
from granite_index.jobs.sources import Chunk, JsonlSource, ParquetSource, open_source


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'the ray backend needs Ray: pip install "granite-index[distributed]"'
        ) from exc
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False)
    return ray


def _resources(spec: EncoderSpec, workers: int) -> tuple[int, dict[str, Any]]:
    """(torch threads per actor, Ray resources per actor): a GPU each where there are GPUs;
    else ``cores // workers`` torch threads, and one CPU reserved from Ray (Ray Data keeps part
    of a cluster's CPUs for its other operators, so an actor asking for all of them would
    never be scheduled on a one-node cluster)."""
    if wants_gpu(spec):
        return 1, {"num_gpus": 1}
    return max(1, (os.cpu_count() or 1) // workers), {"num_cpus": 1}


def _configs(spec: EncoderSpec, threads: int) -> tuple[dict | None, dict | None, str | None]:
    import torch

    torch.set_num_threads(threads)
    return spec.build().configs()


def encoder_configs(spec: EncoderSpec, workers: int) -> tuple[dict | None, dict | None, str | None]:
    """The job's encoder configs, from a Ray task with an actor's resources (so that a GPU's
    precision is resolved on a GPU), before the pipeline starts."""
    ray = _ray()
    threads, res = _resources(spec, workers)
    return ray.get(ray.remote(**res)(_configs).remote(spec, threads))


# ---------------------------------------------------------------------- pipeline stages
def _read_chunks(batch: pa.Table, path: str, size: int) -> pa.Table:
    """Rows (start, start_byte) → the chunks' records (one row per chunk)."""
    source = open_source(path)
    rows = []
    for start, start_byte in zip(
        batch.column("start").to_pylist(), batch.column("start_byte").to_pylist(), strict=True
    ):
        chunk = next(source.chunks(start, start_byte, size))
        records = {"ids": chunk.ids, "texts": chunk.texts, "titles": chunk.titles}
        rows.append(
            {
                "start": chunk.start,
                "end": chunk.end,
                "end_byte": chunk.end_byte,
                "records": json.dumps(records),
                "bad": json.dumps(chunk.bad),
            }
        )
    return pa.Table.from_pylist(rows)


class _EncodeChunks:
    """The actor of the encoding stage: the job's encoders, loaded once."""

    def __init__(self, spec: EncoderSpec, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.encoders = spec.build()

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        for row in rows:
            vectors, sparse = self.encoders.encode(json.loads(row["records"])["texts"])
            row.update(_pack(vectors, sparse))
        return pa.Table.from_pylist(rows)


def _pack(vectors: np.ndarray | None, sparse: Any) -> dict[str, Any]:
    """Encoder output as row fields (raw little-endian bytes; exact round trip)."""
    out: dict[str, Any] = {"dim": -1, "vectors": b"", "vocab": -1}
    if vectors is not None:
        out["dim"] = int(vectors.shape[1])
        out["vectors"] = np.ascontiguousarray(vectors, np.float32).tobytes()
    if sparse is not None:
        out["vocab"] = int(sparse.vocab_size)
        out["indptr"] = sparse.indptr.astype(np.int64).tobytes()
        out["indices"] = sparse.indices.astype(np.uint32).tobytes()
        out["values"] = sparse.values.astype(np.float32).tobytes()
    return out


def _unpack(row: dict[str, Any]) -> tuple[Chunk, np.ndarray | None, Any]:
    from granite_index.encoders.sparse import SparseVectors

    records = json.loads(row["records"])
    chunk = Chunk(int(row["start"]), int(row["end"]), int(row["end_byte"]), **records)
    chunk.bad = json.loads(row["bad"])
    vectors = sparse = None
    if row["dim"] >= 0:
        vectors = np.frombuffer(row["vectors"], np.float32).reshape(-1, row["dim"]).copy()
    if row["vocab"] >= 0:
        sparse = SparseVectors(
            np.frombuffer(row["indptr"], np.int64).copy(),
            np.frombuffer(row["indices"], np.uint32).copy(),
            np.frombuffer(row["values"], np.float32).copy(),
            int(row["vocab"]),
        )
    return chunk, vectors, sparse


def encode_chunks(
    spec: EncoderSpec,
    workers: int,
    source: JsonlSource | ParquetSource,
    start: int,
    start_byte: int,
    size: int,
) -> Iterator[tuple[Chunk, np.ndarray | None, Any]]:
    """``(chunk, vectors, sparse)`` for each chunk of ``source`` from position ``start`` (byte
    ``start_byte``), in input order, encoded by the Ray Data pipeline (module docs)."""
    starts = source.chunk_starts(start, start_byte, size)
    if not starts:
        return
    ray = _ray()
    threads, res = _resources(spec, workers)
    ctx = ray.data.DataContext.get_current()
    ordered, ctx.execution_options.preserve_order = ctx.execution_options.preserve_order, True
    try:
        ds = ray.data.from_items([{"start": s, "start_byte": b} for s, b in starts])
        ds = ds.map_batches(
            _read_chunks,
            batch_size=1,
            batch_format="pyarrow",
            fn_kwargs={"path": str(source.path), "size": size},
        )
        ds = ds.map_batches(
            _EncodeChunks,
            batch_size=1,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_args=(spec, threads),
            **res,
        )
        for row in ds.iter_rows():
            yield _unpack(row)
    finally:
        ctx.execution_options.preserve_order = ordered
