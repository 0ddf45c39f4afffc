"""Trainable models and the folders they save: a dense bi-encoder, a SPLADE model, layer truncation.

Each model reads the same folders the engine reads (plain Hugging Face, sentence-transformers,
``bundled:`` names) and saves a sentence-transformers layout that
:class:`granite_index.DenseEncoder` / :class:`granite_index.SparseEncoder` load back to the same
vectors:

* dense: ``modules.json`` (Transformer → Pooling → Normalize), ``1_Pooling/config.json``,
  ``sentence_bert_config.json``, ``config_sentence_transformers.json``, the backbone's
  ``config.json`` + ``model.safetensors`` and the tokenizer, all at the top of the folder;
* sparse: ``modules.json`` (MLMTransformer → SpladePooling), ``1_SpladePooling/config.json`` and
  the masked LM's files.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from granite_index.encoders.hf import model_max_length, quiet_transformers
from granite_index.encoders.pooling import POOLERS
from granite_index.encoders.resolve import DEFAULT_SPARSE_MODEL, resolve_model
from granite_index.encoders.st_config import read_folder_config, read_splade_folder
from granite_index.validate import check_texts

__all__ = ["BiEncoder", "SpladeModel", "truncate_layers"]

FORWARD_KEYS = ("input_ids", "attention_mask", "token_type_ids")
#: Token positions per block of the SPLADE vocabulary projection: 2048 x 30,522 fp32 = 250 MB.
_BLOCK_POSITIONS = 2048
_ST_VERSION = {"__version__": {"sentence_transformers": "3.0.0"}}


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def _check_length(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an int >= 1 or None; got {value!r}")
    return int(value)


def _prompts_config(query_prefix: str, document_prefix: str, similarity: str) -> dict[str, Any]:
    prompts = {k: v for k, v in (("query", query_prefix), ("document", document_prefix)) if v}
    return {**_ST_VERSION, "prompts": prompts, "similarity_fn_name": similarity}


class _TextModel(torch.nn.Module):
    """Shared tokenisation and card writing of :class:`BiEncoder` and :class:`SpladeModel`."""

    tokenizer: Any
    max_length: int

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def tokenize(self, texts: Any, max_length: int | None = None) -> dict[str, Tensor]:
        """Tokenise, truncate to ``min(max_length, self.max_length)`` and pad: tensors (n, seq)."""
        texts = check_texts(texts)
        length = min(_check_length(max_length, "max_length") or self.max_length, self.max_length)
        batch = self.tokenizer(
            texts, truncation=True, max_length=length, padding=True, return_tensors="pt"
        )
        return {k: v.to(self.device) for k, v in batch.items() if k in FORWARD_KEYS}

    def encode(self, texts: Any, max_length: int | None = None, *, prefix: str = "") -> Tensor:
        """Vectors of ``prefix + text`` for each text, with gradients: float32 (n, dim)."""
        return self(self.tokenize([prefix + t for t in check_texts(texts)], max_length))

    @staticmethod
    def _out_dir(out_dir: str | os.PathLike[str], card: Any) -> Path:
        """Check ``card`` before anything is written; create and return the folder."""
        if card is not None and not isinstance(card, str):
            raise TypeError(f"card must be a str (markdown) or None; got {type(card).__name__}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return out

    @staticmethod
    def _write_card(out: Path, card: str | None) -> None:
        if card is not None:
            (out / "README.md").write_text(card, encoding="utf-8")


class BiEncoder(_TextModel):
    """Dense bi-encoder for training: backbone → CLS or mean pooling → L2 normalisation.

    Parameters
    ----------
    model : str, path or None
        A local folder (plain Hugging Face or sentence-transformers), a Hugging Face id, or
        ``None`` for the bundled all-MiniLM-L6-v2.
    pooling : {"cls", "mean"}, optional
        Default: the folder's ``1_Pooling`` config, else ``"cls"`` (Granite).
    normalize : bool
        L2-normalise the output (cosine similarity = inner product).
    max_length : int, optional
        Longest input in tokens; default: the folder's ``max_seq_length``, else the model's limit.

    Attributes
    ----------
    backbone : transformers.PreTrainedModel
    tokenizer : transformers.PreTrainedTokenizerBase
    query_prefix, document_prefix : str
        The folder's prompts (``""`` when none), kept when saving.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        pooling: str | None = None,
        normalize: bool = True,
        max_length: int | None = None,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        super().__init__()
        if pooling not in (None, "", "cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean'; got {pooling!r}")
        max_length = _check_length(max_length, "max_length")
        source = resolve_model(model)
        folder = read_folder_config(source.path)
        self.source = source.name
        self.tokenizer = AutoTokenizer.from_pretrained(folder.transformer_path)
        with quiet_transformers():
            self.backbone = AutoModel.from_pretrained(folder.transformer_path).float()
        self.pooling = pooling or folder.pooling or "cls"
        self.normalize = bool(normalize)
        limit = model_max_length(self.backbone.config, self.tokenizer)
        self.max_length = min(max_length or folder.max_length or limit, limit)
        self.query_prefix = folder.query_prefix or ""
        self.document_prefix = folder.document_prefix or ""

    @property
    def dim(self) -> int:
        return int(self.backbone.config.hidden_size)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Embeddings of a tokenised batch: float32 (n, dim)."""
        inputs = {k: batch[k] for k in FORWARD_KEYS if k in batch}
        hidden = self.backbone(**inputs).last_hidden_state
        emb = POOLERS[self.pooling](hidden.float(), batch["attention_mask"])
        return torch.nn.functional.normalize(emb, p=2, dim=-1) if self.normalize else emb

    def save(self, out_dir: str | os.PathLike[str], card: str | None = None) -> Path:
        """Write a sentence-transformers folder that ``granite_index.DenseEncoder`` loads.

        Parameters
        ----------
        out_dir : str or path
            Created if missing; files of the same names are overwritten.
        card : str, optional
            Markdown written to ``README.md``.

        Returns
        -------
        pathlib.Path
        """
        out = self._out_dir(out_dir, card)
        with quiet_transformers():
            self.backbone.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
        ]
        if self.normalize:
            modules.append(
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                }
            )
            (out / "2_Normalize").mkdir(exist_ok=True)
        _write_json(out / "modules.json", modules)
        _write_json(
            out / "1_Pooling" / "config.json",
            {
                "word_embedding_dimension": self.dim,
                "pooling_mode_cls_token": self.pooling == "cls",
                "pooling_mode_mean_tokens": self.pooling == "mean",
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            },
        )
        _write_json(
            out / "sentence_bert_config.json",
            {"max_seq_length": self.max_length, "do_lower_case": False},
        )
        _write_json(
            out / "config_sentence_transformers.json",
            _prompts_config(self.query_prefix, self.document_prefix, "cosine"),
        )
        self._write_card(out, card)
        return out


class SpladeModel(_TextModel):
    """SPLADE for training: term weights ``max_t log(1 + ReLU(logits[t]))`` over real tokens.

    Special tokens (CLS, SEP, PAD, MASK, UNK ...) get weight 0, as in the engine's encoder.

    Parameters
    ----------
    model : str, path or None
        A masked-LM folder (plain or sentence-transformers ``SparseEncoder``), a Hugging Face
        id, or ``None`` for the bundled SPLADE-tiny.
    max_length : int, optional
        Longest input in tokens; default: the folder's ``max_seq_length``, else the model's limit.

    Notes
    -----
    Memory: the logits are computed in blocks of token positions with activation
    checkpointing (see :meth:`forward`), never as one (batch, seq, vocab) tensor.
    """

    def __init__(
        self, model: str | os.PathLike[str] | None = None, *, max_length: int | None = None
    ) -> None:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        super().__init__()
        max_length = _check_length(max_length, "max_length")
        source = resolve_model(DEFAULT_SPARSE_MODEL if model is None else model)
        folder = read_splade_folder(source.path)
        self.source = source.name
        self.tokenizer = AutoTokenizer.from_pretrained(folder.transformer_path)
        with quiet_transformers():
            self.mlm = AutoModelForMaskedLM.from_pretrained(folder.transformer_path).float()
        self.activation = folder.activation
        limit = model_max_length(self.mlm.config, self.tokenizer)
        self.max_length = min(max_length or folder.max_length or limit, limit)
        self.query_prefix = folder.query_prefix or ""
        self.document_prefix = folder.document_prefix or ""
        head = self.mlm.get_output_embeddings()
        vocab = int(head.weight.shape[0]) if head is not None else int(self.mlm.config.vocab_size)
        keep = torch.ones(vocab)
        special = [i for i in self.tokenizer.all_special_ids if 0 <= i < vocab]
        keep[special] = 0.0
        self.register_buffer("keep", keep, persistent=False)

    @property
    def vocab_size(self) -> int:
        return int(self.keep.shape[0])

    def _head(self) -> torch.nn.Module | None:
        """The MLM head (transform + vocabulary projection) of BERT / RoBERTa-style models."""
        for name in ("cls", "lm_head"):
            head = getattr(self.mlm, name, None)
            if isinstance(head, torch.nn.Module):
                return head
        return None

    def _max_logits(self, h: Tensor, pad: Tensor) -> Tensor:
        """``max_t head(h)[:, t]`` over real tokens: (rows, seq, hidden) → (rows, vocab)."""
        logits = self._head()(h).float()  # type: ignore[misc]
        return logits.masked_fill(pad[..., None], float("-inf")).amax(dim=1)

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Term weights of a tokenised batch: float32 (n, vocab_size), >= 0.

        The head runs on blocks of about ``_BLOCK_POSITIONS`` token positions under activation
        checkpointing, so a (block, vocab) slice of the logits is alive at a time, in the
        forward and in the backward pass (which recomputes it).
        """
        inputs = {k: batch[k] for k in FORWARD_KEYS if k in batch}
        pad = ~batch["attention_mask"].bool()
        if self._head() is None:  # another head layout: the plain (batch, seq, vocab) way
            logits = self.mlm(**inputs).logits.float()
            top = logits.masked_fill(pad[..., None], float("-inf")).amax(dim=1)
        else:
            h = self.mlm.base_model(**inputs).last_hidden_state
            rows = max(1, _BLOCK_POSITIONS // h.shape[1])
            parts = []
            for r in range(0, len(h), rows):
                if torch.is_grad_enabled():
                    parts.append(
                        checkpoint(
                            self._max_logits,
                            h[r : r + rows],
                            pad[r : r + rows],
                            use_reentrant=False,
                        )
                    )
                else:
                    parts.append(self._max_logits(h[r : r + rows], pad[r : r + rows]))
            top = torch.cat(parts)
        weights = torch.log1p(torch.relu(top))  # log1p ∘ relu is monotone: max first is the same
        if self.activation == "log1p_relu":
            weights = torch.log1p(weights)
        return weights * self.keep

    def save(self, out_dir: str | os.PathLike[str], card: str | None = None) -> Path:
        """Write a sentence-transformers sparse folder that ``granite_index.SparseEncoder`` loads.

        Parameters
        ----------
        out_dir : str or path
            Created if missing; files of the same names are overwritten.
        card : str, optional
            Markdown written to ``README.md``.
        """
        out = self._out_dir(out_dir, card)
        with quiet_transformers():
            self.mlm.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        kind = "sentence_transformers.sparse_encoder.modules."
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": kind + "MLMTransformer"},
            {"idx": 1, "name": "1", "path": "1_SpladePooling", "type": kind + "SpladePooling"},
        ]
        _write_json(out / "modules.json", modules)
        _write_json(
            out / "1_SpladePooling" / "config.json",
            {
                "pooling_strategy": "max",
                "activation_function": self.activation,
                "embedding_dimension": self.vocab_size,
            },
        )
        _write_json(
            out / "sentence_bert_config.json",
            {"max_seq_length": self.max_length, "do_lower_case": False},
        )
        config = _prompts_config(self.query_prefix, self.document_prefix, "dot")
        _write_json(
            out / "config_sentence_transformers.json", {**config, "model_type": "SparseEncoder"}
        )
        self._write_card(out, card)
        return out


