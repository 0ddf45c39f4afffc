"""What a collection keeps, one small frozen spec per leg: :class:`DenseSpec`, :class:`Bm25Spec`,
:class:`SpladeSpec`.

``Collection.create(path, legs=[DenseSpec(), Bm25Spec("de")])`` states the legs directly; the
keyword shorthand of :meth:`Collection.create` (``dense=``, ``sparse=``, ``model=`` ...) is turned
into the same specs by :func:`specs_from_options`. Each spec builds its encoder (loaded here, where
one is needed) and its empty index.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from granite_index.index.dense import DenseIndex, IndexKind
from granite_index.index.sparse import SparseIndex

if TYPE_CHECKING:  # the encoders (torch) load only when a spec needs them
    from granite_index.encoders.dense import DenseEncoder
    from granite_index.encoders.sparse import SparseEncoder

Precision = Literal["auto", "fp32", "bf16", "fp16"]
SparseKind = Literal["bm25", "splade"]


@dataclass(frozen=True)
class DenseSpec:
    """A dense leg: an encoder and a FAISS index.

    Parameters
    ----------
    model : str or path, optional
        Local folder, Hugging Face id, or None for the bundled all-MiniLM-L6-v2.
    encoder : DenseEncoder, optional
        An encoder already loaded (then ``model``, ``precision`` and ``batch_size`` are unused).
        Anything with ``dim``, ``config.to_dict()``, ``encode_documents`` and ``encode_queries``.
    index : {"auto", "flat", "ivf", "hnsw"}
        How the dense index searches (see :mod:`granite_index.index.dense`): ``auto`` (default)
        is exact below ``approximate_from`` vectors (200,000) and IVF past it; ``flat`` is always
        exact.
    index_params : dict, optional
        Further :class:`~granite_index.index.DenseIndexConfig` fields.
    precision, batch_size :
        Encoding options (not saved: they change nothing stored beyond bf16 rounding).
    """

    model: str | os.PathLike[str] | None = None
    encoder: Any = None
    index: IndexKind = "auto"
    index_params: Mapping[str, Any] | None = None
    precision: Precision = "auto"
    batch_size: int = 32

    def build_encoder(self) -> DenseEncoder:
        if self.encoder is not None:
            return self.encoder
        from granite_index.encoders.dense import DenseEncoder

        return DenseEncoder(self.model, precision=self.precision, batch_size=self.batch_size)

    def build_index(self, dim: int) -> DenseIndex:
        return DenseIndex(dim, self.index, device="cpu", **dict(self.index_params or {}))

    def manifest_entry(self) -> dict[str, Any]:
        return {"kind": self.index, **dict(self.index_params or {})}


@dataclass(frozen=True)
class Bm25Spec:
    """A BM25 leg: Lucene BM25 over texts analysed for ``language``.

    Parameters
    ----------
    language : str
        The analyzer's language (ISO 639-1; see :class:`~granite_index.Analyzer`).
    k1, b : float
        BM25 parameters (Lucene's 1.2 / 0.75).
    analyzer : mapping, optional
        Further analyzer options: ``stopwords``, ``stem``, ``lowercase``.
    """

    language: str = "en"
    k1: float = 1.2
    b: float = 0.75
    analyzer: Mapping[str, Any] = field(default_factory=dict)

    def build_index(self) -> SparseIndex:
        return SparseIndex.bm25(self.language, k1=self.k1, b=self.b, **dict(self.analyzer))


@dataclass(frozen=True)
class SpladeSpec:
    """A learned-sparse (SPLADE) leg: a masked-LM encoder and an impact index.

    Parameters
    ----------
    model : str or path, optional
        A masked-LM folder or Hugging Face id (e.g. ``"ibm-granite/granite-embedding-30m-sparse"``);
        None for the bundled SPLADE-tiny.
    encoder : SparseEncoder, optional
        An encoder already loaded (then ``model`` and ``params`` are unused).
    params : mapping, optional
        :class:`~granite_index.encoders.SparseEncoder` options (``query_max_terms``,
        ``doc_max_terms``, ``max_length``, ``batch_size`` ...).
    """

    model: str | os.PathLike[str] | None = None
    encoder: Any = None
    params: Mapping[str, Any] | None = None

    def build_encoder(self) -> SparseEncoder:
        if self.encoder is not None:
            return self.encoder
        from granite_index.encoders.sparse import SparseEncoder

        return SparseEncoder(self.model, **dict(self.params or {}))

    def build_index(self) -> SparseIndex:
        return SparseIndex("impact")


LegSpec = DenseSpec | Bm25Spec | SpladeSpec


def check_specs(specs: Sequence[LegSpec]) -> tuple[LegSpec, ...]:
    """Specs as given, checked: at least one, each a spec, no kind twice."""
    if isinstance(specs, (str, DenseSpec, Bm25Spec, SpladeSpec)):
        raise TypeError("legs must be a list of specs, e.g. [DenseSpec(), Bm25Spec()]")
    specs = tuple(specs)
    if not specs:
        raise ValueError("a collection needs an index: dense=True and/or sparse=...")
    for s in specs:
        if not isinstance(s, (DenseSpec, Bm25Spec, SpladeSpec)):
            raise TypeError(f"legs holds {type(s).__name__}; give DenseSpec, Bm25Spec, SpladeSpec")
    kinds = [type(s).__name__ for s in specs]
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"legs repeat a kind: {kinds}")
    return specs


def sparse_kinds(sparse: Any) -> tuple[str, ...]:
    """``Collection.create``'s ``sparse``: None, "bm25", "splade" or a list of them → a tuple."""
    if sparse is None:
        return ()
    kinds = (sparse,) if isinstance(sparse, str) else tuple(sparse)
    for kind in kinds:
        if kind not in ("bm25", "splade"):
            raise ValueError(f"sparse must be 'bm25', 'splade' or a list of them; got {sparse!r}")
    if len(set(kinds)) != len(kinds):
        raise ValueError(f"sparse repeats a kind: {sparse!r}")
    return kinds


def specs_from_options(
    *,
    model: str | os.PathLike[str] | None = None,
    encoder: Any = None,
    index: IndexKind = "auto",
    index_params: Mapping[str, Any] | None = None,
    precision: Precision = "auto",
    batch_size: int = 32,
    dense: bool = True,
    sparse: SparseKind | Sequence[SparseKind] | None = None,
    language: str = "en",
    bm25_params: Mapping[str, Any] | None = None,
    sparse_model: str | os.PathLike[str] | None = None,
    sparse_encoder: Any = None,
    sparse_params: Mapping[str, Any] | None = None,
) -> tuple[LegSpec, ...]:
    """The keyword shorthand of :meth:`Collection.create` as leg specs (see there)."""
    kinds = sparse_kinds(sparse)
    if not dense and not kinds:
        raise ValueError("a collection needs an index: dense=True and/or sparse=...")
    specs: list[LegSpec] = []
    if dense:
        specs.append(DenseSpec(model, encoder, index, index_params, precision, batch_size))
    elif encoder is not None or model is not None:
        raise ValueError("model / encoder given but dense=False")
    if "bm25" in kinds:
        params = dict(bm25_params or {})
        k1, b = params.pop("k1", 1.2), params.pop("b", 0.75)
        specs.append(Bm25Spec(language, k1, b, params))
    if "splade" in kinds:
        specs.append(SpladeSpec(sparse_model, sparse_encoder, sparse_params))
    elif sparse_encoder is not None or sparse_model is not None:
        raise ValueError("sparse_model / sparse_encoder given but 'splade' not in sparse")
    return tuple(specs)
