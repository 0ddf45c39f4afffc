"""Learned-sparse (SPLADE) encoder: masked LM → max-pooled log(1 + ReLU(logits)) → top terms.

Term ``v`` of a text weighs ``max_t log(1 + ReLU(logit[t, v]))`` over its non-padding tokens ``t``
(SPLADE v2 and later, as sentence-transformers' ``SpladePooling(pooling_strategy="max")``).

The vocabulary projection is where the time and memory go: ``(tokens, hidden) @ (hidden, vocab)``,
~30k-250k columns. A plain ``model(**batch).logits`` holds a (batch, seq, vocab) float tensor —
4 GB for 64 texts of 512 tokens over BERT's 30,522 terms, and a masked copy of it on top. Here:

1. the backbone and the MLM head's transform run on the batch; the decoder does not (a pre-hook on
   ``model.get_output_embeddings()`` takes its input and stops the forward);
2. the decoder's matrix product runs in blocks of about ``_BLOCK_POSITIONS`` token positions by
   ``_BLOCK_VOCAB`` terms, each max-reduced over its tokens into a (batch, vocab) accumulator. A
   block stays in cache, so this is also faster than one large product;
3. the bias, ReLU and log1p come after the max (they are monotone, so they commute with it), once
   per (text, term) instead of once per (token, term);
4. on CPUs with native bf16 the blocks are first computed in bf16 to *screen* the vocabulary: a term
   whose bf16 maximum is below ``-margin`` (a proven bound on the bf16 error) has weight 0 in fp32
   too; the few remaining terms of each text (~2x its nonzero terms) are recomputed in fp32. The
   output is the fp32 output (same terms, weights within fp32 rounding), found 1.5-1.8x faster
   (``benchmarks/bench_sparse_encode.py``).

Special tokens (``tokenizer.all_special_ids``: CLS, SEP, PAD, MASK, UNK, BOS, EOS ...) never appear
in the output.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from granite_index.encoders.hf import cpu_has_bf16, model_max_length, quiet_transformers
from granite_index.encoders.resolve import DEFAULT_SPARSE_MODEL, ModelSource, resolve_model
from granite_index.encoders.st_config import Activation, read_splade_folder
from granite_index.types import SparseVectors
from granite_index.validate import check_texts

#: Token positions per block of the vocabulary projection (more when one text is longer).
_BLOCK_POSITIONS = 512
#: Vocabulary terms per block: 512 positions x 2048 terms x 4 bytes = 4 MiB, about an L2/L3 slice.
_BLOCK_VOCAB = 2048
#: Screening margin, in units of ``||h_t|| * ||w_v||``. Rounding h and w to bf16 (unit roundoff
#: u = 2**-8), accumulating in fp32 and rounding the result to bf16 moves a dot product by at most
#: (3u + u**2 + hidden * 2**-24) * sum_i |h_i w_i| <= 3.1u ||h|| ||w|| for hidden sizes up to
#: 1024 (Cauchy-Schwarz for the last step); 4u = 2**-6 leaves headroom.
_SCREEN_MARGIN = 2.0**-6


@dataclass(frozen=True)
class SparseEncoderConfig:
    """What a sparse encoder does; saved with every collection built with it."""

    model: str
    revision: str
    activation: Activation
    max_length: int
    vocab_size: int
    query_max_terms: int | None = None
    doc_max_terms: int | None = None
    query_prefix: str = ""
    document_prefix: str = ""
    format_version: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Stop(Exception):
    """Raised by the decoder pre-hook: the forward has given what it is needed for."""


def _check_max_terms(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int or None; got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive or None; got {value}")
    return int(value)


class SparseEncoder:
    """Encode texts into SPLADE term weights (CSR) with a masked-language-model checkpoint.

    Parameters
    ----------
    model : str, path or None
        A local masked-LM folder (BERT, RoBERTa, XLM-R ...; plain Hugging Face or
        sentence-transformers ``SparseEncoder``), a Hugging Face id such as
        ``"ibm-granite/granite-embedding-30m-sparse"``, or ``None`` for the bundled SPLADE-tiny.
    revision : str, optional
        Hugging Face revision (hub models only).
    max_length : int, optional
        Truncation length in tokens; defaults to the folder's ``max_seq_length``, else the
        model's limit.
    query_max_terms, doc_max_terms : int, optional
        Keep the largest ``k`` weights per query / document (``None``: every term with weight > 0).
        The default keeps everything, so scores are the model's own (and sentence-transformers'):
        SPLADE's training already makes vectors sparse (SPLADE-tiny on SciFact: ~285 terms per
        abstract, p95 ~380, max ~490 of 30,522; ~50 per query). A budget trades score fidelity
        for index size and query speed; pruning queries pays off first (each query term is a
        postings list to walk).
    query_prefix, document_prefix : str, optional
        Text prepended to queries / documents; defaults to the folder's prompts, else ``""``.
    batch_size : int
        Texts per forward pass.
    screen : bool, optional
        Screen the vocabulary in bf16 before the exact fp32 pass (see the module docstring).
        ``None``: where the CPU computes bf16 natively. The output is the fp32 output either way.
    device : str, optional
        ``"cpu"``, ``"cuda"`` ...; default: CUDA when available.

    Examples
    --------
    >>> enc = SparseEncoder()                       # bundled SPLADE-tiny, offline
    >>> vecs = enc.encode_documents(["BM25 is a ranking function."])
    >>> enc.decode(vecs, 0)[:2]                     # doctest: +SKIP
    [('bm', 1.9), ('ranking', 1.6)]
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        max_length: int | None = None,
        query_max_terms: int | None = None,
        doc_max_terms: int | None = None,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        batch_size: int = 32,
        screen: bool | None = None,
        device: str | None = None,
    ) -> None:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        query_max_terms = _check_max_terms(query_max_terms, "query_max_terms")
        doc_max_terms = _check_max_terms(doc_max_terms, "doc_max_terms")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be an int; got {type(batch_size).__name__}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive; got {batch_size}")
        if max_length is not None and (isinstance(max_length, bool) or max_length <= 0):
            raise ValueError(f"max_length must be a positive int or None; got {max_length!r}")
        self.source: ModelSource = resolve_model(
            DEFAULT_SPARSE_MODEL if model is None else model, revision=revision
        )
        folder = read_splade_folder(self.source.path)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        native_bf16 = self.device.type == "cpu" and cpu_has_bf16()
        if screen and not native_bf16:
            raise ValueError(
                "screen=True needs a CPU with native bf16 (AVX512-BF16 or AMX) and device='cpu'"
            )
        self.screen = native_bf16 if screen is None else bool(screen)
        self.tokenizer = AutoTokenizer.from_pretrained(folder.transformer_path)
        with quiet_transformers():
            self.model = AutoModelForMaskedLM.from_pretrained(folder.transformer_path)
        self.model.eval().float().to(self.device)  # fp32 whatever the checkpoint's dtype
        self.batch_size = int(batch_size)
        limit = model_max_length(self.model.config, self.tokenizer)
        self._decoder = self._find_decoder()
        vocab_size = int(self.model.config.vocab_size)
        if self._decoder is not None:
            vocab_size = int(self._decoder.weight.shape[0])
        self.config = SparseEncoderConfig(
            model=self.source.name,
            revision=self.source.revision,
            activation=folder.activation,
            max_length=min(int(max_length or folder.max_length or limit), limit),
            vocab_size=vocab_size,
            query_max_terms=query_max_terms,
            doc_max_terms=doc_max_terms,
            query_prefix=query_prefix if query_prefix is not None else (folder.query_prefix or ""),
            document_prefix=document_prefix
            if document_prefix is not None
            else (folder.document_prefix or ""),
        )
        special = [i for i in self.tokenizer.all_special_ids if 0 <= i < vocab_size]
        self._special = torch.tensor(sorted(set(special)), dtype=torch.long, device=self.device)
        self._forward_keys = {"input_ids", "attention_mask", "token_type_ids"}
        if self._decoder is not None:
            w = self._decoder.weight.detach()
            b = self._decoder.bias
            self._w = w
            self._b = b.detach().float() if b is not None else w.new_zeros(vocab_size)
            if self.screen:
                self._w_bf16 = w.to(torch.bfloat16)
                self._w_norm = w.float().norm(dim=1)

    @classmethod
    def from_config(cls, config: dict[str, Any], **kwargs: Any) -> SparseEncoder:
        """Rebuild the encoder a collection was made with (checks the model revision)."""
        enc = cls(
            config["model"],
            max_length=config["max_length"],
            query_max_terms=config["query_max_terms"],
            doc_max_terms=config["doc_max_terms"],
            query_prefix=config["query_prefix"],
            document_prefix=config["document_prefix"],
            **kwargs,
        )
        if enc.config.revision != config["revision"]:
            raise ValueError(
                f"model {config['model']!r} is now revision {enc.config.revision}, but the "
                f"collection was encoded with {config['revision']}; its vectors would not match "
                "new queries. Rebuild the collection or restore that model version."
            )
        return enc

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size

    # ------------------------------------------------------------------ public
    def encode_queries(
        self, texts: Any, *, batch_size: int | None = None, show_progress: Any = False
    ) -> SparseVectors:
        """Encode queries (query prefix, ``query_max_terms``). Returns ``n_queries`` rows."""
        return self.encode(
            texts,
            prefix=self.config.query_prefix,
            max_terms=self.config.query_max_terms,
            batch_size=batch_size,
            show_progress=show_progress,
        )

    def encode_documents(
        self, texts: Any, *, batch_size: int | None = None, show_progress: Any = False
    ) -> SparseVectors:
        """Encode documents (document prefix, ``doc_max_terms``). Returns ``n_docs`` rows."""
        return self.encode(
            texts,
            prefix=self.config.document_prefix,
            max_terms=self.config.doc_max_terms,
            batch_size=batch_size,
            show_progress=show_progress,
        )

    def encode(
        self,
        texts: Any,
        *,
        prefix: str = "",
        max_terms: int | None = None,
        batch_size: int | None = None,
        show_progress: Any = False,
    ) -> SparseVectors:
        """Encode texts as given (plus ``prefix``), keeping at most ``max_terms`` terms per text.

        Texts are tokenised once, truncated to ``max_length``, sorted by token length and padded
        per batch. ``show_progress`` is a bool, or a tqdm bar to advance.

        Returns
        -------
        SparseVectors
            One row per text, in input order.
        """
        texts = check_texts(texts)
        max_terms = _check_max_terms(max_terms, "max_terms")
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size <= 0):
            raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
        if not texts:
            return SparseVectors.empty(self.vocab_size)
        bs = int(batch_size or self.batch_size)
        enc = self.tokenizer(
            [prefix + t for t in texts],
            truncation=True,
            max_length=self.config.max_length,
            padding=False,
        )
        lengths = np.fromiter((len(x) for x in enc["input_ids"]), dtype=np.int64, count=len(texts))
        order = np.argsort(-lengths, kind="stable")
        keys = [k for k in enc if k in self._forward_keys]
        parts = []
        own_bar = not hasattr(show_progress, "update")
        bar = (
            tqdm(total=len(texts), disable=not show_progress, unit="text", desc="encode")
            if own_bar
            else show_progress
        )
        try:
            for start in range(0, len(texts), bs):
                idx = order[start : start + bs]
                batch = self.tokenizer.pad(
                    {k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt"
                )
                weights = self._weights(batch)
                parts.append((idx, *_top_terms(weights, max_terms)))
                bar.update(len(idx))
        finally:
            if own_bar:
                bar.close()
        return _assemble(parts, len(texts), self.vocab_size)

    def decode(self, vectors: SparseVectors, row: int = 0) -> list[tuple[str, float]]:
        """Row ``row`` of ``vectors`` as (token, weight) pairs, heaviest first (ties: term id)."""
        if not isinstance(vectors, SparseVectors):
            raise TypeError(f"vectors must be SparseVectors; got {type(vectors).__name__}")
        if vectors.vocab_size != self.vocab_size:
            raise ValueError(
                f"vectors have vocab_size {vectors.vocab_size}, this encoder {self.vocab_size}"
            )
        ids, weights = vectors.row(row)
        by_weight = np.argsort(-weights, kind="stable")
        tokens = self.tokenizer.convert_ids_to_tokens(ids[by_weight].astype(np.int64).tolist())
        return list(zip(tokens, weights[by_weight].tolist()))

    # ------------------------------------------------------------------ internals
    def _find_decoder(self) -> torch.nn.Linear | None:
        """The vocabulary projection, if the logits are exactly ``decoder(its input)``.

        Checked once on a probe text; a head that does more after its last Linear (or none) makes
        the encoder run the whole model on small sub-batches instead.
        """
        decoder = self.model.get_output_embeddings()
        if not isinstance(decoder, torch.nn.Linear):
            return None
        probe = self.tokenizer(["granite index probe: sparse lexical weights"], return_tensors="pt")
        probe = {
            k: v.to(self.device)
            for k, v in probe.items()
            if k in ("input_ids", "attention_mask", "token_type_ids")
        }
        with torch.inference_mode():
            logits = self.model(**probe).logits.float()
            h = self._head_input(probe, decoder)
            mine = torch.nn.functional.linear(h.float(), decoder.weight.float(), decoder.bias)
        scale = max(1.0, float(logits.abs().max()))
        if mine.shape != logits.shape or float((mine - logits).abs().max()) > 1e-4 * scale:
            return None
        return decoder

    def _head_input(self, batch: dict[str, torch.Tensor], decoder: torch.nn.Module) -> torch.Tensor:
        """Run the model up to the decoder; returns its input (batch, seq, hidden)."""
        captured: list[torch.Tensor] = []

        def hook(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            captured.append(args[0])
            raise _Stop

        handle = decoder.register_forward_pre_hook(hook)
        try:
            self.model(**batch)
        except _Stop:
            pass
        finally:
            handle.remove()
        if not captured:
            raise RuntimeError("the model's forward never reached its output embeddings")
        return captured[0]

    def _weights(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """SPLADE weights (batch, vocab) float32 of a padded batch, special tokens zeroed."""
        batch = {k: v.to(self.device) for k, v in batch.items()}
        mask = batch["attention_mask"].bool()
        with torch.inference_mode():
            if self._decoder is None:
                top = self._max_logits_full(batch, mask)
            else:
                h = self._head_input(batch, self._decoder).float()
                # padded positions repeat the first real token: the max over tokens is unchanged
                first = mask.int().argmax(dim=1)
                h = torch.where(
                    mask[..., None], h, h[torch.arange(len(h), device=h.device), first][:, None]
                )
                top = self._max_logits_screened(h, mask) if self.screen else self._max_logits(h)
            weights = top.relu_().log1p_()
            if self.config.activation == "log1p_relu":
                weights = weights.log1p_()
            weights[:, self._special] = 0.0
        return weights

    def _max_logits(self, h: torch.Tensor) -> torch.Tensor:
        """``max_t h[:, t] @ W.T + b``: (batch, seq, hidden) → (batch, vocab), fp32, blocked."""
        return self._blocked_max(h, self._w) + self._b

    def _blocked_max(self, h: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``max_t h[:, t] @ w.T``, computed in blocks: (batch, vocab).

        ``h`` is (batch, seq, hidden) and ``w`` (vocab, hidden), of one dtype, which the result has.
        """
        n, seq, _ = h.shape
        vocab = w.shape[0]
        out = torch.empty(n, vocab, dtype=h.dtype, device=h.device)
        rows = max(1, _BLOCK_POSITIONS // seq)
        for v0 in range(0, vocab, _BLOCK_VOCAB):
            wt = w[v0 : v0 + _BLOCK_VOCAB].t()
            for r0 in range(0, n, rows):
                out[r0 : r0 + rows, v0 : v0 + _BLOCK_VOCAB] = torch.matmul(
                    h[r0 : r0 + rows], wt
                ).amax(dim=1)
        return out

    def _max_logits_screened(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """As :meth:`_max_logits` where the max is > 0; elsewhere a value <= 0 (weight 0)."""
        approx = self._blocked_max(h.to(torch.bfloat16), self._w_bf16).float() + self._b
        margin = h.norm(dim=-1).amax(dim=1, keepdim=True) * (_SCREEN_MARGIN * self._w_norm)
        candidates = approx.add_(margin) > 0
        out = torch.zeros(approx.shape, dtype=torch.float32, device=h.device)
        for i in range(len(h)):
            terms = candidates[i].nonzero().squeeze(1)
            if len(terms):
                tokens = h[i][mask[i]]
                out[i, terms] = (tokens @ self._w[terms].t()).amax(dim=0) + self._b[terms]
        return out

    def _max_logits_full(self, batch: dict[str, torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """Fallback for heads that are not a plain Linear: the whole model on small sub-batches."""
        n, seq = mask.shape
        rows = max(1, _BLOCK_POSITIONS // seq)
        parts = []
        for r0 in range(0, n, rows):
            sub = {k: v[r0 : r0 + rows] for k, v in batch.items()}
            logits = self.model(**sub).logits.float()
            parts.append(logits.masked_fill_(~mask[r0 : r0 + rows, :, None], -torch.inf).amax(1))
        return torch.cat(parts)


def _top_terms(
    weights: torch.Tensor, max_terms: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row the ``max_terms`` largest weights > 0, term ids ascending.

    Returns counts int64 (n,), indices int64 (nnz,) and values float32 (nnz,), rows concatenated.
    """
    n, vocab = weights.shape
    if max_terms is None or max_terms >= vocab:
        nz = (weights > 0).nonzero()  # row-major: term ids ascend within a row
        counts = torch.bincount(nz[:, 0], minlength=n)
        values = weights[nz[:, 0], nz[:, 1]]
        indices = nz[:, 1]
    else:
        values, indices = torch.topk(weights, max_terms, dim=1, sorted=False)
        indices, perm = indices.sort(dim=1)
        values = values.gather(1, perm)
        keep = values > 0
        counts = keep.sum(dim=1)
        indices, values = indices[keep], values[keep]
    return counts.cpu().numpy(), indices.cpu().numpy(), values.cpu().numpy()


def _assemble(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], n: int, vocab_size: int
) -> SparseVectors:
    """Batches in encoding order ``(rows, counts, indices, values)`` → CSR in input order."""
    rows = np.concatenate([p[0] for p in parts]).astype(np.int64)
    counts = np.concatenate([p[1] for p in parts]).astype(np.int64)
    indices = np.concatenate([p[2] for p in parts])
    values = np.concatenate([p[3] for p in parts])
    per_row = np.zeros(n, np.int64)
    per_row[rows] = counts
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(per_row, out=indptr[1:])
    src_start = np.cumsum(counts) - counts
    dest = np.repeat(indptr[rows] - src_start, counts) + np.arange(len(indices), dtype=np.int64)
    out_indices = np.empty(len(indices), np.uint32)
    out_values = np.empty(len(values), np.float32)
    out_indices[dest] = indices
    out_values[dest] = values
    return SparseVectors(indptr, out_indices, out_values, int(vocab_size))
