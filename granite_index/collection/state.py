"""A collection's in-memory state: the indexes built from leg specs (on create) or loaded from a
commit (on open), and the id ↔ key maps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from granite_index.collection.spec import Bm25Spec, DenseSpec, LegSpec, SpladeSpec
from granite_index.collection.store import Store
from granite_index.index.dense import DenseIndex, Device
from granite_index.index.idmap import IdMap
from granite_index.index.sparse import SparseIndex


@dataclass
class BuiltLegs:
    """Encoders and empty indexes made from specs (:func:`build_indexes`)."""

    encoder: Any = None
    dense: DenseIndex | None = None
    dense_entry: dict[str, Any] | None = None
    bm25: SparseIndex | None = None
    sparse_encoder: Any = None
    splade: SparseIndex | None = None
    encoder_options: dict[str, Any] | None = None


def build_indexes(specs: Sequence[LegSpec]) -> BuiltLegs:
    """Load each spec's encoder and make its empty index."""
    out = BuiltLegs(encoder_options={"precision": "auto", "batch_size": 32})
    for spec in specs:
        if isinstance(spec, DenseSpec):
            out.encoder = spec.build_encoder()
            out.dense = spec.build_index(out.encoder.dim)
            out.dense_entry = spec.manifest_entry()
            out.encoder_options = {"precision": spec.precision, "batch_size": spec.batch_size}
        elif isinstance(spec, Bm25Spec):
            out.bm25 = spec.build_index()
        elif isinstance(spec, SpladeSpec):
            out.sparse_encoder = spec.build_encoder()
            out.splade = spec.build_index()
    return out


@dataclass
class LoadedState:
    """The committed state of a collection as read by :func:`load_state`."""

    dense: DenseIndex | None
    bm25: SparseIndex | None
    splade: SparseIndex | None
    ids: IdMap


def load_state(store: Store, device: Device) -> LoadedState:
    """The indexes of ``store``'s commit (memory-mapped) and its id ↔ key map."""
    m = store.manifest
    dense = DenseIndex.load(store.dense_dir(), device=device) if m.dense_index is not None else None
    bm25 = SparseIndex.load(store.sparse_dir()) if m.sparse_index is not None else None
    splade = SparseIndex.load(store.sparse_dir(name="splade")) if m.splade_index else None
    return LoadedState(dense, bm25, splade, load_ids(store))


def load_ids(store: Store) -> IdMap:
    """The commit's id ↔ key map; a commit written before the map was kept on disk has it
    built from the documents (in memory; its next commit writes it)."""
    m = store.manifest
    if m.extra.get("ids"):
        return IdMap.load(store.ids_dir())
    ids = IdMap(m.id_type)
    ds = store.docs()
    if ds is not None and m.id_type is not None:
        table = ds.to_table(columns=["_key", "id"])
        ids.add(table.column("id").to_pylist(), table.column("_key").to_numpy(), m.id_type)
        ids.optimize()
    return ids


#: times a reader rereads the newest commit when a file vanished while it opened one
OPEN_ATTEMPTS = 20


def load_newest(store: Store, device: Device) -> tuple[Store, LoadedState]:
    """Load ``store``'s commit; when a writer removed one of its files meanwhile (a newer commit
    replaced it), read the newest commit and try again, as Lucene's readers do."""
    for attempt in range(OPEN_ATTEMPTS):
        try:
            return store, load_state(store, device)
        except FileNotFoundError:
            latest = store.latest()
            if attempt == OPEN_ATTEMPTS - 1 or latest.manifest == store.manifest:
                raise
            store = latest
    raise AssertionError("unreachable")  # pragma: no cover
