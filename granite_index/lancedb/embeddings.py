"""granite-index encoders as LanceDB embedding functions (``"granite"``, ``"granite-sparse"``).

Registered in LanceDB's embedding registry on import of :mod:`granite_index.lancedb`, so a
``LanceModel`` can declare ``SourceField()`` / ``VectorField()`` with them and LanceDB embeds on
``tbl.add`` and on ``tbl.search("text")``. LanceDB stores ``safe_model_dump()`` in the table's
schema metadata (``embedding_functions``) and rebuilds the function with
``registry.get(name).create(**dump)`` when the table is opened; the dump here holds every field
explicitly (not only the arguments given), so a table keeps the model it was built with even if a
later version changes a default.

Models load lazily, on first use, and are cached per process by configuration, so each row batch
(and each reopened table) reuses one loaded model.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from lancedb.embeddings import TextEmbeddingFunction, register

from granite_index.encoders.resolve import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL
from granite_index.validate import check_queries


@lru_cache(maxsize=8)
def _dense_encoder(name: str, device: str | None, batch_size: int, precision: str) -> Any:
    from granite_index.encoders.dense import DenseEncoder

    return DenseEncoder(name, device=device, batch_size=batch_size, precision=precision)


@lru_cache(maxsize=8)
def _sparse_encoder(
    name: str,
    device: str | None,
    batch_size: int,
    query_max_terms: int | None,
    doc_max_terms: int | None,
) -> Any:
    from granite_index.encoders.sparse import SparseEncoder

    return SparseEncoder(
        name,
        device=device,
        batch_size=batch_size,
        query_max_terms=query_max_terms,
        doc_max_terms=doc_max_terms,
    )


def _texts(texts: Any) -> list[Any]:
    """LanceDB hands a list, numpy array or Arrow array of texts."""
    return list(texts.tolist() if isinstance(texts, np.ndarray) else texts)


def _usable(texts: list[Any]) -> list[int]:
    """Positions of the texts that can be encoded (non-empty str)."""
    return [i for i, t in enumerate(texts) if isinstance(t, str) and t.strip()]


def _queries(query: Any) -> list[str]:
    """Query texts LanceDB hands over, through the engine's one query check (a ValueError, as
    LanceDB expects of an embedding function)."""
    texts = _texts(query)
    try:
        return check_queries(texts, "query")
    except TypeError as exc:
        raise ValueError(f"a query is null or not a str: {texts!r}") from exc


def _dense_rows(encode: Any, texts: Any) -> list[np.ndarray | None]:
    """One float32 (dim,) vector per text; ``None`` for a null or blank text, which LanceDB
    then handles by the table's ``on_bad_vectors`` policy (default: raise)."""
    texts = _texts(texts)
    ok = _usable(texts)
    out: list[np.ndarray | None] = [None] * len(texts)
    if ok:
        for i, v in zip(ok, encode([texts[i] for i in ok])):
            out[i] = v
    return out


class _GraniteFunction(TextEmbeddingFunction):
    """Shared: a full, explicit config dump (see module docs); no retries (a local model's
    error is not a rate limit, so it is raised at once, as it is)."""

    def compute_query_embeddings_with_retry(self, *args: Any, **kwargs: Any) -> list[Any]:
        return self.compute_query_embeddings(*args, **kwargs)

    def compute_source_embeddings_with_retry(self, *args: Any, **kwargs: Any) -> list[Any]:
        return self.compute_source_embeddings(*args, **kwargs)

    def safe_model_dump(self) -> dict[str, Any]:
        dump = self.model_dump(exclude={"max_retries"})
        dump.update(getattr(self, "_original_args", {}))  # keeps ``$var:`` references as given
        return dump


