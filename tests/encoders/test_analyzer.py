"""Analyzer: tokenisation per script, stop words, stemming, config round-trip; Vocabulary / CSR."""

from __future__ import annotations

import numpy as np
import pytest

from granite_index.encoders.analyzer import Analyzer, AnalyzerConfig, Vocabulary, counts_csr


def test_english_stems_and_drops_short_stop_list():
    toks = Analyzer("en").tokens("The runners were running quickly to the Systems")
    assert toks == ["runner", "were", "run", "quick", "system"]


def test_no_stemming_and_no_stopwords():
    toks = Analyzer("en", stopwords=None, stem=False).tokens("The Runners")
    assert toks == ["the", "runners"]


def test_custom_stopwords_are_normalised():
    assert Analyzer("en", stopwords=["Runners"], stem=False).tokens("runners run") == ["run"]


def test_unicode_folding_and_german_stemming():
    assert Analyzer("de").tokens("Die Häuser sind GROSS und groß") == ["haus", "gross", "gross"]


def test_devanagari_vowel_signs_stay_in_words():
    # Python's \w splits "हिन्दी" at its vowel signs; the analyzer must not
    words = Analyzer("hi", stopwords=None, stem=False).words("हिन्दी भाषा")
    assert words == ["हिन्दी", "भाषा"]


@pytest.mark.parametrize(
    "lang,text,expected",
    [
        ("zh", "信息检索", ["信息", "息检", "检索"]),
        ("zh", "猫", ["猫"]),
        ("zh", "GPU计算", ["gpu", "计算"]),
        ("ja", "すし", ["すし"]),
    ],
)
def test_no_space_scripts_become_bigrams(lang, text, expected):
    assert Analyzer(lang, stopwords=None).tokens(text) == expected


def test_thai_bigrams_keep_marks_with_their_letters():
    toks = Analyzer("th").tokens("ง่าย")
    assert toks == ["ง่า", "าย"]  # the tone mark stays on its consonant


def test_stemmerless_language_still_tokenises():
    assert Analyzer("vi", stopwords=None).tokens("Thành phố Hồ Chí Minh") == [
        "thành",
        "phố",
        "hồ",
        "chí",
        "minh",
    ]


def test_config_round_trip():
    a = Analyzer("en", stopwords=["x", "y"], stem=False)
    b = Analyzer.from_config(AnalyzerConfig.from_dict(a.config.to_dict()))
    assert b.config == a.config
    assert b.tokens("x Yy z") == a.tokens("x Yy z") == ["yy", "z"]


@pytest.mark.parametrize("bad", [None, "", 3])
def test_bad_language(bad):
    with pytest.raises(ValueError, match="language"):
        Analyzer(bad)


def test_bad_stopwords_string():
    with pytest.raises(ValueError, match="stopwords"):
        Analyzer("en", stopwords="english")


def test_non_string_text():
    with pytest.raises(TypeError, match="str"):
        Analyzer("en").tokens(None)


def test_vocabulary_csr():
    v = Vocabulary()
    indptr, terms, counts = v.encode([["a", "b", "a"], [], ["c", "a"]], grow=True)
    assert indptr.tolist() == [0, 2, 2, 4]
    assert terms.tolist() == [0, 1, 0, 2]
    assert counts.tolist() == [2, 1, 1, 1]
    assert v.terms == ["a", "b", "c"]
    # queries never grow the vocabulary
    indptr, terms, counts = v.encode([["zz", "c"]], grow=False)
    assert terms.tolist() == [2] and len(v) == 3


def test_counts_csr_matches_counter():
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, 7, rng.integers(0, 9)).tolist() for _ in range(30)]
    indptr = np.cumsum([0] + [len(r) for r in rows])
    ptr, terms, counts = counts_csr(indptr, np.array(sum(rows, []), np.int64))
    from collections import Counter

    for i, r in enumerate(rows):
        got = dict(zip(terms[ptr[i] : ptr[i + 1]].tolist(), counts[ptr[i] : ptr[i + 1]].tolist()))
        assert got == dict(Counter(r))


def test_query_encoding_drops_unknown_terms_per_row():
    v = Vocabulary(["a", "b"])
    indptr, terms, counts = v.encode([["zz"], ["b", "zz", "b"], [], ["a"]], grow=False)
    assert indptr.tolist() == [0, 0, 1, 1, 2]
    assert terms.tolist() == [1, 0] and counts.tolist() == [2, 1]


def test_encode_texts_equals_encoding_the_tokens():
    texts = [
        "The runners were running; the RUNNER ran.",
        "",
        "the of and",  # stop words only
        "Übergrößen straße Café x-ray 42",
        "信息检索 and information retrieval",
        "running again",
    ]
    a = Analyzer("en")
    fast, slow = Vocabulary(), Vocabulary()
    for got, want in zip(
        fast.encode_texts(a, texts[:4], grow=True),
        slow.encode([a.tokens(t) for t in texts[:4]], grow=True),
    ):
        np.testing.assert_array_equal(got, want)
    # queries: unknown words are dropped and not remembered as unknown ...
    q = ["retrieval runner", "zebra"]
    for got, want in zip(
        fast.encode_texts(a, q, grow=False), slow.encode([a.tokens(t) for t in q], grow=False)
    ):
        np.testing.assert_array_equal(got, want)
    assert fast.terms == slow.terms
    # ... so a later add gives them ids, in the same order as the token path
    for got, want in zip(
        fast.encode_texts(a, texts[4:], grow=True),
        slow.encode([a.tokens(t) for t in texts[4:]], grow=True),
    ):
        np.testing.assert_array_equal(got, want)
    assert fast.terms == slow.terms and "retriev" in fast
    before = list(fast.terms)
    with pytest.raises(TypeError, match=r"texts\[1\] must be str"):
        fast.encode_texts(a, ["brand new words", None], grow=True)
    assert fast.terms == before  # nothing added


def test_vocabulary_from_terms_keeps_first_ids():
    v = Vocabulary(["a", "b", "c"])
    assert [v.get(t) for t in "abc"] == [0, 1, 2] and len(v) == 3
    w = Vocabulary(["a", "b", "a", "c"])  # a repeat keeps its first id
    assert w.terms == ["a", "b", "c"] and w.get("c") == 2 and w.add("d") == 3


def test_a_full_word_memo_still_encodes_every_word(monkeypatch):
    """Past the memo's bound, words it cannot keep are still encoded (not dropped)."""
    monkeypatch.setattr("granite_index.encoders.analyzer._TermMemo.LIMIT", 3)
    a = Analyzer("en")
    texts = ["alpha beta gamma delta", "delta epsilon zeta alpha", "the eta"]
    fast, slow = Vocabulary(), Vocabulary()
    for grow in (True, False):
        for got, want in zip(
            fast.encode_texts(a, texts, grow=grow),
            slow.encode([a.tokens(t) for t in texts], grow=grow),
        ):
            np.testing.assert_array_equal(got, want)
    assert fast.terms == slow.terms and len(fast.terms) == 7
