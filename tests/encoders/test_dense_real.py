"""The bundled all-MiniLM-L6-v2 against sentence-transformers on real SciFact text."""

from __future__ import annotations

from granite_index import DenseEncoder
from granite_index.encoders.hf import cpu_has_bf16


def test_bundled_matches_sentence_transformers(bundled_encoder, scifact_subset):
    from sentence_transformers import SentenceTransformer

    texts = scifact_subset["texts"][:40] + scifact_subset["queries"][:10]
    ours = bundled_encoder.encode(texts)
    st = SentenceTransformer(str(bundled_encoder.source.path), device="cpu")
    theirs = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.shape == theirs.shape == (50, 384)
    assert (ours * theirs).sum(1).min() >= 0.9999


def test_auto_precision_keeps_cosine_bound(scifact_subset, scifact_vectors):
    """Whatever 'auto' picks here (bf16 on AVX512-BF16 CPUs) stays within cosine 0.999 of fp32."""
    enc = DenseEncoder(precision="auto")
    assert enc.precision == ("bf16" if cpu_has_bf16() else "fp32")
    fast = enc.encode_documents(scifact_subset["texts"][:64])
    assert (fast * scifact_vectors[:64]).sum(1).min() >= 0.999
