"""Dense bi-encoder: backbone → pooling (CLS or mean) → L2 normalisation."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from granite_index.encoders.hf import cpu_has_bf16, model_max_length, quiet_transformers
from granite_index.encoders.pooling import POOLERS
from granite_index.encoders.resolve import ModelSource, resolve_model
from granite_index.encoders.st_config import Pooling, read_folder_config
from granite_index.validate import check_texts

Precision = Literal["auto", "fp32", "bf16", "fp16"]


@dataclass(frozen=True)
class DenseEncoderConfig:
    """What a dense encoder does; saved with every collection built with it."""

    model: str
    revision: str
    pooling: Pooling
    normalize: bool
    max_length: int
    dim: int
    query_prefix: str = ""
    document_prefix: str = ""
    format_version: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_precision(precision: Precision, device: torch.device) -> str:
    """``auto``: bf16 on a bf16-capable GPU or CPU, else fp32.

    bf16 autocast keeps cosine ≥ 0.999 to fp32 on the bundled model (checked in
    ``benchmarks/bench_dense.py`` and ``tests/encoders/test_dense_real.py``).
    """
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16; got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "fp32"


class DenseEncoder:
    """Encode texts into L2-normalised float32 vectors with a Hugging Face / sentence-transformers model.

    Parameters
    ----------
    model : str, path or None
        A local folder, a Hugging Face id (e.g. ``"ibm-granite/granite-embedding-30m-english"``)
        or ``None`` for the bundled all-MiniLM-L6-v2.
    revision : str, optional
        Hugging Face revision (hub models only).
    pooling : {"cls", "mean"}, optional
        Overrides the folder's ``1_Pooling`` config; a plain HF folder defaults to ``"cls"`` (Granite).
    normalize : bool
        L2-normalise outputs (cosine similarity = inner product). Default True.
    max_length : int, optional
        Truncation length in tokens; defaults to the folder's ``max_seq_length`` or the model's limit.
    query_prefix, document_prefix : str, optional
        Text prepended to queries / documents; defaults to the folder's prompts, else ``""``.
    batch_size : int
        Texts per forward pass.
    precision : {"auto", "fp32", "bf16", "fp16"}
        ``auto`` uses bf16 autocast where the hardware has it.
    device : str, optional
        ``"cpu"``, ``"cuda"``...; default: CUDA when available.

    Examples
    --------
    >>> enc = DenseEncoder()                       # bundled all-MiniLM-L6-v2, offline
    >>> enc.encode_queries(["what is bm25?"]).shape
    (1, 384)
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        pooling: Pooling | None = None,
        normalize: bool = True,
        max_length: int | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        batch_size: int = 32,
        precision: Precision = "auto",
        device: str | None = None,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        if pooling is not None and pooling not in POOLERS:
            raise ValueError(f"pooling must be 'cls' or 'mean'; got {pooling!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive; got {batch_size}")
        self.source: ModelSource = resolve_model(model, revision=revision)
        folder = read_folder_config(self.source.path)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision = resolve_precision(precision, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(folder.transformer_path)
        with quiet_transformers():
            self.model = AutoModel.from_pretrained(folder.transformer_path)
        self.model.eval().to(self.device)
        self.batch_size = batch_size
        limit = model_max_length(self.model.config, self.tokenizer)
        length = max_length or folder.max_length or limit
        self.config = DenseEncoderConfig(
            model=self.source.name,
            revision=self.source.revision,
            pooling=pooling or folder.pooling or "cls",
            normalize=normalize,
            max_length=min(int(length), limit),
            dim=int(self.model.config.hidden_size),
            query_prefix=query_prefix if query_prefix is not None else (folder.query_prefix or ""),
            document_prefix=document_prefix
            if document_prefix is not None
            else (folder.document_prefix or ""),
        )
        self._pool = POOLERS[self.config.pooling]
        self._forward_keys = {"input_ids", "attention_mask", "token_type_ids"}

    @classmethod
    def from_config(cls, config: dict[str, Any], **kwargs: Any) -> DenseEncoder:
        """Rebuild the encoder a collection was made with (checks the model revision)."""
        enc = cls(
            config["model"],
            pooling=config["pooling"],
            normalize=config["normalize"],
            max_length=config["max_length"],
            query_prefix=config["query_prefix"],
            document_prefix=config["document_prefix"],
            **kwargs,
        )
        if enc.config.revision != config["revision"]:
            raise ValueError(
                f"model {config['model']!r} is now revision {enc.config.revision}, but the collection was "
                f"encoded with {config['revision']}; its vectors would not match new queries. "
                "Rebuild the collection or restore that model version."
            )
        return enc

    @property
    def dim(self) -> int:
        return self.config.dim

    def encode_queries(
        self, texts: Any, *, batch_size: int | None = None, show_progress: Any = False
    ) -> np.ndarray:
        """Encode queries (with the query prefix). Returns float32 (n_queries, dim)."""
        return self.encode(
            texts,
            prefix=self.config.query_prefix,
            batch_size=batch_size,
            show_progress=show_progress,
        )

    def encode_documents(
        self, texts: Any, *, batch_size: int | None = None, show_progress: Any = False
    ) -> np.ndarray:
        """Encode documents (with the document prefix). Returns float32 (n_docs, dim)."""
        return self.encode(
            texts,
            prefix=self.config.document_prefix,
            batch_size=batch_size,
            show_progress=show_progress,
        )

    def encode(
        self,
        texts: Any,
        *,
        prefix: str = "",
        batch_size: int | None = None,
        show_progress: Any = False,
    ) -> np.ndarray:
        """Encode texts as given (plus ``prefix``). Returns float32 (n, dim), L2-normalised if configured.

        ``show_progress`` is a bool, or a tqdm bar to advance (for one bar over several calls).

        Texts are tokenised once, sorted by token length and padded per batch, so a batch
        holds texts of similar length and little compute goes to padding.
        """
        texts = check_texts(texts)
        bs = batch_size or self.batch_size
        enc = self.tokenizer(
            [prefix + t for t in texts],
            truncation=True,
            max_length=self.config.max_length,
            padding=False,
        )
        lengths = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(texts))
        order = np.argsort(-lengths, kind="stable")
        keys = [k for k in enc if k in self._forward_keys]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        own_bar = not hasattr(show_progress, "update")
        bar = (
            tqdm(total=len(texts), disable=not show_progress, unit="doc", desc="encode")
            if own_bar
            else show_progress
        )
        try:
            for start in range(0, len(texts), bs):
                idx = order[start : start + bs]
                batch = self.tokenizer.pad(
                    {k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt"
                )
                out[idx] = self._forward(batch)
                bar.update(len(idx))
        finally:
            if own_bar:
                bar.close()
        return out

    def _forward(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None),
        ):
            hidden = self.model(**batch).last_hidden_state
        emb = self._pool(hidden.float(), batch["attention_mask"])
        if self.config.normalize:
            emb = torch.nn.functional.normalize(emb, p=2, dim=-1)
        return emb.cpu().numpy()
