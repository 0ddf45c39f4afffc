"""Lexical analysis for BM25: Unicode tokenisation, case folding, stop words, Snowball stemming.

The pipeline, per text:

1. NFKC normalisation (only for non-ASCII text) and ``str.casefold``;
2. word runs of letters, digits and combining marks (``regex``'s ``\\p{L}\\p{N}\\p{M}``, so
   Devanagari vowel signs and Thai tone marks stay inside their words, which Python's ``\\w`` does not);
3. runs in scripts written without spaces (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) are
   cut into overlapping bigrams of grapheme clusters (a lone cluster stays a unigram). This is
   Lucene's CJK bigram approach: no dictionary to ship, no segmentation errors, and every word of two
   or more characters is matched by its bigrams; it is what Lucene's CJKAnalyzer does for Chinese and
   Japanese, applied to Thai as well instead of a dictionary segmenter;
4. stop words dropped (before stemming);
5. Snowball stemming (PyStemmer), memoised per analyzer.

Stop words (``stopwords="auto"``): for English, Lucene's classic 33-word English set (a short list:
BM25's idf already discounts frequent words, and long lists drop content words such as "first" or
"system"); for other languages, the list from the ``stop-words`` package when it has one.
"""

from __future__ import annotations

import collections
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import regex

#: ISO 639-1 code → Snowball algorithm name (PyStemmer); languages absent here are not stemmed.
SNOWBALL = {
    "ar": "arabic",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "en": "english",
    "es": "spanish",
    "et": "estonian",
    "eu": "basque",
    "fa": "persian",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "ne": "nepali",
    "nl": "dutch",
    "no": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
}

#: ISO 639-1 → the ``stop-words`` package's language name.
_STOP_WORDS_NAMES = {
    "ar": "arabic",
    "bg": "bulgarian",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "es": "spanish",
    "fa": "persian",
    "fi": "finnish",
    "fr": "french",
    "he": "hebrew",
    "hi": "hindi",
    "hu": "hungarian",
    "id": "indonesian",
    "it": "italian",
    "ko": "korean",
    "nl": "dutch",
    "no": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sk": "slovak",
    "sv": "swedish",
    "tr": "turkish",
    "uk": "ukrainian",
    "vi": "vietnamese",
    "zh": "chinese",
    "ja": "japanese",
}

#: Lucene's classic English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET).
ENGLISH_STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then "
    "there these they this to was will with".split()
)

_NO_SPACE = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_WORD = regex.compile(r"[\p{L}\p{N}\p{M}]+")
# the same classes on ASCII text; two patterns, as IGNORECASE makes matching ~25 % slower
_ASCII_LOWER_WORD = re.compile(r"[a-z0-9]+")
_ASCII_WORD = re.compile(r"[A-Za-z0-9]+")
# Text without combining marks or no-space scripts can use the stdlib's faster Unicode word class
# ([^\W_] = letters and digits); these ranges are the scripts whose words carry marks (combining
# diacritics, Hebrew / Arabic points, Indic, Thai, Lao, Tibetan, Myanmar, Khmer) or have no spaces.
_NEEDS_FULL = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670"
    "\u06d6-\u06ed\u0711\u0730-\u074a\u0900-\u0fff\u1000-\u109f\u1780-\u17ff"
    "\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\u2e80-\u9fff\ua000-\ua4cf\ua8e0-\ua8ff"
    "\uac00-\ud7af\uf900-\ufaff\ufe20-\ufe2f\U00020000-\U0003ffff]"
)
_UNICODE_WORD = re.compile(r"[^\W_]+")
_HAS_NO_SPACE = regex.compile(f"[{_NO_SPACE}]")
# a word run split into pieces: runs of no-space-script clusters, or runs of anything else
_PIECES = regex.compile(
    rf"((?:[{_NO_SPACE}]\p{{M}}*)+)|((?:(?![{_NO_SPACE}])[\p{{L}}\p{{N}}\p{{M}}])+)"
)
_CLUSTER = regex.compile(r"\X")


