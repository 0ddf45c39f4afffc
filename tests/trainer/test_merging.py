"""Merges on synthetic state dicts against hand-computed tensors, and one round trip on disk."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer.merging import (
    linear_merge,
    lm_cocktail_weights,
    merge_models,
    task_arithmetic,
    ties_merge,
)


def _sd(w, b=0.0, ids=(0, 1)):
    return {
        "w": torch.tensor(w, dtype=torch.float32),
        "b": torch.tensor([b], dtype=torch.float32),
        "ids": torch.tensor(ids, dtype=torch.long),
    }


def test_linear_merge_weighted_and_uniform():
    a, b = _sd([1.0, 2.0], 0.0), _sd([3.0, 6.0], 4.0, ids=(5, 5))
    got = linear_merge([a, b], weights=[1, 3])  # normalised to 0.25, 0.75
    assert torch.allclose(got["w"], torch.tensor([2.5, 5.0]))
    assert torch.allclose(got["b"], torch.tensor([3.0]))
    assert torch.equal(got["ids"], a["ids"])  # integers are copied from the first, not averaged
    uniform = linear_merge([a, b])
    assert torch.allclose(uniform["w"], torch.tensor([2.0, 4.0]))
    assert got["ids"].data_ptr() != a["ids"].data_ptr()


def test_linear_merge_keeps_dtype():
    a = {"w": torch.tensor([1.0, 2.0], dtype=torch.bfloat16)}
    b = {"w": torch.tensor([2.0, 4.0], dtype=torch.bfloat16)}
    got = linear_merge([a, b])["w"]
    assert got.dtype == torch.bfloat16
    assert got.tolist() == [1.5, 3.0]


@pytest.mark.parametrize(
    ("dicts", "weights", "exc", "match"),
    [
        ([], None, ValueError, "empty"),
        ([_sd([1.0]), {"w": torch.ones(1)}], None, ValueError, "other keys"),
        ([_sd([1.0]), _sd([1.0, 2.0])], None, ValueError, r"\[1\]\['w'\] is \(2,\)"),
        (
            [_sd([1.0]), {**_sd([1.0]), "w": torch.ones(1, dtype=torch.float64)}],
            None,
            ValueError,
            "float64",
        ),
        ([_sd([1.0]), {**_sd([1.0]), "w": [1.0]}], None, TypeError, "not a Tensor"),
        ([_sd([1.0]), _sd([2.0])], [1.0], ValueError, "weights has 1 entries"),
        ([_sd([1.0]), _sd([2.0])], [1.0, -1.0], ValueError, ">= 0"),
    ],
)
def test_linear_merge_bad_input(dicts, weights, exc, match):
    with pytest.raises(exc, match=match):
        linear_merge(dicts, weights)


def test_task_arithmetic_hand_computed():
    base, ft1, ft2 = _sd([1.0, 1.0]), _sd([2.0, 1.0]), _sd([1.0, 3.0], ids=(7, 7))
    got = task_arithmetic(base, [ft1, ft2], scaling=0.5)  # 1 + 0.5 * ([1, 0] + [0, 2])
    assert torch.allclose(got["w"], torch.tensor([1.5, 2.0]))
    assert torch.equal(got["ids"], base["ids"])
    with pytest.raises(ValueError, match="finetuned_list is empty"):
        task_arithmetic(base, [])


def test_ties_hand_computed():
    base = {"w": torch.ones(4)}
    tvs = ([3.0, -1.0, 0.5, -2.0], [-1.0, 2.0, 0.1, -4.0], [2.0, -3.0, 0.0, 1.0])
    fts = [{"w": base["w"] + torch.tensor(tv)} for tv in tvs]
    # density 0.5 keeps 2 of 4 per task vector:
    #   [3, 0, 0, -2], [0, 2, 0, -4], [2, -3, 0, 0]; summed [5, -1, 0, -6] -> signs [+, -, 0, -]
    #   agreeing means: (3 + 2) / 2, -3 / 1, none -> 0, (-2 - 4) / 2
    got = ties_merge(base, fts, density=0.5, scaling=1.0)["w"]
    assert torch.allclose(got, torch.tensor([1 + 2.5, 1 - 3.0, 1.0, 1 - 3.0]))
    half = ties_merge(base, fts, density=0.5, scaling=0.5)["w"]
    assert torch.allclose(half, torch.tensor([1 + 1.25, 1 - 1.5, 1.0, 1 - 1.5]))


def test_ties_density_one_single_model_is_the_model():
    base, ft = _sd([1.0, -2.0, 3.0]), _sd([0.5, 4.0, 3.0], ids=(9, 9))
    got = ties_merge(base, [ft], density=1.0)
    assert torch.allclose(got["w"], ft["w"])
    assert torch.equal(got["ids"], base["ids"])


def test_ties_keeps_every_entry_tied_at_the_cut():
    base = {"w": torch.zeros(4)}
    got = ties_merge(base, [{"w": torch.tensor([1.0, 1.0, -1.0, 0.5])}], density=0.25)["w"]
    assert got.tolist() == [1.0, 1.0, -1.0, 0.0]


def test_ties_bad_density():
    base = _sd([1.0])
    for density in (0.0, 1.5):
        with pytest.raises(ValueError, match="density"):
            ties_merge(base, [base], density=density)


def test_lm_cocktail_weights():
    w = lm_cocktail_weights([1.0, 2.0], temperature=1.0)
    e1, e2 = math.exp(-1.0), math.exp(-2.0)
    assert w == pytest.approx([e1 / (e1 + e2), e2 / (e1 + e2)])
    s = lm_cocktail_weights([0.2, 0.4, 0.4], temperature=0.1, higher_is_better=True)
    e = [math.exp(2.0), math.exp(4.0), math.exp(4.0)]
    assert s == pytest.approx([x / sum(e) for x in e])
    assert sum(lm_cocktail_weights([1e4, 1.0], temperature=1e-3)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="temperature"):
        lm_cocktail_weights([1.0], temperature=0.0)
    with pytest.raises(ValueError, match="losses is empty"):
        lm_cocktail_weights([])


# --- on disk -------------------------------------------------------------------------------


def _tiny_st_model(folder: Path, seed: int, hidden: int = 32) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertModel

    from granite_index.encoders import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(None).path)
    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    pooling = {"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (folder / "2_Normalize").mkdir()
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 32}))
    return folder


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return [_tiny_st_model(tmp_path_factory.mktemp(f"tiny{s}"), seed=s) for s in (0, 1)]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_merge_models_round_trip(tiny_models, tmp_path):
    from granite_index import DenseEncoder

    out = merge_models(tiny_models, tmp_path / "merged", "linear", weights=[3, 1])
    a, b, m = (_weights(p) for p in (*tiny_models, out))
    assert m.keys() == a.keys()
    for key in a:
        assert torch.allclose(m[key], 0.75 * a[key] + 0.25 * b[key], atol=1e-6), key
    for name in (
        "modules.json",
        "1_Pooling/config.json",
        "tokenizer.json",
        "sentence_bert_config.json",
    ):
        assert (out / name).is_file(), name
    assert (out / "2_Normalize").is_dir()
    enc = DenseEncoder(out, device="cpu", precision="fp32")
    assert enc.config.pooling == "mean" and enc.dim == 32
    vecs = enc.encode_documents(["a merged model", "still encodes"])
    assert vecs.shape == (2, 32) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)


def test_merge_models_task_vector_methods(tiny_models, tmp_path):
    base, ft = tiny_models
    out = merge_models([ft], tmp_path / "ta", "task_arithmetic", base=base, scaling=1.0)
    want = _weights(ft)
    got = _weights(out)
    assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)
    out = merge_models([ft], tmp_path / "ties", "ties", base=base, density=1.0)
    got = _weights(out)
    assert all(torch.allclose(got[k], want[k], atol=1e-6) for k in want)


def test_merge_models_errors(tiny_models, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x").write_text("")
    with pytest.raises(FileExistsError, match="not an empty folder"):
        merge_models(tiny_models, busy)
    with pytest.raises(ValueError, match="needs base"):
        merge_models(tiny_models, tmp_path / "o1", "ties")
    with pytest.raises(ValueError, match="method"):
        merge_models(tiny_models, tmp_path / "o2", "slerp")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="not a model folder"):
        merge_models([tmp_path], tmp_path / "o3")
    other = _tiny_st_model(tmp_path / "wide", seed=2, hidden=48)
    with pytest.raises(ValueError, match="is \\(30522, 48\\)"):
        merge_models([tiny_models[0], other], tmp_path / "o4")


def test_cocktail_merge_weights_come_from_few_shot_losses(tiny_models, tiny_beir, tmp_path):
    from trainer.merging import few_shot_losses
    from trainer.recipes.merge_run import run_merge

    params = {
        "models": [str(p) for p in tiny_models],
        "method": "linear",
        "weights": "cocktail",
        "cocktail_beir": str(tiny_beir),
        "cocktail_n": 8,
        "cocktail_temperature": 0.5,
    }
    out = run_merge(params, tmp_path / "cocktail")
    ck = json.loads((out / "merge_summary.json").read_text())["params"]["cocktail"]
    assert ck["examples"] == 8 and len(ck["losses"]) == 2
    assert all(math.isfinite(x) and x > 0 for x in ck["losses"])
    w = lm_cocktail_weights(ck["losses"], 0.5)
    assert ck["weights"] == pytest.approx(w)
    assert (w[0] > w[1]) == (ck["losses"][0] < ck["losses"][1])
    a, b, m = (_weights(p) for p in (*tiny_models, out))
    for key in a:
        assert torch.allclose(m[key], w[0] * a[key] + w[1] * b[key], atol=1e-5), key
    # the loss is deterministic and depends on the model
    from trainer.data import TrainExample

    ex = [TrainExample(f"what about {x}", (f"{x} is {x}",), (f"not {x}", "other")) for x in "abcd"]
    l0, l0_again, l1 = few_shot_losses([tiny_models[0], tiny_models[0], tiny_models[1]], ex)
    assert l0 == pytest.approx(l0_again) and l0 != pytest.approx(l1)
    with pytest.raises(ValueError, match="examples is empty"):
        few_shot_losses(tiny_models, [])
    with pytest.raises(ValueError, match="cocktail_beir"):
        run_merge({**params, "cocktail_beir": None}, tmp_path / "x")
