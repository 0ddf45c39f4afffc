"""RetroMAE (Xiao et al., 2022): retrieval-oriented pre-training by masked auto-encoding.

The encoder (a BERT / RoBERTa masked LM) reads a lightly masked text (15-30% of the tokens) and
learns masked-token prediction (MLM). Its ``[CLS]`` state is the sentence embedding. A one-layer
transformer decoder then reads a heavily masked copy of the same text (50-70%) whose first
position is replaced by that ``[CLS]`` vector, and must reconstruct the masked tokens: what the
copy lacks has to travel through the one vector. Both reconstruction losses share the encoder's
MLM head and are summed.

This is the basic decoder of the paper (full self-attention over the masked copy), not its
"enhanced decoding" with position-specific attention masks. Masked tokens are always replaced
by the mask token (no 80/10/10 split).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from granite_index.encoders.hf import model_max_length, quiet_transformers
from granite_index.encoders.resolve import resolve_model
from granite_index.encoders.st_config import read_folder_config
from granite_index.validate import check_texts

__all__ = ["RetroMAE", "mask_tokens"]


def _check_ratio(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"{name} must be a number in (0, 1); got {value!r}")
    return float(value)


def mask_tokens(
    input_ids: Tensor, maskable: Tensor, ratio: float, mask_id: int
) -> tuple[Tensor, Tensor]:
    """Mask a random ``ratio`` of the maskable positions (at least one per row that has any).

    Parameters
    ----------
    input_ids : torch.Tensor of int64, shape (n, seq)
    maskable : torch.Tensor of bool, shape (n, seq)
        Real, non-special tokens.
    ratio : float
        Share of maskable positions replaced, in (0, 1). Draws from torch's global generator.
    mask_id : int
        The tokenizer's mask token id.

    Returns
    -------
    masked_ids : torch.Tensor of int64, shape (n, seq)
    selected : torch.Tensor of bool, shape (n, seq)
        The masked positions (where the loss is computed).
    """
    ratio = _check_ratio(ratio, "ratio")
    noise = torch.rand(input_ids.shape, device=input_ids.device)
    selected = (noise < ratio) & maskable
    # a row with maskable tokens but none drawn masks its most likely one, so no row is skipped
    empty = maskable.any(dim=1) & ~selected.any(dim=1)
    if empty.any():
        first = noise.masked_fill(~maskable, 2.0).argmin(dim=1)
        selected[empty, first[empty]] = True
    return input_ids.masked_fill(selected, mask_id), selected


class RetroMAE(torch.nn.Module):
    """Encoder (masked LM) + one-layer decoder, trained by masked auto-encoding.

    Parameters
    ----------
    model : str, path or None
        A BERT / RoBERTa checkpoint (with or without an MLM head: a missing head starts random),
        a Hugging Face id, or ``None`` for the bundled all-MiniLM-L6-v2.
    encoder_mask_ratio : float
        Share of tokens masked for the encoder (the paper: 0.15-0.3).
    decoder_mask_ratio : float
        Share of tokens masked in the decoder's copy (the paper: 0.5-0.7).
    max_length : int, optional
        Longest input in tokens; default the model's limit.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        encoder_mask_ratio: float = 0.3,
        decoder_mask_ratio: float = 0.5,
        max_length: int | None = None,
    ) -> None:
        from transformers import AutoModelForMaskedLM, AutoTokenizer

        super().__init__()
        self.encoder_mask_ratio = _check_ratio(encoder_mask_ratio, "encoder_mask_ratio")
        self.decoder_mask_ratio = _check_ratio(decoder_mask_ratio, "decoder_mask_ratio")
        source = resolve_model(model)
        folder = read_folder_config(source.path)
        #: the start folder's inference length, kept by :meth:`save` for the next stage
        self.folder_max_length = folder.max_length
        self.source = source.name
        self.tokenizer = AutoTokenizer.from_pretrained(folder.transformer_path)
        if self.tokenizer.mask_token_id is None:
            raise ValueError(f"the tokenizer of {source.name} has no mask token")
        with quiet_transformers():
            self.mlm = AutoModelForMaskedLM.from_pretrained(folder.transformer_path).float()
        cfg = self.mlm.config
        self.head = _mlm_head(self.mlm)
        self.decoder = torch.nn.TransformerEncoderLayer(
            d_model=cfg.hidden_size,
            nhead=cfg.num_attention_heads,
            dim_feedforward=cfg.intermediate_size,
            dropout=getattr(cfg, "hidden_dropout_prob", 0.1),
            activation="gelu",
            layer_norm_eps=getattr(cfg, "layer_norm_eps", 1e-12),
            batch_first=True,
        )
        limit = model_max_length(cfg, self.tokenizer)
        self.max_length = min(int(max_length or limit), limit)

    def tokenize(self, texts: Any, max_length: int | None = None) -> dict[str, Tensor]:
        """Tokenise with special-token masks: ``input_ids``, ``attention_mask``, ``maskable``."""
        texts = check_texts(texts)
        length = min(int(max_length or self.max_length), self.max_length)
        enc = self.tokenizer(
            texts,
            truncation=True,
            max_length=length,
            padding=True,
            return_special_tokens_mask=True,
            return_tensors="pt",
        )
        device = next(self.parameters()).device
        mask = enc["attention_mask"].bool() & ~enc["special_tokens_mask"].bool()
        return {
            "input_ids": enc["input_ids"].to(device),
            "attention_mask": enc["attention_mask"].to(device),
            "maskable": mask.to(device),
        }

    def _reconstruction_loss(self, hidden: Tensor, selected: Tensor, targets: Tensor) -> Tensor:
        """Cross-entropy of the MLM head at the selected positions only (mean over them)."""
        logits = self.head(hidden[selected]).float()
        return torch.nn.functional.cross_entropy(logits, targets[selected])

    def forward(self, texts: Any, max_length: int | None = None) -> tuple[Tensor, dict[str, float]]:
        """Loss of one batch of texts: ``encoder MLM + decoder reconstruction``.

        Returns
        -------
        loss : torch.Tensor, shape ()
        parts : dict
            ``encoder_loss`` and ``decoder_loss`` as floats, for logging.
        """
        batch = self.tokenize(texts, max_length)
        ids, attn, maskable = batch["input_ids"], batch["attention_mask"], batch["maskable"]
        if not maskable.any():
            raise ValueError("no text in the batch has a token to mask")
        mask_id = int(self.tokenizer.mask_token_id)
        enc_ids, enc_sel = mask_tokens(ids, maskable, self.encoder_mask_ratio, mask_id)
        hidden = self.mlm.base_model(input_ids=enc_ids, attention_mask=attn).last_hidden_state
        enc_loss = self._reconstruction_loss(hidden, enc_sel, ids)
        dec_ids, dec_sel = mask_tokens(ids, maskable, self.decoder_mask_ratio, mask_id)
        dec_emb = self.mlm.base_model.embeddings(input_ids=dec_ids)
        dec_in = torch.cat([hidden[:, :1], dec_emb[:, 1:]], dim=1)  # [CLS] vector at position 0
        dec_out = self.decoder(dec_in, src_key_padding_mask=~attn.bool())
        dec_loss = self._reconstruction_loss(dec_out, dec_sel, ids)
        parts = {"encoder_loss": float(enc_loss.detach()), "decoder_loss": float(dec_loss.detach())}
        return enc_loss + dec_loss, parts

    def save(self, out_dir: str | os.PathLike[str], card: str | None = None) -> Path:
        """Save the encoder only (masked LM + tokenizer): a folder :class:`BiEncoder` loads.

        The decoder is dropped; the MLM head is kept, so the folder can also start SPLADE.
        """
        if card is not None and not isinstance(card, str):
            raise TypeError(f"card must be a str (markdown) or None; got {type(card).__name__}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.mlm.save_pretrained(out)
        self.tokenizer.save_pretrained(out)
        if self.folder_max_length:  # keep the start model's inference length (e.g. 256)
            config = {"max_seq_length": int(self.folder_max_length), "do_lower_case": False}
            (out / "sentence_bert_config.json").write_text(json.dumps(config), encoding="utf-8")
        if card is not None:
            (out / "README.md").write_text(card, encoding="utf-8")
        return out


def _mlm_head(mlm: torch.nn.Module) -> torch.nn.Module:
    """The whole MLM head (transform + vocabulary projection) of a BERT / RoBERTa masked LM."""
    for name in ("cls", "lm_head"):
        head = getattr(mlm, name, None)
        if isinstance(head, torch.nn.Module):
            return head
    raise ValueError(
        f"{type(mlm).__name__} has no 'cls' or 'lm_head' MLM head; RetroMAE supports BERT- and "
        "RoBERTa-style masked LMs"
    )
