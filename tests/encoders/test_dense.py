from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from granite_index import DenseEncoder
from granite_index.encoders.st_config import read_folder_config

TEXTS = [
    "a short one",
    "a much longer text about retrieval, inverted indexes and dense vectors " * 3,
    "middle sized sentence for the encoder",
    "x",
]


def _st_folder(src: Path, out: Path, pooling: str, prompts: dict | None = None) -> Path:
    from sentence_transformers import SentenceTransformer, models

    tr = models.Transformer(str(src), max_seq_length=64)
    pool = models.Pooling(tr.get_embedding_dimension(), pooling_mode=pooling)
    st = SentenceTransformer(modules=[tr, pool, models.Normalize()], device="cpu", prompts=prompts)
    st.save(str(out))
    return out


@pytest.mark.parametrize("arch", ["tiny_bert", "tiny_roberta"])
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_matches_sentence_transformers(arch, pooling, request, tmp_path):
    """Reading the ST folder gives the same pooling, length and vectors as sentence-transformers."""
    from sentence_transformers import SentenceTransformer

    folder = _st_folder(request.getfixturevalue(arch), tmp_path / "st", pooling)
    enc = DenseEncoder(folder, precision="fp32", device="cpu")
    assert enc.config.pooling == pooling
    assert enc.config.max_length == 64
    ours = enc.encode_documents(TEXTS)
    theirs = SentenceTransformer(str(folder), device="cpu").encode(TEXTS, convert_to_numpy=True)
    cos = (ours * theirs).sum(1) / np.linalg.norm(theirs, axis=1)
    assert cos.min() >= 0.9999


def test_output_shape_dtype_and_norm(tiny_encoder):
    out = tiny_encoder.encode_documents(TEXTS)
    assert out.shape == (4, 32) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_length_sorted_batching_keeps_input_order(tiny_encoder):
    together = tiny_encoder.encode(TEXTS, batch_size=2)
    alone = np.vstack([tiny_encoder.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_truncates_at_model_limit(tiny_roberta):
    enc = DenseEncoder(tiny_roberta, precision="fp32")
    assert enc.config.max_length == 128  # 130 positions minus RoBERTa's 2 reserved
    out = enc.encode(["word " * 1000])
    assert np.isfinite(out).all()


def test_plain_hf_folder_defaults_to_cls(tiny_bert):
    enc = DenseEncoder(tiny_bert, precision="fp32")
    assert enc.config.pooling == "cls"
    assert enc.config.normalize is True


def test_prefixes_from_folder_and_override(tiny_bert, tmp_path):
    folder = _st_folder(
        tiny_bert, tmp_path / "st", "mean", prompts={"query": "query: ", "document": "passage: "}
    )
    enc = DenseEncoder(folder, precision="fp32")
    assert (enc.config.query_prefix, enc.config.document_prefix) == ("query: ", "passage: ")
    np.testing.assert_allclose(enc.encode_queries(["abc"]), enc.encode(["query: abc"]), atol=1e-6)
    enc2 = DenseEncoder(folder, precision="fp32", query_prefix="")
    np.testing.assert_allclose(enc2.encode_queries(["abc"]), enc2.encode(["abc"]), atol=1e-6)


def test_unsupported_pooling_is_clear(tiny_bert, tmp_path):
    folder = _st_folder(tiny_bert, tmp_path / "st", "max")
    with pytest.raises(ValueError, match="pooling other than CLS or mean"):
        read_folder_config(folder)


@pytest.mark.parametrize(
    ("texts", "error", "match"),
    [
        ([""], ValueError, r"texts\[0\] is empty"),
        (["ok", "   "], ValueError, r"texts\[1\] is empty"),
        (["ok", 3], TypeError, r"texts\[1\] must be a str"),
        (None, TypeError, "must be a sequence"),
    ],
)
def test_bad_texts(tiny_encoder, texts, error, match):
    with pytest.raises(error, match=match):
        tiny_encoder.encode(texts)


def test_bad_options(tiny_bert):
    with pytest.raises(ValueError, match="pooling"):
        DenseEncoder(tiny_bert, pooling="max")
    with pytest.raises(ValueError, match="precision"):
        DenseEncoder(tiny_bert, precision="int4")


def test_from_config_rejects_a_changed_model(tiny_bert, tmp_path):
    enc = DenseEncoder(tiny_bert, precision="fp32")
    cfg = json.loads(json.dumps(enc.config.to_dict()))
    cfg["revision"] = "sha256:0000000000000000"
    with pytest.raises(ValueError, match="Rebuild the collection"):
        DenseEncoder.from_config(cfg)
