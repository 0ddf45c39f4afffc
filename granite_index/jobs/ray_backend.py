"""The Ray backend: the job's chunks encoded by a pool of Ray actors, each holding the models.

Install with ``pip install "granite-index[distributed]"``. The job itself does not change: the
driver reads the input in chunks, sends each chunk's texts to an actor (round robin, at most
``2 x workers`` chunks in flight), takes the results back in input order and commits each chunk
to the Lance dataset with its input range, exactly as the local backend does. So resume, bad
lines and the output (same rows, same vectors) are the local backend's; only where the encoding
runs differs. ``ray.init()`` is called unless Ray is already initialised (connect to a cluster
with ``ray.init(address=...)`` first, or set ``RAY_ADDRESS``). Each actor asks Ray for one GPU
when the driver sees one or ``device="cuda"`` was given, else for ``cores // workers`` CPUs.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np

from granite_index.jobs.encoding import EncoderSpec, wants_gpu


class _EncoderActor:
    """A Ray actor: the job's encoders, loaded once."""

    def __init__(self, spec: EncoderSpec, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.encoders = spec.build()

    def configs(self) -> tuple[dict | None, dict | None, str | None]:
        return self.encoders.configs()

    def encode(self, texts: list[str]) -> tuple[np.ndarray | None, Any]:
        return self.encoders.encode(texts)


class RayPool:
    """Encode chunks on ``workers`` Ray actors; the same interface as ``encoding.Pool``."""

    def __init__(self, spec: EncoderSpec, workers: int) -> None:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                'the ray backend needs Ray: pip install "granite-index[distributed]"'
            ) from exc
        if workers < 1:
            raise ValueError(f"workers must be >= 1; got {workers}")
        if not ray.is_initialized():
            ray.init(include_dashboard=False, log_to_driver=False)
        self._ray = ray
        gpu = wants_gpu(spec)
        threads = max(1, (os.cpu_count() or 1) // workers)
        options = {"num_gpus": 1} if gpu else {"num_cpus": threads}
        actor = ray.remote(**options)(_EncoderActor)
        self.actors = [actor.remote(spec, threads) for _ in range(workers)]

    def configs(self) -> tuple[dict | None, dict | None, str | None]:
        return self._ray.get(self.actors[0].configs.remote())

    def map(self, chunks: Iterator[Any]) -> Iterator[tuple[Any, np.ndarray | None, Any]]:
        """``(chunk, vectors, sparse)`` for each chunk, in input order."""
        window: deque[tuple[Any, Any]] = deque()
        n = len(self.actors)
        for i, chunk in enumerate(chunks):
            window.append((chunk, self.actors[i % n].encode.remote(chunk.texts)))
            if len(window) >= 2 * n:
                done, ref = window.popleft()
                yield (done, *self._ray.get(ref))
        while window:
            done, ref = window.popleft()
            yield (done, *self._ray.get(ref))

    def close(self) -> None:
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
