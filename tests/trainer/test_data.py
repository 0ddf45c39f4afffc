"""Readers on tiny synthetic files and the shared examples; the sampler's frequencies."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

from trainer.data import (
    MultiDatasetSampler,
    TrainExample,
    read_beir_pairs,
    read_jsonl_examples,
    read_title_body_pairs,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
FLAG = SHARED / "train" / "flagembedding-examples"
SCIFACT = SHARED / "beir" / "scifact"


def _write_jsonl(file: Path, records: list) -> Path:
    file.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return file


@pytest.fixture()
def beir(tmp_path: Path) -> Path:
    _write_jsonl(
        tmp_path / "corpus.jsonl",
        [
            {"_id": "d1", "title": "Cats", "text": "Cats purr."},
            {"_id": "d2", "title": "", "text": "No title here."},
            {"_id": "d3", "title": "Dogs", "text": "Dogs bark."},
        ],
    )
    _write_jsonl(
        tmp_path / "queries.jsonl",
        [{"_id": "q1", "text": "do cats purr"}, {"_id": "q2", "text": "what barks"}],
    )
    (tmp_path / "qrels").mkdir()
    (tmp_path / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td3\t2\n", encoding="utf-8"
    )
    return tmp_path


def test_read_beir_pairs(beir):
    got = read_beir_pairs(beir)
    assert got == [
        TrainExample("do cats purr", ("Cats Cats purr.",)),
        TrainExample("what barks", ("Dogs Dogs bark.",)),
    ]
    assert len(read_beir_pairs(beir, min_grade=0)) == 3
    assert len(read_beir_pairs(beir, min_grade=2)) == 1


def test_read_beir_pairs_errors(beir):
    with pytest.raises(FileNotFoundError, match="split 'dev'"):
        read_beir_pairs(beir, split="dev")
    with open(beir / "qrels" / "train.tsv", "a", encoding="utf-8") as fh:
        fh.write("q2\tnope\t1\n")
    with pytest.raises(ValueError, match="missing from corpus.jsonl"):
        read_beir_pairs(beir)


def test_title_body_pairs_skip_untitled(beir):
    got = read_title_body_pairs(beir)
    assert [(e.query, e.positives) for e in got] == [
        ("Cats", ("Cats purr.",)),
        ("Dogs", ("Dogs bark.",)),
    ]
    assert read_title_body_pairs(beir / "corpus.jsonl") == got
    assert read_title_body_pairs(beir, min_chars=5) == []


def test_jsonl_examples(tmp_path):
    file = _write_jsonl(
        tmp_path / "ok.jsonl",
        [
            {
                "query": "q",
                "pos": ["p"],
                "neg": ["n1", "n2"],
                "pos_scores": [1],
                "neg_scores": [0.5, 0.1],
            },
            {"query": "r", "pos": ["p2"], "prompt": "Find it.", "extra": 1},
        ],
    )
    a, b = read_jsonl_examples(file)
    assert a == TrainExample("q", ("p",), ("n1", "n2"), (1.0,), (0.5, 0.1))
    assert b == TrainExample("r", ("p2",), prompt="Find it.")


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ('{"query": "q", "pos": ["p"]', "not valid JSON"),
        ('["q", "p"]', "expected a JSON object"),
        ('{"pos": ["p"]}', "'query' must be"),
        ('{"query": "q", "pos": []}', "'pos' is empty"),
        ('{"query": "q", "pos": "p"}', "'pos' must be a list"),
        ('{"query": "q", "pos": ["p"], "neg": [1]}', "'neg' must be a list of strings"),
        ('{"query": "q", "pos": ["p"], "pos_scores": [1, 2]}', "'pos_scores' must be a list of 1"),
    ],
)
def test_jsonl_malformed_line_names_file_and_line(tmp_path, bad, match):
    file = tmp_path / "bad.jsonl"
    file.write_text('{"query": "q", "pos": ["p"]}\n\n' + bad + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=match) as info:
        read_jsonl_examples(file)
    assert f"{file}:3:" in str(info.value)


def test_jsonl_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_jsonl_examples(tmp_path / "none.jsonl")


@pytest.mark.skipif(not FLAG.is_dir(), reason="shared training examples not present")
def test_flagembedding_examples():
    ms = read_jsonl_examples(FLAG / "msmarco.jsonl")
    assert len(ms) == 10
    for ex in ms:
        assert len(ex.positives) == 1 and len(ex.negatives) == 25
        assert ex.negative_scores is not None and len(ex.negative_scores) == 25
        assert ex.prompt


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="shared SciFact not present")
def test_scifact_train_and_titles():
    pairs = read_beir_pairs(SCIFACT, split="train")
    lines = (SCIFACT / "qrels" / "train.tsv").read_text().strip().splitlines()[1:]
    assert len(pairs) == len(lines) > 0
    titles = read_title_body_pairs(SCIFACT)
    assert 0 < len(titles) <= 5183


def _tagged(sizes: dict[str, int]) -> dict[str, list[tuple[str, int]]]:
    return {name: [(name, i) for i in range(n)] for name, n in sizes.items()}


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_sampler_frequencies_follow_size_power(alpha):
    sizes = {"a": 100, "b": 400, "c": 1600}
    sampler = MultiDatasetSampler(_tagged(sizes), batch_size=4, alpha=alpha, seed=123)
    n = 7000
    counts = Counter(name for name, _ in itertools.islice(sampler, n))
    weights = {k: v**alpha for k, v in sizes.items()}
    total = sum(weights.values())
    for name, w in weights.items():
        assert counts[name] / n == pytest.approx(w / total, abs=0.02), (name, counts)
    assert sampler.probabilities.sum() == pytest.approx(1.0)


def test_sampler_batches_come_from_one_dataset():
    sampler = MultiDatasetSampler(_tagged({"a": 10, "b": 7, "c": 30}), batch_size=3, seed=1)
    for name, batch in itertools.islice(sampler, 500):
        assert len(batch) == 3
        assert {tag for tag, _ in batch} == {name}


def test_sampler_passes_cover_a_dataset_without_repeats():
    data = {"only": list(range(10))}
    batches = [b for _, b in itertools.islice(MultiDatasetSampler(data, batch_size=5), 4)]
    assert sorted(batches[0] + batches[1]) == list(range(10))
    assert sorted(batches[2] + batches[3]) == list(range(10))


def test_sampler_is_seeded():
    data = _tagged({"a": 50, "b": 20})

    def draw(seed):
        return list(itertools.islice(MultiDatasetSampler(data, batch_size=2, seed=seed), 50))

    assert draw(7) == draw(7)
    assert draw(7) != draw(8)


@pytest.mark.parametrize(
    ("datasets", "kwargs", "match"),
    [
        ({}, {}, "non-empty mapping"),
        ({"a": [1, 2], "b": []}, {}, "dataset 'b' is empty"),
        ({"a": [1, 2]}, {"alpha": -0.5}, "alpha must be"),
        ({"a": [1, 2]}, {"alpha": float("nan")}, "alpha must be"),
        ({"a": [1, 2]}, {"batch_size": 0}, "batch_size"),
        ({"a": [1, 2]}, {"batch_size": 3}, "fewer than batch_size=3"),
    ],
)
def test_sampler_bad_input(datasets, kwargs, match):
    kwargs = {"batch_size": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        MultiDatasetSampler(datasets, **kwargs)


def test_write_jsonl_round_trip(tmp_path):
    from trainer.data import write_jsonl_examples

    examples = [
        TrainExample("q1", ("p1",), ("n1", "n2"), (1.0,), (0.5, 0.25), prompt="find: "),
        TrainExample("q2 é", ("p2", "p3")),
    ]
    file = write_jsonl_examples(examples, tmp_path / "sub" / "x.jsonl")
    assert read_jsonl_examples(file) == examples
    assert not (tmp_path / "sub" / "x.jsonl.tmp").exists()
    with pytest.raises(TypeError, match="TrainExample"):
        write_jsonl_examples([{"query": "q"}], tmp_path / "y.jsonl")  # type: ignore[list-item]


def test_perturb_text_deletes_or_swaps_spans():
    import numpy as np

    from trainer.data import perturb_text

    rng = np.random.default_rng(0)
    text = " ".join(f"w{i}" for i in range(20))
    seen = set()
    for _ in range(20):
        out = perturb_text(text, rng)
        assert out != text
        words = out.split()
        seen.add(len(words))
        assert set(words) <= set(text.split())
        if len(words) == 20:  # a swap keeps every word once
            assert sorted(words) == sorted(text.split())
    assert seen == {14, 20}  # deletions of 30% and swaps both happen
    assert perturb_text("a b", rng) == "b a"
    with pytest.raises(ValueError, match="span"):
        perturb_text(text, rng, span=0.9)
