"""The one training loop: every stage on tiny models, exact resume, outputs the engine loads."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from granite_index import Collection, DenseEncoder, SparseEncoder
from trainer.args import TrainingArgs
from trainer.checkpoint import latest_checkpoint
from trainer.data import TrainExample
from trainer.runner import train


def _args(model, out, **kw) -> TrainingArgs:
    base = dict(
        learning_rate=1e-3,
        batch_size=8,
        max_steps=10,
        n_negatives=1,
        temperature=0.1,
        logging_steps=2,
        passage_max_length=32,
        query_max_length=16,
        pooling="mean",
    )
    return TrainingArgs(model=str(model), output_dir=str(out), **{**base, **kw})


def test_contrastive_end_to_end(bert_mlm, examples, tmp_path):
    result = train(
        _args(bert_mlm, tmp_path / "run"), "contrastive", {"syn": examples}, show_progress=False
    )
    assert result.finished and result.steps == 10 and len(result.losses) == 10
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3])
    out = tmp_path / "run"
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4, 6, 8, 10] and all(
        r["examples_per_s"] > 0 for r in log
    )
    card = (out / "README.md").read_text()
    assert "contrastive" in card and "| syn | 16 |" in card and "final loss" in card
    assert DenseEncoder(out, device="cpu").config.pooling == "mean"
    col = Collection.create(tmp_path / "col", model=out)
    col.add([f"d{i}" for i in range(16)], [e.positives[0] for e in examples])
    hits = col.search(["what about tiger", "what about ocean"], k=3)
    assert hits.ids.shape == (2, 3) and len(hits.doc_ids()[0]) == 3


@pytest.mark.parametrize("stage", ["contrastive", "retromae"])
def test_resume_gives_the_weights_of_an_uninterrupted_run(stage, bert_mlm, examples, tmp_path):
    data = {"a": examples, "b": examples[:9]}  # two datasets: the sampler's choice matters too
    if stage == "retromae":
        data = {k: [e.positives[0] for e in v] for k, v in data.items()}
    kw = dict(max_steps=6, warmup_steps=2, batch_size=4, save_total_limit=1)
    full = train(_args(bert_mlm, tmp_path / "full", **kw), stage, data, show_progress=False)
    cut_args = _args(bert_mlm, tmp_path / "cut", **kw)
    first = train(cut_args, stage, data, stop_after_steps=3, show_progress=False)
    assert not first.finished and first.steps == 3
    assert latest_checkpoint(tmp_path / "cut" / "checkpoints").name == "step-3"
    assert not (tmp_path / "cut" / "model.safetensors").exists()
    rest = train(cut_args, stage, data, show_progress=False)
    assert rest.finished and rest.losses == full.losses
    a = load_file(tmp_path / "full" / "model.safetensors")
    b = load_file(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoints_are_pruned_and_no_temp_left(bert_mlm, examples, tmp_path):
    args = _args(
        bert_mlm, tmp_path / "r", max_steps=4, batch_size=4, save_steps=1, save_total_limit=2
    )
    train(args, "contrastive", examples, show_progress=False)
    names = sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir())
    assert names == ["step-3", "step-4"]
    assert {p.name for p in (tmp_path / "r" / "checkpoints" / "step-4").iterdir()} == {
        "model.safetensors",
        "optimizer.pt",
        "trainer_state.json",
    }


def test_distill_with_teacher_and_pseudo_negatives(bert_mlm, roberta_mlm, examples, tmp_path):
    no_negs = [dataclasses.replace(e, negatives=()) for e in examples]
    result = train(
        _args(bert_mlm, tmp_path / "s", max_steps=4, n_negatives=2),
        "distill",
        {"syn": no_negs},
        teacher=str(roberta_mlm),
        show_progress=False,
    )
    assert result.finished and all(np.isfinite(result.losses))
    assert "teacher" in (tmp_path / "s" / "README.md").read_text()


def test_distill_embedding_term_pulls_the_student_to_the_teacher(
    bert_mlm, roberta_mlm, examples, tmp_path
):
    args = _args(bert_mlm, tmp_path / "e", max_steps=8, n_negatives=1, embedding_weight=1.0)
    result = train(
        args, "distill", {"syn": examples}, teacher=str(roberta_mlm), show_progress=False
    )
    log = [
        json.loads(line) for line in (tmp_path / "e" / "train_log.jsonl").read_text().splitlines()
    ]
    emb = [r["embedding_loss"] for r in log]
    assert result.finished and len(emb) == 4 and emb[-1] < emb[0]
    with pytest.raises(ValueError, match="embedding_weight > 0 is for the distill stage"):
        train(args, "distill", {"syn": examples}, show_progress=False)  # no teacher
    with pytest.raises(ValueError, match="embedding_weight > 0 is for the distill stage"):
        train(args, "splade", {"syn": examples}, teacher=str(roberta_mlm), show_progress=False)


def test_distill_from_precomputed_scores(bert_mlm, examples, tmp_path):
    scored = [
        dataclasses.replace(e, positive_scores=(5.0,), negative_scores=(1.0, 0.5)) for e in examples
    ]
    args = _args(bert_mlm, tmp_path / "p", max_steps=3, n_negatives=2, contrastive_weight=0.5)
    result = train(args, "distill", scored, show_progress=False)
    assert result.finished
    with pytest.raises(ValueError, match="teacher scores"):
        train(args, "distill", examples, show_progress=False)


def test_splade_stage_reports_nnz_and_loads_in_the_engine(bert_mlm, examples, tmp_path):
    args = _args(
        bert_mlm,
        tmp_path / "sp",
        max_steps=4,
        batch_size=4,
        reg_warmup_steps=2,
        query_reg_weight=1e-2,
        doc_reg_weight=1e-2,
    )
    result = train(args, "splade", {"syn": examples}, show_progress=False)
    assert result.finished and all(np.isfinite(result.losses))
    log = [
        json.loads(line)
        for line in (tmp_path / "sp" / "train_log.jsonl").read_text().split("\n")
        if line
    ]
    assert all(0 < r["query_nnz"] <= 30522 and 0 < r["doc_nnz"] <= 30522 for r in log)
    assert "query_nnz" in (tmp_path / "sp" / "README.md").read_text()
    enc = SparseEncoder(tmp_path / "sp", screen=False, device="cpu")
    assert enc.encode_documents(["tiger story"]).nnz > 0
    # with a dense teacher: distillation + regulariser
    result = train(
        dataclasses.replace(args, output_dir=str(tmp_path / "sp2"), max_steps=2),
        "splade",
        examples,
        teacher=str(bert_mlm),
        show_progress=False,
    )
    assert result.finished


def test_bad_calls(bert_mlm, examples, tmp_path):
    args = _args(bert_mlm, tmp_path / "x", max_steps=1)
    with pytest.raises(ValueError, match="stage"):
        train(args, "pretrain", examples)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="TrainingArgs"):
        train(args.to_dict(), "contrastive", examples)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        train(args, "contrastive", {"a": []})
    with pytest.raises(TypeError, match="TrainExample"):
        train(args, "contrastive", ["just text"] * 8)
    with pytest.raises(ValueError, match="stop_after_steps"):
        train(args, "contrastive", examples, stop_after_steps=0)
    with pytest.raises(ValueError, match="fewer than batch_size"):
        train(args, "contrastive", examples[:3])
    assert isinstance(examples[0], TrainExample)


@pytest.mark.parametrize("stage", ["contrastive", "splade"])
def test_bf16_autocast_runs(stage, bert_mlm, examples, tmp_path):
    args = _args(bert_mlm, tmp_path / "bf", max_steps=2, batch_size=4, bf16=True)
    result = train(args, stage, examples, show_progress=False)
    assert result.finished and all(np.isfinite(result.losses))


def test_splade_without_teacher_needs_all_or_no_scores(bert_mlm, examples, tmp_path):
    mixed = [dataclasses.replace(examples[0], positive_scores=(1.0,), negative_scores=(0.0, 0.0))]
    with pytest.raises(ValueError, match="all or none"):
        train(_args(bert_mlm, tmp_path / "m"), "splade", mixed + examples[1:])
