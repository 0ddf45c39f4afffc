"""RetroMAE: masking, a loss that falls on repeated sentences, an encoder that BiEncoder loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainer.modeling import BiEncoder
from trainer.retromae import RetroMAE, mask_tokens

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "dense retrieval encodes queries and passages into vectors",
    "sparse retrieval weighs the terms of a vocabulary",
    "a masked auto encoder reconstructs its input",
]


def test_mask_tokens_ratio_and_maskable_only():
    torch.manual_seed(0)
    ids = torch.arange(4000).view(4, 1000)
    maskable = torch.ones(4, 1000, dtype=torch.bool)
    maskable[:, :10] = False
    maskable[3] = False  # a row with nothing to mask
    masked, sel = mask_tokens(ids, maskable, 0.3, mask_id=-7)
    assert not sel[:, :10].any() and not sel[3].any()
    assert abs(sel[:3].float().mean().item() - 0.3 * 990 / 1000) < 0.03
    assert (masked[sel] == -7).all() and torch.equal(masked[~sel], ids[~sel])
    one = torch.zeros(1, 5, dtype=torch.bool)
    one[0, 2] = True  # a single maskable token is always masked
    assert mask_tokens(ids[:1, :5], one, 0.01, mask_id=0)[1][0, 2]
    with pytest.raises(ValueError, match="ratio"):
        mask_tokens(ids, maskable, 1.0, mask_id=0)


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_loss_is_finite_and_decreases(arch, bert_mlm, roberta_mlm, tmp_path):
    torch.manual_seed(0)
    model = RetroMAE(bert_mlm if arch == "bert" else roberta_mlm, encoder_mask_ratio=0.15)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(20):
        loss, parts = model(SENTENCES)
        assert torch.isfinite(loss) and set(parts) == {"encoder_loss", "decoder_loss"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    model.save(tmp_path / "enc")
    assert not any("decoder" in p.name for p in (tmp_path / "enc").iterdir())
    enc = BiEncoder(tmp_path / "enc")  # a plain masked-LM folder: CLS pooling
    assert enc.pooling == "cls" and enc.encode(["loads"]).shape == (1, 32)


def test_bad_options(bert_mlm):
    with pytest.raises(ValueError, match="encoder_mask_ratio"):
        RetroMAE(bert_mlm, encoder_mask_ratio=0.0)
    with pytest.raises(ValueError, match="decoder_mask_ratio"):
        RetroMAE(bert_mlm, decoder_mask_ratio=1.5)


def test_saved_encoder_keeps_the_start_models_inference_length(bert_mlm, tmp_path):
    import json
    import shutil

    start = tmp_path / "start"
    shutil.copytree(bert_mlm, start)
    (start / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64}))
    RetroMAE(start).save(tmp_path / "enc")
    assert BiEncoder(tmp_path / "enc").max_length == 64
    RetroMAE(bert_mlm).save(tmp_path / "plain")  # no length declared: none written
    assert not (tmp_path / "plain" / "sentence_bert_config.json").exists()
