"""Exact flat search on a GPU: faiss-gpu when installed, else a torch matrix product."""

from __future__ import annotations

import os
import sys
from functools import lru_cache

import faiss
import numpy as np


@lru_cache(maxsize=1)
def _faiss_gpus() -> int:
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


@lru_cache(maxsize=1)
def _no_cuda_driver() -> bool:
    """True where no CUDA device can exist: macOS, or Linux without the NVIDIA driver's device
    files. Saves importing torch (seconds) just to learn there is no GPU."""
    if sys.platform == "darwin":
        return True
    if sys.platform.startswith("linux"):
        return not (os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia"))
    return False


def gpu_available() -> bool:
    """True when faiss-gpu or torch can use a CUDA device."""
    if _faiss_gpus() > 0:
        return True
    if _no_cuda_driver():
        return False
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


class GpuFlatSearcher:
    """Exact inner-product top-k over the live rows of ``vectors`` on a GPU.

    Parameters
    ----------
    vectors : float32 (n, dim)
        All stored vectors, by position.
    alive : bool (n,)
        Which positions are live; results are positions into ``vectors``.
    device : str
        Torch device for the matrix-product path (``"cpu"`` works, for testing).
    """

    def __init__(self, vectors: np.ndarray, alive: np.ndarray, device: str = "cuda") -> None:
        self._live = np.flatnonzero(alive).astype(np.int64)
        live_vectors = np.ascontiguousarray(vectors[self._live], dtype=np.float32)
        if _faiss_gpus() > 0 and device == "cuda":
            self._res = faiss.StandardGpuResources()
            cpu = faiss.IndexFlatIP(vectors.shape[1])
            cpu.add(live_vectors)
            self._faiss = faiss.index_cpu_to_gpu(self._res, 0, cpu)
            self._torch = None
        else:
            import torch

            self._faiss = None
            dtype = torch.float16 if device == "cuda" else torch.float32
            self._torch = torch.from_numpy(live_vectors).to(device=device, dtype=dtype)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns (scores float32, positions int64), each (n_queries, k)."""
        if self._faiss is not None:
            scores, idx = self._faiss.search(queries, k)
        else:
            import torch

            q = torch.from_numpy(queries).to(self._torch.device, self._torch.dtype)
            with torch.inference_mode():
                top = torch.topk(q @ self._torch.T, k, dim=1)
            scores = top.values.float().cpu().numpy()
            idx = top.indices.cpu().numpy().astype(np.int64)
        return scores.astype(np.float32), np.where(idx >= 0, self._live[np.maximum(idx, 0)], -1)
