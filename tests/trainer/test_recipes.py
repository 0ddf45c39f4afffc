"""Recipes, overrides, the granite-train command line and the evaluate helper (tiny models/data)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from trainer.cli import main
from trainer.data import read_jsonl_examples
from trainer.evaluation import evaluate, model_kind
from trainer.recipes import RECIPES, get_recipe, parse_overrides, run_recipe


def test_parse_overrides():
    got = parse_overrides(
        [
            "max_steps=3",
            "lr=1e-4",
            "eval_beir=",
            "mine=bm25",
            "x=none",
            'models=["a", "b"]',
            "bf16=true",
        ]
    )
    assert got == {
        "max_steps": 3,
        "lr": 1e-4,
        "eval_beir": "",
        "mine": "bm25",
        "x": None,
        "models": ["a", "b"],
        "bf16": True,
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["max_steps"])


def test_every_recipe_is_registered_with_a_known_stage():
    assert set(RECIPES) == {
        "dense-scifact",
        "distill-student",
        "merge-scifact",
        "splade-distill",
        "retromae-scifact",
    }
    for r in RECIPES.values():
        assert r.stage in ("contrastive", "distill", "splade", "retromae", "merge")
        assert r.description.strip()
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("nope")


def test_unknown_override_and_missing_teacher(tmp_path):
    with pytest.raises(ValueError, match="no setting 'lr'"):
        run_recipe(get_recipe("dense-scifact"), ["lr=1"], tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="teacher"):
        run_recipe(
            get_recipe("splade-distill"),
            {"teacher": "runs/does-not-exist", "limit": 8, "mine": "none"},
            tmp_path / "t",
        )


def test_dense_recipe_on_tiny_data_through_the_cli(bert_mlm, tiny_beir, tmp_path):
    out = tmp_path / "dense"
    overrides = [
        f"model={bert_mlm}",
        f"beir={tiny_beir}",
        f"eval_beir={tiny_beir}",
        "mine=bm25",
        "mining_model=none",
        "skip=0",
        "max_steps=3",
        "batch_size=4",
        "n_negatives=2",
        "passage_max_length=32",
        "save_steps=2",
        "pooling=mean",
    ]
    args = ["dense-scifact", "--out", str(out), "--quiet"]
    res = CliRunner().invoke(main, args + [x for o in overrides for x in ("-o", o)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output.strip().splitlines()[-1])
    assert report["finished"] and report["steps"] == 3
    assert 0.0 <= report["metrics"]["ndcg@10"] <= 1.0
    assert "## Evaluation" in (out / "README.md").read_text()
    # training truncated passages at 32 tokens; the saved model keeps its own limit (128)
    assert json.loads((out / "sentence_bert_config.json").read_text())["max_seq_length"] == 128
    mined = read_jsonl_examples(out / "data" / f"{tiny_beir.name}-train.jsonl")
    assert len(mined) == 16 and all(e.negatives for e in mined)
    assert all(e.positives[0] not in e.negatives for e in mined)
    # the merge recipe and command on the result
    res = CliRunner().invoke(
        main,
        [
            "merge-scifact",
            "--out",
            str(tmp_path / "m"),
            "-o",
            f'models=["{out}", "{out}"]',
            "-o",
            "eval_beir=none",
        ],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        main, ["merge", str(out), str(out), "--out", str(tmp_path / "m2"), "--weights", "0.3,0.7"]
    )
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "m2" / "checkpoints").exists()
    assert evaluate(tmp_path / "m2", tiny_beir) == pytest.approx(report["metrics"], abs=1e-6)
    # the student recipe on it: by default the student is the teacher's own layers
    student = tmp_path / "student"
    overrides = [
        f"teacher={out}",
        f"beir={tiny_beir}",
        "eval_beir=none",
        "student_layers=1",
        "max_steps=2",
        "batch_size=4",
        "passage_max_length=32",
        "save_steps=0",
    ]
    args = ["distill-student", "--out", str(student), "--quiet"]
    res = CliRunner().invoke(main, args + [x for o in overrides for x in ("-o", o)])
    assert res.exit_code == 0, res.output
    init = student / "student-init"
    assert json.loads((init / "config.json").read_text())["num_hidden_layers"] == 1
    teacher_w, init_w = load_file(out / "model.safetensors"), load_file(init / "model.safetensors")
    shared = [k for k in init_w if "embeddings" in k]
    assert shared and all(torch.equal(init_w[k], teacher_w[k]) for k in shared)
    log = (student / "train_log.jsonl").read_text()
    assert "embedding_loss" in log


def test_cli_errors_are_clean(tmp_path):
    res = CliRunner().invoke(main, ["dense-scifact", "--out", str(tmp_path), "-o", "nope=1"])
    assert res.exit_code != 0 and "no setting 'nope'" in res.output
    res = CliRunner().invoke(main, ["list"])
    assert res.exit_code == 0 and "splade-distill" in res.output


def test_evaluate_sparse_and_kind(bert_mlm, tiny_beir, tmp_path):
    from trainer.modeling import SpladeModel

    SpladeModel(bert_mlm).save(tmp_path / "sp")
    assert model_kind(tmp_path / "sp") == "sparse" and model_kind(bert_mlm) == "dense"
    metrics = evaluate(tmp_path / "sp", tiny_beir, metrics=("ndcg@10", "mrr@10"))
    assert set(metrics) == {"ndcg@10", "mrr@10"} and 0 <= metrics["ndcg@10"] <= 1
    with pytest.raises(ValueError, match="kind"):
        evaluate(tmp_path / "sp", tiny_beir, kind="colbert")  # type: ignore[arg-type]
