"""Hugging Face helpers shared by the encoders and the trainer (public: the trainer imports them).

Nothing here imports torch or transformers at module import time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["cpu_has_bf16", "model_max_length", "quiet_transformers"]


def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (AVX512-BF16 or AMX), so autocast pays off."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report (an unused pooler head is expected for encoders)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def model_max_length(config: Any, tokenizer: Any) -> int:
    """Longest input the model takes (RoBERTa reserves 2 positions for its padding offset)."""
    positions = getattr(config, "max_position_embeddings", 512)
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert"):
        positions -= 2
    tok_max = getattr(tokenizer, "model_max_length", positions) or positions
    return int(min(positions, tok_max))
