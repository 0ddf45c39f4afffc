"""The encoders of a job, in this process or in a pool of worker processes.

``workers=1`` encodes in the calling process with torch's default threads (all cores). On a CPU,
``workers=N`` starts N spawned processes, each holding its own copy of the models and running
torch on ``cores // N`` threads; chunks go to them in turn, at most ``2 N`` in flight, and come
back in input order. Several processes pay off where one process cannot keep all cores busy
(small models, short texts); with a large model one process and all threads does as well. On a
GPU the job always encodes in one process (the GPU is the worker).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from granite_index.encoders.resolve import DEFAULT_SPARSE_MODEL

log = logging.getLogger("granite_index.jobs")


@dataclass(frozen=True)
class EncoderSpec:
    """How to build a job's encoders (picklable: it is sent to worker processes).

    Attributes
    ----------
    model : str or None
        Dense model (None: the bundled all-MiniLM-L6-v2); ignored when ``dense`` is False.
    sparse_model : str or None
        SPLADE model, or None for no sparse encoding (``"default"``: the bundled SPLADE-tiny).
    dense : bool
        Encode dense vectors.
    precision : {"auto", "fp32", "bf16", "fp16"}
        Dense encoding precision (SPLADE always computes in fp32).
    batch_size : int
        Texts per forward pass.
    device : str or None
        ``"cpu"``, ``"cuda"``; None: CUDA when available.
    """

    model: str | None = None
    sparse_model: str | None = None
    dense: bool = True
    precision: str = "auto"
    batch_size: int = 32
    device: str | None = None

    def __post_init__(self) -> None:
        if not self.dense and self.sparse_model is None:
            raise ValueError("nothing to encode: give a sparse model or keep dense=True")

    def build(self) -> Encoders:
        return Encoders(self)


class Encoders:
    """The loaded dense and/or SPLADE encoder of a job."""

    def __init__(self, spec: EncoderSpec) -> None:
        self.dense = self.sparse = None
        if spec.dense:
            from granite_index.encoders.dense import DenseEncoder

            self.dense = DenseEncoder(
                spec.model,
                batch_size=spec.batch_size,
                precision=spec.precision,
                device=spec.device,
            )
        if spec.sparse_model is not None:
            from granite_index.encoders.sparse import SparseEncoder

            name = DEFAULT_SPARSE_MODEL if spec.sparse_model == "default" else spec.sparse_model
            self.sparse = SparseEncoder(name, batch_size=spec.batch_size, device=spec.device)

    def configs(self) -> tuple[dict | None, dict | None, str | None]:
        """(dense config, SPLADE config, dense precision) as saved with the dataset."""
        return (
            None if self.dense is None else self.dense.config.to_dict(),
            None if self.sparse is None else self.sparse.config.to_dict(),
            None if self.dense is None else self.dense.precision,
        )

    @property
    def on_gpu(self) -> bool:
        enc = self.dense or self.sparse
        return enc.device.type != "cpu"

    def encode(self, texts: list[str]) -> tuple[np.ndarray | None, Any]:
        """Dense vectors float32 (n, dim) and SPLADE rows (SparseVectors) of ``texts``."""
        from granite_index.encoders.sparse import SparseVectors

        vectors = sparse = None
        if self.dense is not None:
            vectors = (
                self.dense.encode_documents(texts)
                if texts
                else np.zeros((0, self.dense.dim), np.float32)
            )
        if self.sparse is not None:
            sparse = (
                self.sparse.encode_documents(texts)
                if texts
                else SparseVectors.empty(self.sparse.vocab_size)
            )
        return vectors, sparse


# ---------------------------------------------------------------------- worker processes
_WORKER: Encoders | None = None


def _init_worker(spec: EncoderSpec, threads: int) -> None:
    import torch

    global _WORKER
    torch.set_num_threads(threads)
    _WORKER = spec.build()


def _worker_configs() -> tuple[dict | None, dict | None, str | None]:
    return _WORKER.configs()


def _worker_encode(texts: list[str]) -> tuple[np.ndarray | None, Any]:
    return _WORKER.encode(texts)


class Pool:
    """Encode chunks in ``workers`` processes (or here, when ``workers`` is 1)."""

    def __init__(self, spec: EncoderSpec, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        self.local: Encoders | None = None
        self.executor: ProcessPoolExecutor | None = None
        self.workers = workers
        if workers > 1 and wants_gpu(spec):
            log.warning("--workers %d ignored: a GPU encodes in one process", workers)
            self.workers = 1
        if self.workers == 1:
            self.local = spec.build()
            return
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        self.executor = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(spec, threads),
        )

    def configs(self) -> tuple[dict | None, dict | None, str | None]:
        if self.local is not None:
            return self.local.configs()
        return self.executor.submit(_worker_configs).result()

    def map(self, chunks: Iterator[Any]) -> Iterator[tuple[Any, np.ndarray | None, Any]]:
        """``(chunk, vectors, sparse)`` for each chunk, in order; few chunks held at once."""
        if self.local is not None:
            for chunk in chunks:
                yield (chunk, *self.local.encode(chunk.texts))
            return
        window: deque[tuple[Any, Future]] = deque()
        for chunk in chunks:
            window.append((chunk, self.executor.submit(_worker_encode, chunk.texts)))
            if len(window) >= 2 * self.workers:
                done, fut = window.popleft()
                yield (done, *fut.result())
        while window:
            done, fut = window.popleft()
            yield (done, *fut.result())

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def wants_gpu(spec: EncoderSpec) -> bool:
    if spec.device is not None:
        return spec.device != "cpu"
    import torch

    return torch.cuda.is_available()
