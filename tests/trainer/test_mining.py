"""Hard-negative mining through a temporary Collection: positives never come back as negatives."""

from __future__ import annotations

import dataclasses

import pytest

from trainer.data import TrainExample
from trainer.mining import MiningConfig, mine_hard_negatives

TOPICS = "apple river stone cloud violin tiger garden rocket pepper silver".split()


def _corpus() -> list[str]:
    docs = [f"{t} facts: all about the {t} and more {t}" for t in TOPICS]
    docs += [f"{a} and {b} side by side" for a, b in zip(TOPICS, TOPICS[1:] + TOPICS[:1])]
    docs += [f"notes on the {t} for beginners" for t in TOPICS]
    return docs


def _examples() -> list[TrainExample]:
    out = [
        TrainExample(f"tell me about the {t}", (f"{t} facts: all about the {t} and more {t}",))
        for t in TOPICS
    ]
    # a second judged positive of the same query, in its own example (as BEIR pairs come)
    out.append(TrainExample("tell me about the apple", ("notes on the apple for beginners",)))
    return out


def test_bm25_mining_excludes_every_positive_of_a_query():
    corpus, examples = _corpus(), _examples()
    mined = mine_hard_negatives(examples, corpus, MiningConfig(n_negatives=4, depth=20))
    assert [(m.query, m.positives) for m in mined] == [(e.query, e.positives) for e in examples]
    pos = {}
    for e in examples:
        pos.setdefault(e.query, set()).update(e.positives)
    for m in mined:
        assert 1 <= len(m.negatives) <= 4
        assert not set(m.negatives) & pos[m.query]
        assert len(set(m.negatives)) == len(m.negatives)
        assert all(n in corpus for n in m.negatives)
    apple = [m for m in mined if m.query == "tell me about the apple"]
    assert apple[0].negatives == apple[1].negatives  # one draw per distinct query


def test_positive_inside_a_longer_document_is_excluded():
    corpus = ["Tiger. tiger stripes and tiger cubs", "a tiger toy", "tiger tiger tiger"]
    ex = [TrainExample("tiger", ("tiger stripes and tiger cubs",))]
    mined = mine_hard_negatives(ex, corpus, MiningConfig(n_negatives=5, depth=3))
    assert set(mined[0].negatives) == {"a tiger toy", "tiger tiger tiger"}


def test_seeded_skip_and_depth():
    corpus, examples = _corpus(), _examples()
    config = MiningConfig(n_negatives=2, depth=6, skip=2, seed=3)
    a = mine_hard_negatives(examples, corpus, config)
    assert a == mine_hard_negatives(examples, corpus, config)
    full = mine_hard_negatives(examples, corpus, dataclasses.replace(config, n_negatives=30))
    for x, y in zip(a, full):
        assert set(x.negatives) <= set(y.negatives) and len(y.negatives) <= 4


def test_dense_filter_drops_candidates_close_to_the_positive(bert_mlm):
    corpus, examples = _corpus(), _examples()[:3]
    base = MiningConfig(retriever="dense", model=str(bert_mlm), n_negatives=3, depth=10)
    kept = mine_hard_negatives(examples, corpus, dataclasses.replace(base, max_similarity=1.01))
    assert all(len(m.negatives) == 3 for m in kept)
    gone = mine_hard_negatives(examples, corpus, dataclasses.replace(base, max_similarity=-1.01))
    assert all(m.negatives == () for m in gone)
    hybrid = dataclasses.replace(base, retriever="hybrid", max_similarity=None)
    assert all(len(m.negatives) == 3 for m in mine_hard_negatives(examples, corpus, hybrid))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retriever": "splade"}, "retriever"),
        ({"retriever": "dense"}, "dense model"),
        ({"depth": 0}, "depth"),
        ({"skip": 100}, "skip"),
        ({"n_negatives": 0}, "n_negatives"),
        ({"max_similarity": float("nan")}, "max_similarity"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MiningConfig(**kwargs)


def test_bad_inputs():
    with pytest.raises(TypeError, match="TrainExample"):
        mine_hard_negatives(["q"], ["doc"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="empty"):
        mine_hard_negatives([], ["doc"])
    with pytest.raises(TypeError, match="MiningConfig"):
        mine_hard_negatives(_examples(), ["doc"], {"depth": 3})  # type: ignore[arg-type]
