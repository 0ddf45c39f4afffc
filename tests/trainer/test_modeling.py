"""BiEncoder / SpladeModel save folders the engine loads to the same vectors; layer truncation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from granite_index import DenseEncoder, SparseEncoder
from trainer.modeling import BiEncoder, SpladeModel, truncate_layers

TEXTS = ["the cat sat on the mat", "BM25 ranks documents by term frequency.", "a", "x " * 200]


@pytest.mark.parametrize("arch", ["bert", "roberta"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_bi_encoder_round_trip_through_dense_encoder(
    arch, pooling, bert_mlm, roberta_mlm, tmp_path
):
    model = BiEncoder(bert_mlm if arch == "bert" else roberta_mlm, pooling=pooling).eval()
    model.max_length = 48
    with torch.no_grad():
        ours = model.encode(TEXTS).numpy()
    assert ours.shape == (len(TEXTS), 32) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    model.save(tmp_path / "out", card="# card\n")
    enc = DenseEncoder(tmp_path / "out", precision="fp32", device="cpu")
    assert enc.config.pooling == pooling and enc.config.max_length == 48
    np.testing.assert_allclose(enc.encode(TEXTS), ours, atol=1e-5)
    assert (tmp_path / "out" / "README.md").read_text() == "# card\n"
    modules = json.loads((tmp_path / "out" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]


def test_bi_encoder_reads_sentence_transformers_folder(bert_mlm, tmp_path):
    """Pooling, length and prompts of a saved folder come back; sentence-transformers agrees."""
    from sentence_transformers import SentenceTransformer

    model = BiEncoder(bert_mlm, pooling="mean").eval()
    model.query_prefix, model.document_prefix = "query: ", "passage: "
    model.save(tmp_path / "a")
    again = BiEncoder(tmp_path / "a").eval()
    assert (again.pooling, again.query_prefix, again.document_prefix) == (
        "mean",
        "query: ",
        "passage: ",
    )
    with torch.no_grad():
        ours = again.encode(TEXTS[:3]).numpy()
    st = SentenceTransformer(str(tmp_path / "a"), device="cpu")
    np.testing.assert_allclose(st.encode(TEXTS[:3]), ours, atol=1e-5)


def test_bi_encoder_bad_input(bert_mlm, tmp_path):
    with pytest.raises(ValueError, match="pooling"):
        BiEncoder(bert_mlm, pooling="max")
    with pytest.raises(ValueError, match="max_length"):
        BiEncoder(bert_mlm, max_length=0)
    model = BiEncoder(bert_mlm)
    with pytest.raises(ValueError, match="empty"):
        model.encode(["ok", " "])
    with pytest.raises(TypeError, match="card"):
        model.save(tmp_path / "never", card=3)  # type: ignore[arg-type]
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_splade_round_trip_through_sparse_encoder(arch, bert_mlm, roberta_mlm, tmp_path):
    model = SpladeModel(bert_mlm if arch == "bert" else roberta_mlm).eval()
    with torch.no_grad():
        ours = model.encode(TEXTS).numpy()
    special = model.tokenizer.all_special_ids
    assert (ours >= 0).all() and (ours[:, special] == 0).all()
    assert 0 < (ours > 0).sum(axis=1).min() < ours.shape[1]
    model.save(tmp_path / "sp")
    enc = SparseEncoder(tmp_path / "sp", screen=False, device="cpu")
    theirs = enc.encode(TEXTS).tocsr().toarray()
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)
    assert ((theirs > 0) == (ours > 0)).all()


def test_truncate_layers_keeps_the_chosen_layers(bert_mlm, tmp_path):
    src = BiEncoder(bert_mlm)
    out = truncate_layers(bert_mlm, 1, tmp_path / "one", layers=[1])
    student = BiEncoder(out)
    assert student.backbone.config.num_hidden_layers == 1
    assert len(student.backbone.encoder.layer) == 1
    a = src.backbone.encoder.layer[1].state_dict()
    b = student.backbone.encoder.layer[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    DenseEncoder(out, device="cpu").encode(["loads in the engine"])


def test_truncate_layers_default_spacing_and_errors(tmp_path):
    out = truncate_layers(None, 3, tmp_path / "mini3")  # bundled 6-layer MiniLM: layers 0, 2, 5
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 3 and (out / "1_Pooling" / "config.json").is_file()
    assert not (out / "README.md").exists()
    with pytest.raises(ValueError, match="n_layers"):
        truncate_layers(None, 7, tmp_path / "x")
    with pytest.raises(ValueError, match="layers"):
        truncate_layers(None, 2, tmp_path / "y", layers=[3, 1])
    with pytest.raises(FileExistsError):
        truncate_layers(None, 3, out)


def test_splade_blocked_forward_matches_the_plain_one_with_gradients(bert_mlm, monkeypatch):
    import trainer.modeling as modeling

    model = SpladeModel(bert_mlm).eval()  # eval: no dropout, so two passes agree
    batch = model.tokenize(TEXTS[:3], 16)
    coef = torch.rand(model.vocab_size, generator=torch.Generator().manual_seed(0))

    def grads(blocked: bool):
        model.zero_grad()
        if blocked:
            monkeypatch.setattr(modeling, "_BLOCK_POSITIONS", 8)  # 1 text per block
        else:
            monkeypatch.setattr(SpladeModel, "_head", lambda self: None)
        out = model(batch)
        (out * coef).sum().backward()
        monkeypatch.undo()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    out_a, grad_a = grads(True)
    out_b, grad_b = grads(False)
    torch.testing.assert_close(out_a, out_b)
    for name in grad_a:
        torch.testing.assert_close(grad_a[name], grad_b[name], rtol=1e-4, atol=1e-5)
