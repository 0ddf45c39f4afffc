"""Tiny fixtures of the trainer tests: random 2-layer masked LMs and a synthetic retrieval task.

Torch runs on one thread here: the models are tiny, and the machine is shared.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer.data import TrainExample

torch.set_num_threads(1)

WORDS = (
    "apple river stone cloud violin tiger garden rocket "
    "pepper silver forest engine ocean candle mirror planet"
).split()


def _make_mlm(folder: Path, arch: str) -> Path:
    from transformers import (
        AutoTokenizer,
        BertConfig,
        BertForMaskedLM,
        RobertaConfig,
        RobertaForMaskedLM,
    )

    from granite_index.encoders import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(None).path)  # bundled WordPiece vocabulary
    common = dict(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    if arch == "bert":
        model = BertForMaskedLM(BertConfig(max_position_embeddings=128, **common))
    else:  # RoBERTa: position ids start after the padding index
        cfg = RobertaConfig(max_position_embeddings=130, pad_token_id=tok.pad_token_id, **common)
        model = RobertaForMaskedLM(cfg)
    with torch.no_grad():  # a negative vocabulary bias, so SPLADE vectors are sparse-ish
        model.get_output_embeddings().bias.fill_(-0.1)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def bert_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BertForMaskedLM (hidden 32) with the bundled tokenizer."""
    return _make_mlm(tmp_path_factory.mktemp("bert-mlm"), "bert")


@pytest.fixture(scope="session")
def roberta_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer RobertaForMaskedLM (hidden 32) with the bundled tokenizer."""
    return _make_mlm(tmp_path_factory.mktemp("roberta-mlm"), "roberta")


def synthetic_examples(n_negatives: int = 2) -> list[TrainExample]:
    """16 queries, one per word; the positive repeats the word, negatives talk of others."""
    out = []
    for i, w in enumerate(WORDS):
        negs = tuple(
            f"{WORDS[(i + 3 * j + 1) % 16]} is a story about {WORDS[(i + 5 * j + 2) % 16]}"
            for j in range(n_negatives)
        )
        out.append(TrainExample(f"what about {w}", (f"{w} is a story about {w} and {w}",), negs))
    return out


@pytest.fixture()
def examples() -> list[TrainExample]:
    return synthetic_examples()


@pytest.fixture(scope="session")
def tiny_beir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BEIR folder: 16 one-topic documents + 8 distractors, train and test qrels."""
    root = tmp_path_factory.mktemp("tiny-beir")
    docs = [
        {"_id": f"d{i}", "title": w.title(), "text": f"{w} is a story about {w} and {w}."}
        for i, w in enumerate(WORDS)
    ]
    docs += [
        {"_id": f"x{i}", "title": "", "text": f"{WORDS[i]} {WORDS[i + 8]} mixed notes."}
        for i in range(8)
    ]
    queries = [{"_id": f"q{i}", "text": f"what about {w}"} for i, w in enumerate(WORDS)]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir()
    for split, ids in (("train", range(0, 16)), ("test", range(8, 16))):
        rows = "".join(f"q{i}\td{i}\t1\n" for i in ids)
        (root / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return root