@dataclass(frozen=True)
class AnalyzerConfig:
    """What an :class:`Analyzer` does; saved with the index so queries are analysed the same way."""

    language: str = "en"
    stopwords: str | tuple[str, ...] | None = "auto"
    stem: bool = True
    lowercase: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if isinstance(self.stopwords, tuple):
            d["stopwords"] = list(self.stopwords)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnalyzerConfig:
        sw = d.get("stopwords", "auto")
        return cls(
            language=d.get("language", "en"),
            stopwords=tuple(sw) if isinstance(sw, list) else sw,
            stem=d.get("stem", True),
            lowercase=d.get("lowercase", True),
        )


class Analyzer:
    """Turns text into index terms for one language.

    Parameters
    ----------
    language : str
        ISO 639-1 code (``"en"``, ``"de"``, ``"zh"``, ...) or ``"none"`` (no stemming, no stop words).
        Stemming uses Snowball where it has the language (see :data:`SNOWBALL`).
    stopwords : "auto", None, or iterable of str
        ``"auto"``: the language's default list (see module docs); None: keep every word.
    stem : bool
        Apply the Snowball stemmer when the language has one.
    lowercase : bool
        Case-fold before anything else.

    Examples
    --------
    >>> Analyzer("en").tokens("The runners were running quickly")
    ['runner', 'were', 'run', 'quick']
    >>> Analyzer("zh").tokens("信息检索")
    ['信息', '息检', '检索']
    """

    def __init__(
        self,
        language: str = "en",
        stopwords: str | Iterable[str] | None = "auto",
        stem: bool = True,
        lowercase: bool = True,
    ) -> None:
        if not isinstance(language, str) or not language:
            raise ValueError(f"language must be an ISO 639-1 code such as 'en'; got {language!r}")
        language = language.lower()
        if isinstance(stopwords, str) and stopwords != "auto":
            raise ValueError(
                f"stopwords must be 'auto', None or a list of words; got {stopwords!r}"
            )
        if stopwords is not None and not isinstance(stopwords, str):
            stopwords = tuple(sorted({str(w) for w in stopwords}))
        self.config = AnalyzerConfig(language, stopwords, bool(stem), bool(lowercase))
        self._stop = self._stop_set()
        self._stemmer = None
        if stem and language in SNOWBALL:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(SNOWBALL[language])
        self._memo = _TermMemo(self._term)

    @classmethod
    def from_config(cls, config: AnalyzerConfig | dict[str, Any]) -> Analyzer:
        if isinstance(config, dict):
            config = AnalyzerConfig.from_dict(config)
        return cls(config.language, config.stopwords, config.stem, config.lowercase)

    def _stop_set(self) -> frozenset[str]:
        sw, lang = self.config.stopwords, self.config.language
        if sw is None:
            return frozenset()
        if sw != "auto":
            words = sw
        elif lang == "en":
            return ENGLISH_STOP_WORDS
        elif lang in _STOP_WORDS_NAMES:
            from stop_words import get_stop_words

            words = get_stop_words(_STOP_WORDS_NAMES[lang])
        else:
            return frozenset()
        return frozenset(self._normalise(w) for w in words)

    def _normalise(self, text: str) -> str:
        if not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        return text.casefold() if self.config.lowercase else text

    def _term(self, word: str) -> str:
        """A word → its index term ("" for a stop word); memoised by ``self._memo``."""
        if word in self._stop:
            return ""
        if self._stemmer is not None:
            return self._stemmer.stemWord(word)
        return word

    def words(self, text: str) -> list[str]:
        """Text → words (before stop words and stemming), with no-space scripts as bigrams."""
        if text.isascii():  # fast path: no normalisation, no scripts without spaces
            if self.config.lowercase:
                return _ASCII_LOWER_WORD.findall(text.lower())
            return _ASCII_WORD.findall(text)
        text = self._normalise(text)
        if not _NEEDS_FULL.search(text):
            return _UNICODE_WORD.findall(text)
        words = _WORD.findall(text)
        if not _HAS_NO_SPACE.search(text):
            return words
        out: list[str] = []
        for word in words:
            if not _HAS_NO_SPACE.search(word):
                out.append(word)
                continue
            for no_space, other in _PIECES.findall(word):
                if other:
                    out.append(other)
                    continue
                clusters = _CLUSTER.findall(no_space)
                if len(clusters) == 1:
                    out.append(clusters[0])
                else:
                    out.extend(a + b for a, b in zip(clusters, clusters[1:]))
        return out

    def tokens(self, text: str) -> list[str]:
        """Text → index terms, in order, repeats kept."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str; got {type(text).__name__}")
        # known words are one C-level dict lookup each; the memo computes unseen ones
        return list(filter(None, map(self._memo.__getitem__, self.words(text))))  # stop words: ""

    def __repr__(self) -> str:
        return f"Analyzer({self.config})"


class _TermMemo(dict):
    """word → index term, computed by ``term`` on first sight and kept (up to 2M words)."""

    __slots__ = ("_compute",)
    LIMIT = 2_000_000

    def __init__(self, term: Any) -> None:
        super().__init__()
        self._compute = term

    def __missing__(self, word: str) -> str:
        term = self._compute(word)
        if len(self) < self.LIMIT:
            self[word] = term
        return term


class Vocabulary:
    """Term string ↔ term id (dense, in order of first sight). Append-only.

    Lookups and additions go through :meth:`lookup` and :meth:`extend`, a batch at a time, so a
    subclass may keep the terms elsewhere (on disk: ``granite_index.index.vocab``).
    """

    def __init__(self, terms: Iterable[str] = ()) -> None:
        self._terms: list[str] = list(terms)
        self._ids: dict[str, int] = dict(zip(self._terms, range(len(self._terms))))
        self._words: dict[str, int] = {}  # encode_texts' memo: word → term id (-1: stop word)
        self._words_of: Analyzer | None = None  # the analyzer the memo is for
        if len(self._ids) < len(self._terms):  # repeats: each term keeps its first id
            given, self._terms, self._ids = self._terms, [], {}
            for t in given:
                self.add(t)

    # ------------------------------------------------------------ storage (batch at a time)
    def terms_of(self, ids: list[int]) -> list[str]:
        """The terms of term ids."""
        n = len(self._terms)
        bad = [i for i in ids if not 0 <= i < n]
        if bad:
            raise IndexError(f"term ids out of range (vocabulary of {n} terms): {bad[:5]}")
        return [self._terms[i] for i in ids]

    def lookup(self, terms: list[str]) -> list[int | None]:
        """The ids of ``terms`` (None for a term not in the vocabulary)."""
        return list(map(self._ids.get, terms))

    def extend(self, terms: list[str]) -> list[int]:
        """Add ``terms`` (distinct, none in the vocabulary yet) with the next ids, in order."""
        start = len(self._terms)
        self._terms.extend(terms)
        self._ids.update(zip(terms, range(start, start + len(terms))))
        return list(range(start, start + len(terms)))

    def __len__(self) -> int:
        return len(self._terms)

    def __getitem__(self, tid: int) -> str:
        return self._terms[tid]

    @property
    def terms(self) -> list[str]:
        return self._terms

    # ------------------------------------------------------------ one term at a time
    def add(self, term: str) -> int:
        tid = self._ids.get(term)
        if tid is None:
            tid = self._ids[term] = len(self._terms)
            self._terms.append(term)
        return tid

    def get(self, term: str) -> int | None:
        return self._ids.get(term)

    def __contains__(self, term: str) -> bool:
        return term in self._ids

    # ------------------------------------------------------------ encoding
    def _ids_of(self, unique: list[str], grow: bool) -> list[int | None]:
        """Ids of distinct terms; with ``grow``, the missing ones added in this order."""
        found = self.lookup(unique)
        if grow:
            missing = [t for t, f in zip(unique, found) if f is None]
            if missing:
                new = iter(self.extend(missing))
                found = [next(new) if f is None else f for f in found]
        return found

    def encode(
        self, docs: Iterable[list[str]], *, grow: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token lists → CSR term counts ``(indptr int64, term ids uint32, counts float32)``.

        ``grow=False`` (queries) drops unknown terms instead of adding them. Within a row, term ids
        are sorted ascending. New terms get ids in order of first sight (deterministic).
        """
        lens: list[int] = []
        tokens: list[str] = []
        for row in docs:
            tokens.extend(row)
            lens.append(len(row))
        unique = list(dict.fromkeys(tokens))
        ids = {t: i for t, i in zip(unique, self._ids_of(unique, grow)) if i is not None}
        flat = np.fromiter(map(ids.get, tokens, itertools.repeat(-1)), np.int64, len(tokens))
        return _dropping_unknown(lens, flat)

    def encode_texts(
        self, analyzer: Analyzer, texts: Iterable[str], *, grow: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Texts → CSR term counts: the arrays (and, with ``grow``, the new ids) of
        ``encode(analyzer.tokens(t) for t in texts)``, faster: each word costs one lookup in a
        memo of word → term id kept for ``analyzer``; the words not in it are resolved in one
        batch. Nothing is added unless every text is a str.
        """
        texts = texts if isinstance(texts, list) else list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] must be str; got {type(t).__name__}")
        if self._words_of is not analyzer:
            self._words, self._words_of = {}, analyzer
        memo: Mapping[str, int] = self._words
        rows = [analyzer.words(t) for t in texts]
        lens = [len(row) for row in rows]
        words = list(itertools.chain.from_iterable(rows))
        flat = np.fromiter(map(memo.get, words, itertools.repeat(_UNSEEN)), np.int64, len(words))
        miss = np.flatnonzero(flat == _UNSEEN).tolist()
        if miss:  # words the memo has not seen: resolved in one batch, then looked up again
            left_out = self._learn(analyzer, list(dict.fromkeys(words[i] for i in miss)), grow)
            if left_out:  # the memo is full: this call also reads the words it could not keep
                memo = collections.ChainMap(memo, left_out)
            flat[miss] = [memo.get(words[i], -1) for i in miss]
        return _dropping_unknown(lens, flat)

    def _learn(self, analyzer: Analyzer, words: list[str], grow: bool) -> dict[str, int]:
        """Put ``words`` (none in the memo) into the memo: -1 for a stop word, else the term's
        id. Without ``grow``, a word whose term the vocabulary lacks is left out (a later add may
        give it an id). Entries are written once their ids are final, so a search reading the
        memo while another call grows it sees only final entries. Returns the entries the memo
        had no room for (it keeps up to ``_TermMemo.LIMIT`` words)."""
        term_of = analyzer._memo  # noqa: SLF001 - the analyzer's memo, same module
        terms = [term_of[w] for w in words]
        unique = list(dict.fromkeys(t for t in terms if t))
        ids = dict(zip(unique, self._ids_of(unique, grow)))
        room = _TermMemo.LIMIT - len(self._words)
        left_out: dict[str, int] = {}
        for word, term in zip(words, terms):
            tid = ids.get(term) if term else -1
            if tid is None:
                continue
            if room > 0:
                self._words[word] = tid
                room -= 1
            else:
                left_out[word] = tid
        return left_out


#: a word the memo has not seen (stop words are -1 in it)
_UNSEEN = -2


def _dropping_unknown(lens: list[int], flat: np.ndarray) -> tuple[np.ndarray, ...]:
    """CSR term counts of rows of ``lens`` term ids in ``flat``, the ids < 0 dropped."""
    keep = flat >= 0  # stop words and (without grow) unknown terms are dropped
    if not keep.all():
        rows = np.repeat(np.arange(len(lens)), lens)
        flat = flat[keep]
        lens = np.bincount(rows[keep], minlength=len(lens)).tolist()
    return _counts(lens, flat)


def _counts(lens: list[int], flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-row token counts + their flat term ids → CSR ``(indptr, term ids, counts)``."""
    indptr = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=indptr[1:])
    if len(flat) == 0:
        return indptr, np.zeros(0, np.uint32), np.zeros(0, np.float32)
    from granite_index._kernels.terms import count_terms

    return count_terms(indptr, flat, int(flat.max()) + 1)


def counts_csr(indptr: np.ndarray, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of term ids (with repeats) → CSR of (sorted unique term id, count) per row.

    Plain numpy (a sort); the numpy twin of :func:`granite_index._kernels.terms.count_terms`, which indexing uses.
    """
    n = len(indptr) - 1
    if len(flat) == 0:
        return np.zeros(n + 1, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.float32)
    row = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
    key = row * (int(flat.max()) + 1) + flat
    uniq, counts = np.unique(key, return_counts=True)
    width = int(flat.max()) + 1
    rows, terms = np.divmod(uniq, width)
    out_ptr = np.zeros(n + 1, np.int64)
    np.add.at(out_ptr, rows + 1, 1)
    return np.cumsum(out_ptr), terms.astype(np.uint32), counts.astype(np.float32)
