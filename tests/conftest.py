"""Shared fixtures: tiny random models (fast), the bundled model and a SciFact subset (real)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BEIR = SHARED / "data" / "beir"


def _make_tiny(folder: Path, arch: str) -> Path:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel, RobertaConfig, RobertaModel

    from granite_index.encoders import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(None).path)
    common = dict(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    if arch == "bert":
        model = BertModel(BertConfig(max_position_embeddings=128, **common))
    else:  # RoBERTa: position ids start after the padding index
        model = RobertaModel(
            RobertaConfig(max_position_embeddings=130, pad_token_id=tok.pad_token_id, **common)
        )
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with the bundled WordPiece tokenizer."""
    return _make_tiny(tmp_path_factory.mktemp("tiny-bert"), "bert")


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer RoBERTa (hidden 32)."""
    return _make_tiny(tmp_path_factory.mktemp("tiny-roberta"), "roberta")


@pytest.fixture(scope="session")
def tiny_encoder(tiny_bert: Path):
    from granite_index import DenseEncoder

    return DenseEncoder(tiny_bert, pooling="mean", precision="fp32")


@pytest.fixture(scope="session")
def bundled_encoder():
    """The bundled all-MiniLM-L6-v2 in fp32."""
    from granite_index import DenseEncoder

    return DenseEncoder(precision="fp32")


@pytest.fixture(scope="session")
def scifact_subset():
    """SciFact: 40 test queries, their relevant docs plus 160 others (200 docs), deterministic."""
    from granite_index.eval import load_beir

    if not (BEIR / "scifact").is_dir():
        pytest.fail(f"shared data missing: {BEIR / 'scifact'}")
    data = load_beir(BEIR / "scifact", split="test")
    qids = sorted(data.qrels, key=int)[:40]
    relevant = {d for q in qids for d in data.qrels[q]}
    rng = random.Random(0)
    others = [d for d in data.doc_ids if d not in relevant]
    chosen = relevant | set(rng.sample(others, 200 - len(relevant)))
    pos = {d: i for i, d in enumerate(data.doc_ids)}
    docs = sorted(chosen, key=lambda d: pos[d])
    texts = data.documents()
    return {
        "doc_ids": docs,
        "texts": [texts[pos[d]] for d in docs],
        "qids": qids,
        "queries": [data.queries[q] for q in qids],
        "qrels": {q: data.qrels[q] for q in qids},
    }


@pytest.fixture(scope="session")
def scifact_vectors(scifact_subset, bundled_encoder) -> np.ndarray:
    """The subset's documents encoded once per test session with the bundled model (fp32)."""
    return bundled_encoder.encode_documents(scifact_subset["texts"])


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
