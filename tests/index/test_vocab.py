"""The on-disk vocabulary: the same term ids as the in-memory one, commits that write their new
terms only, and a load that reads no term."""

from __future__ import annotations

import numpy as np
import pytest

from granite_index.encoders.analyzer import Analyzer, Vocabulary
from granite_index.index.vocab import StoredVocabulary

TEXTS = [
    "The runners were running; the RUNNER ran.",
    "",
    "the of and",  # stop words only
    "Übergrößen straße Café x-ray 42",
    "信息检索 and information retrieval",
    "running again, retrieval again",
]


def _same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_same_ids_as_the_in_memory_vocabulary():
    an = Analyzer("en")
    stored, plain = StoredVocabulary(), Vocabulary()
    for texts, grow in ((TEXTS[:3], True), (["retrieval runner", "zebra"], False), (TEXTS, True)):
        _same(stored.encode_texts(an, texts, grow=grow), plain.encode_texts(an, texts, grow=grow))
    tokens = [["zebra", "runner", "zebra"], ["new-term"], []]
    _same(stored.encode(tokens, grow=False), plain.encode(tokens, grow=False))
    _same(stored.encode(tokens, grow=True), plain.encode(tokens, grow=True))
    assert stored.terms == plain.terms and len(stored) == len(plain)
    assert stored.get("zebra") == plain.get("zebra") and stored.get("absent") is None
    assert stored[stored.get("retriev")] == "retriev" and "retriev" in stored
    assert stored.add("retriev") == plain.add("retriev")  # present: its id, nothing added
    with pytest.raises(IndexError):
        stored[len(stored)]


def test_save_writes_the_new_terms_only_and_load_reads_them_back(tmp_path):
    an = Analyzer("en")
    vocab = StoredVocabulary()
    vocab.encode_texts(an, [f"word{i} shared" for i in range(500)], grow=True)
    vocab.save(tmp_path / "v1", segments_dir=tmp_path / "segments")
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "segments").rglob("*")}
    vocab.encode_texts(an, ["shared brandnew"], grow=True)
    vocab.save(tmp_path / "v2", segments_dir=tmp_path / "segments")
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "segments").rglob("*")}
    assert all(after[p] == t for p, t in first.items())  # nothing rewritten
    new = {p.relative_to(tmp_path / "segments").parts[0] for p in set(after) - set(first)}
    assert len(new) == 1  # one segment: the new term
    assert StoredVocabulary.segment_files(tmp_path / "v2") >= new
    back = StoredVocabulary.load(tmp_path / "v2")
    assert len(back) == 502 and back.terms == vocab.terms
    got = back.encode_texts(an, ["brandnew word7 unknown"], grow=False)
    _same(got, vocab.encode_texts(an, ["brandnew word7 unknown"], grow=False))
    assert (
        back.add("later") == 502 and StoredVocabulary.load(tmp_path / "v1").get("brandnew") is None
    )


def test_terms_given_at_creation_keep_first_ids():
    v = StoredVocabulary(["a", "b", "a", "c"])
    assert v.terms == ["a", "b", "c"] and v.get("c") == 2 and v.add("d") == 3


@pytest.mark.parametrize("cls", [Vocabulary, StoredVocabulary])
def test_terms_of_reads_a_batch_of_ids(cls):
    vocab = cls(["alpha", "beta", "gamma", "delta"])
    assert vocab.terms_of([2, 0, 2, 3]) == ["gamma", "alpha", "gamma", "delta"]
    assert vocab.terms_of([]) == []
    assert [vocab[i] for i in range(4)] == vocab.terms_of([0, 1, 2, 3])
    for bad in ([4], [-1]):
        with pytest.raises(IndexError):
            vocab.terms_of(bad)