_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "*.ckpt")


def _layer_list(model: torch.nn.Module, n_layers: int) -> tuple[torch.nn.Module, str]:
    """The ``ModuleList`` of transformer blocks: (its parent, its attribute name)."""
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers and name:
            parent_name, _, attr = name.rpartition(".")
            return model.get_submodule(parent_name) if parent_name else model, attr
    raise ValueError(f"found no list of {n_layers} transformer layers in {type(model).__name__}")


def truncate_layers(
    src: str | os.PathLike[str] | None,
    n_layers: int,
    out: str | os.PathLike[str],
    *,
    layers: Sequence[int] | None = None,
) -> Path:
    """Copy a model keeping ``n_layers`` of its transformer layers (a student's initialisation).

    Parameters
    ----------
    src : str, path or None
        A Hugging Face or sentence-transformers folder, a Hugging Face id, or ``None`` for the
        bundled all-MiniLM-L6-v2.
    n_layers : int
        Layers to keep, ``1 <= n_layers <= `` the model's count.
    out : str or path
        A new or empty folder; gets the same layout as ``src`` (pooling, tokenizer ...).
    layers : sequence of int, optional
        Which layers (0-based, ascending); default ``n_layers`` evenly spaced from the first to
        the last (6 → 3: layers 0, 2, 5).

    Returns
    -------
    pathlib.Path
        ``out``, loadable with :class:`BiEncoder` or ``granite_index.DenseEncoder``.
    """
    import transformers

    source = resolve_model(src)
    folder = read_folder_config(source.path).transformer_path
    config = transformers.AutoConfig.from_pretrained(folder)
    total = int(config.num_hidden_layers)
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or not 1 <= n_layers <= total:
        raise ValueError(f"n_layers must be an int in [1, {total}]; got {n_layers!r}")
    if layers is None:
        layers = [int(i) for i in np.linspace(0, total - 1, n_layers).round()]
    layers = [int(i) for i in layers]
    if len(layers) != n_layers or layers != sorted(set(layers)) or not 0 <= layers[0]:
        raise ValueError(f"layers must be {n_layers} ascending, distinct ids; got {layers}")
    if layers[-1] >= total:
        raise ValueError(f"layers must be < {total}; got {layers}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"out {out} exists and is not an empty folder")
    arch = (getattr(config, "architectures", None) or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    with quiet_transformers():
        model = (cls or transformers.AutoModel).from_pretrained(folder)
    parent, attr = _layer_list(model, total)
    setattr(parent, attr, torch.nn.ModuleList([getattr(parent, attr)[i] for i in layers]))
    model.config.num_hidden_layers = n_layers
    shutil.copytree(
        source.path,
        out,
        ignore=shutil.ignore_patterns(*_WEIGHT_FILES, "README.md", "checkpoints", ".git", "onnx"),
        dirs_exist_ok=True,
    )
    with quiet_transformers():
        model.save_pretrained(out / folder.relative_to(source.path))
    return out
