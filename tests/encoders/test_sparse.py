"""SparseEncoder on tiny random masked LMs, against a naive full-logits reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from granite_index.encoders.hf import cpu_has_bf16
from granite_index.encoders.sparse import SparseEncoder, SparseVectors
from granite_index.encoders.st_config import read_splade_folder

TEXTS = [
    "a short one",
    "a much longer text about retrieval, inverted indexes and learned sparse vectors " * 3,
    "middle sized sentence for the encoder",
    "x",
    "BM25, SPLADE and dense retrieval: a comparison on SciFact",
]
SCREENS = [
    False,
    pytest.param(True, marks=pytest.mark.skipif(not cpu_has_bf16(), reason="no bf16")),
]


def _make_mlm(folder: Path, arch: str) -> Path:
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForMaskedLM,
        RobertaConfig,
        RobertaForMaskedLM,
        XLMRobertaConfig,
        XLMRobertaForMaskedLM,
    )

    from granite_index.encoders import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(None).path)  # bundled WordPiece vocabulary
    common = dict(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        initializer_range=0.2,  # logits of a few units, like a trained model's, not ~0
    )
    torch.manual_seed(0)
    if arch == "bert":
        model = BertForMaskedLM(BertConfig(max_position_embeddings=128, **common))
    else:  # RoBERTa / XLM-R: position ids start after the padding index
        cls, cfg = {
            "roberta": (RobertaForMaskedLM, RobertaConfig),
            "xlmr": (XLMRobertaForMaskedLM, XLMRobertaConfig),
        }[arch]
        model = cls(cfg(max_position_embeddings=130, pad_token_id=tok.pad_token_id, **common))
    with torch.no_grad():  # a non-zero decoder bias, so that the test sees where it is added
        model.get_output_embeddings().bias.normal_(-1.0, 0.5)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module", params=["bert", "roberta", "xlmr"])
def mlm(request, tmp_path_factory) -> Path:
    return _make_mlm(tmp_path_factory.mktemp(f"mlm-{request.param}"), request.param)


@pytest.fixture(scope="module")
def bert_mlm(tmp_path_factory) -> Path:
    return _make_mlm(tmp_path_factory.mktemp("mlm-bert"), "bert")


@pytest.fixture(scope="module")
def bert_encoder(bert_mlm) -> SparseEncoder:
    return SparseEncoder(bert_mlm, screen=False, device="cpu")


def naive(enc: SparseEncoder, texts: list[str], prefix: str = "") -> np.ndarray:
    """One text at a time, the full (seq, vocab) logits: max_t log1p(relu(logits)), no specials."""
    rows = []
    with torch.inference_mode():
        for t in texts:
            batch = enc.tokenizer(
                [prefix + t], truncation=True, max_length=enc.config.max_length, return_tensors="pt"
            )
            logits = enc.model(**batch).logits[0]
            rows.append(torch.log1p(torch.relu(logits)).amax(0))
    out = torch.stack(rows).numpy()
    out[:, enc.tokenizer.all_special_ids] = 0
    return out


def dense(v: SparseVectors) -> np.ndarray:
    return v.tocsr().toarray()


@pytest.mark.parametrize("screen", SCREENS)
def test_matches_naive_reference(mlm, screen):
    enc = SparseEncoder(mlm, screen=screen, device="cpu")
    ours = dense(enc.encode(TEXTS, batch_size=2))  # padding inside batches
    ref = naive(enc, TEXTS)
    assert (ref > 0).sum(1).min() > 100  # the test bites: many terms per text
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5)
    assert ((ours > 0) == (ref > 0)).mean() > 0.9999


def test_decoder_never_runs_on_a_batch(bert_mlm):
    """The (batch, seq, vocab) logits are never formed: the vocabulary product runs in blocks."""
    enc = SparseEncoder(bert_mlm, screen=False, device="cpu")
    calls = []
    enc.model.get_output_embeddings().register_forward_hook(lambda *a: calls.append(1))
    enc.encode(TEXTS)
    assert calls == []


def test_special_tokens_absent(bert_encoder):
    special = bert_encoder.tokenizer.all_special_ids
    with torch.inference_mode():
        batch = bert_encoder.tokenizer(TEXTS[:1], return_tensors="pt")
        logits = bert_encoder.model(**batch).logits[0]
    assert (logits[:, special].amax(0) > 0).any()  # the model would give them weight
    out = bert_encoder.encode(TEXTS)
    assert not np.isin(out.indices, special).any()


def test_csr_layout(bert_encoder):
    out = bert_encoder.encode(TEXTS)
    assert len(out) == len(TEXTS) and out.vocab_size == 30522
    assert out.indptr.dtype == np.int64 and out.indptr.shape == (len(TEXTS) + 1,)
    assert out.indices.dtype == np.uint32 and out.values.dtype == np.float32
    assert (out.values > 0).all()
    for i in range(len(out)):
        ids, _ = out.row(i)
        assert (np.diff(ids.astype(np.int64)) > 0).all()
    assert out.tocsr().shape == (len(TEXTS), 30522)


def test_batching_keeps_input_order(bert_encoder):
    together = dense(bert_encoder.encode(TEXTS, batch_size=2))
    alone = np.vstack([dense(bert_encoder.encode([t])) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("k", [1, 7, 100])
def test_budget_keeps_the_largest_weights(bert_encoder, k):
    full = dense(bert_encoder.encode(TEXTS))
    pruned = bert_encoder.encode(TEXTS, max_terms=k)
    assert np.diff(pruned.indptr).max() <= k
    for i in range(len(TEXTS)):
        ids, vals = pruned.row(i)
        assert (np.diff(ids.astype(np.int64)) > 0).all()
        expected = np.sort(full[i][full[i] > 0])[::-1][:k]
        np.testing.assert_allclose(np.sort(vals)[::-1], expected, rtol=1e-6)
        np.testing.assert_allclose(full[i, ids], vals, rtol=1e-6)


def test_query_and_document_budgets(bert_mlm):
    enc = SparseEncoder(bert_mlm, query_max_terms=3, doc_max_terms=40, screen=False)
    assert np.diff(enc.encode_queries(TEXTS).indptr).tolist() == [3] * len(TEXTS)
    assert np.diff(enc.encode_documents(TEXTS).indptr).tolist() == [40] * len(TEXTS)
    assert (enc.config.query_max_terms, enc.config.doc_max_terms) == (3, 40)


def test_fallback_runs_the_whole_model(bert_mlm):
    """A head that is not a plain Linear: the whole model on sub-batches, same weights."""
    enc = SparseEncoder(bert_mlm, screen=False)
    enc._decoder = None  # noqa: SLF001 - white-box: force this module's fallback path
    np.testing.assert_allclose(dense(enc.encode(TEXTS)), naive(enc, TEXTS), atol=1e-5)


def test_truncates_at_model_limit(tmp_path):
    enc = SparseEncoder(_make_mlm(tmp_path / "r", "roberta"), screen=False)
    assert enc.config.max_length == 128  # 130 positions minus RoBERTa's 2 reserved
    out = enc.encode(["word " * 1000])
    assert len(out) == 1 and np.isfinite(out.values).all()


def test_empty_list(bert_encoder):
    out = bert_encoder.encode_documents([])
    assert len(out) == 0 and out.nnz == 0 and out.indptr.tolist() == [0]


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support:UserWarning")  # inside ST
def test_reads_sentence_transformers_folder(bert_mlm, tmp_path):
    """An ST SparseEncoder folder: its length, prompts and activation; same weights as ST."""
    from sentence_transformers import SparseEncoder as STSparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    prompts = {"query": "query: ", "document": "passage: "}
    st = STSparseEncoder(
        modules=[
            MLMTransformer(str(bert_mlm), max_seq_length=16),
            SpladePooling("max", activation_function="log1p_relu"),
        ],
        prompts=prompts,
        device="cpu",
    )
    st.save(str(tmp_path / "st"))
    enc = SparseEncoder(tmp_path / "st", screen=False)
    assert enc.config.max_length == 16 and enc.config.activation == "log1p_relu"
    assert (enc.config.query_prefix, enc.config.document_prefix) == ("query: ", "passage: ")
    theirs = st.encode_query(TEXTS, convert_to_tensor=True).to_dense().numpy()
    theirs[:, enc.tokenizer.all_special_ids] = 0
    np.testing.assert_allclose(dense(enc.encode_queries(TEXTS)), theirs, rtol=1e-5, atol=1e-5)


def test_unsupported_folders_are_clear(bert_mlm, tmp_path):
    (tmp_path / "1_SpladePooling").mkdir()
    (tmp_path / "1_SpladePooling" / "config.json").write_text('{"pooling_strategy": "sum"}')
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "x.MLMTransformer"},
        {"idx": 1, "name": "1", "path": "1_SpladePooling", "type": "x.SpladePooling"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="only 'max'"):
        read_splade_folder(tmp_path)
    modules[1]["type"] = "x.SparseStaticEmbedding"
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="SparseStaticEmbedding module"):
        read_splade_folder(tmp_path)


def test_decode(bert_encoder):
    out = bert_encoder.encode(TEXTS)
    pairs = bert_encoder.decode(out, 2)
    weights = [w for _, w in pairs]
    assert weights == sorted(weights, reverse=True) and len(pairs) == out.row(2)[0].size
    ids, vals = out.row(2)
    best = int(ids[np.argmax(vals)])
    assert pairs[0] == (bert_encoder.tokenizer.convert_ids_to_tokens(best), float(vals.max()))
    assert bert_encoder.decode(out, -1) == bert_encoder.decode(out, len(TEXTS) - 1)
    with pytest.raises(ValueError, match="row 9 is out of range"):
        bert_encoder.decode(out, 9)
    with pytest.raises(TypeError, match="vectors must be SparseVectors"):
        bert_encoder.decode(out.tocsr(), 0)
    with pytest.raises(ValueError, match="vocab_size"):
        bert_encoder.decode(SparseVectors.empty(7), 0)


@pytest.mark.parametrize(
    ("texts", "error", "match"),
    [
        ([""], ValueError, r"texts\[0\] is empty"),
        (["ok", "   "], ValueError, r"texts\[1\] is empty"),
        (["ok", 3], TypeError, r"texts\[1\] must be a str"),
        (None, TypeError, "must be a sequence"),
    ],
)
def test_bad_texts(bert_encoder, texts, error, match):
    with pytest.raises(error, match=match):
        bert_encoder.encode_documents(texts)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"query_max_terms": 0}, ValueError, "query_max_terms must be positive"),
        ({"doc_max_terms": "9"}, TypeError, "doc_max_terms must be an int"),
        ({"batch_size": 0}, ValueError, "batch_size must be positive"),
        ({"max_length": 0}, ValueError, "max_length must be"),
    ],
)
def test_bad_options(bert_mlm, kwargs, error, match):
    with pytest.raises(error, match=match):
        SparseEncoder(bert_mlm, **kwargs)


def test_bad_encode_options(bert_encoder):
    with pytest.raises(ValueError, match="max_terms must be positive"):
        bert_encoder.encode(TEXTS, max_terms=-1)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        bert_encoder.encode(TEXTS, batch_size=0)


@pytest.mark.skipif(cpu_has_bf16(), reason="this CPU has bf16")
def test_screen_needs_native_bf16(bert_mlm):
    with pytest.raises(ValueError, match="screen=True needs"):
        SparseEncoder(bert_mlm, screen=True, device="cpu")


def test_sparse_vectors_checks_its_arrays():
    ok = (np.array([0, 1], np.int64), np.array([3], np.uint32), np.array([1.0], np.float32))
    assert len(SparseVectors(*ok, vocab_size=5)) == 1
    with pytest.raises(TypeError, match="indices must be a one-dimensional uint32"):
        SparseVectors(ok[0], ok[1].astype(np.int64), ok[2], 5)
    with pytest.raises(ValueError, match="indptr\\[-1\\] = 2"):
        SparseVectors(np.array([0, 2], np.int64), ok[1], ok[2], 5)
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        SparseVectors(*ok, vocab_size=5.0)


def test_from_config_rejects_a_changed_model(bert_mlm):
    enc = SparseEncoder(bert_mlm, doc_max_terms=64, screen=False)
    cfg = json.loads(json.dumps(enc.config.to_dict()))
    again = SparseEncoder.from_config(cfg, screen=False)
    assert again.config == enc.config
    cfg["revision"] = "sha256:0000000000000000"
    with pytest.raises(ValueError, match="Rebuild the collection"):
        SparseEncoder.from_config(cfg)