@register("granite")
class GraniteEmbeddings(_GraniteFunction):
    """Dense embeddings from :class:`granite_index.DenseEncoder` (L2-normalised float32).

    Parameters
    ----------
    name : str
        Any model ``DenseEncoder`` loads: a local folder, a Hugging Face id, or the bundled
        ``"bundled:all-MiniLM-L6-v2"`` (default, offline, 384-d).
    device : str, optional
        ``"cpu"``, ``"cuda"`` ...; default: CUDA when available.
    batch_size : int
        Texts per forward pass.
    precision : {"auto", "fp32", "bf16", "fp16"}
        As for ``DenseEncoder``.

    Examples
    --------
    >>> from lancedb.embeddings import get_registry
    >>> func = get_registry().get("granite").create()
    >>> class Doc(LanceModel):                        # doctest: +SKIP
    ...     text: str = func.SourceField()
    ...     vector: Vector(func.ndims()) = func.VectorField()
    """

    name: str = DEFAULT_DENSE_MODEL
    device: str | None = None
    batch_size: int = 32
    precision: str = "auto"

    @property
    def encoder(self) -> Any:
        """The loaded :class:`~granite_index.DenseEncoder` (loaded on first use, cached)."""
        return _dense_encoder(self.name, self.device, int(self.batch_size), self.precision)

    def ndims(self) -> int:
        return int(self.encoder.dim)

    def generate_embeddings(self, texts: Any, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        """Documents → list of float32 (dim,) vectors (with the model's document prefix)."""
        return _dense_rows(self.encoder.encode_documents, texts)

    def compute_query_embeddings(self, query: Any, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        """Queries → list of float32 (dim,) vectors (with the model's query prefix)."""
        return list(self.encoder.encode_queries(_queries(self.sanitize_input(query))))


@register("granite-sparse")
class GraniteSparseEmbeddings(_GraniteFunction):
    """SPLADE term weights from :class:`granite_index.SparseEncoder`.

    Its natural output is sparse (:meth:`encode_documents` / :meth:`encode_queries` give CSR
    :class:`~granite_index.encoders.sparse.SparseVectors`), which
    :func:`granite_index.lancedb.add_sparse_column` stores as ``<name>_indices`` /
    ``<name>_values`` list columns. As a LanceDB vector function (``VectorField``) it gives dense
    float32 vectors of vocabulary size, which only suits small tables.

    Parameters
    ----------
    name : str
        A masked-LM folder, Hugging Face id, or the bundled ``"bundled:splade-tiny"`` (default).
    device : str, optional
    batch_size : int
    query_max_terms, doc_max_terms : int, optional
        Keep the heaviest terms per query / document (default: all).
    """

    name: str = DEFAULT_SPARSE_MODEL
    device: str | None = None
    batch_size: int = 32
    query_max_terms: int | None = None
    doc_max_terms: int | None = None

    @property
    def encoder(self) -> Any:
        """The loaded :class:`~granite_index.SparseEncoder` (loaded on first use, cached)."""
        return _sparse_encoder(
            self.name, self.device, int(self.batch_size), self.query_max_terms, self.doc_max_terms
        )

    def ndims(self) -> int:
        return int(self.encoder.vocab_size)

    def encode_documents(self, texts: Any) -> Any:
        """Documents → ``SparseVectors`` (CSR: indptr int64, indices uint32, values float32)."""
        return self.encoder.encode_documents(_texts(self.sanitize_input(texts)))

    def encode_queries(self, texts: Any) -> Any:
        """Queries → ``SparseVectors`` (CSR)."""
        return self.encoder.encode_queries(_queries(self.sanitize_input(texts)))

    def generate_embeddings(self, texts: Any, *args: Any, **kwargs: Any) -> list[Any]:
        """Documents → dense float32 (vocab_size,) vectors (``None`` for a blank text)."""
        return _dense_rows(lambda t: self.encode_documents(t).tocsr().toarray(), texts)

    def compute_query_embeddings(self, query: Any, *args: Any, **kwargs: Any) -> list[Any]:
        return list(self.encode_queries(query).tocsr().toarray())
