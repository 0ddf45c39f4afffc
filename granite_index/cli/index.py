"""``granite-index index``: build (or resume) a collection from a BEIR folder or an encoded dataset."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from granite_index.cli.common import (
    batch_opt,
    chunk_opt,
    fail,
    index_opt,
    language_opt,
    model_opt,
    open_or_create,
    precision_opt,
    sparse_model_opt,
)
from granite_index.collection import index_beir
from granite_index.errors import GraniteIndexError
from granite_index.eval import load_beir
from granite_index.jobs import collection_from_encoded


@click.command()
@click.argument(
    "data_dir", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Collection folder to create (or resume).",
)
@click.option(
    "--from-encoded",
    "from_encoded",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Build from a dataset made by `granite-index encode` (no DATA_DIR, no re-encoding): "
    "its dense / SPLADE vectors and models; add --bm25 for a BM25 leg.",
)
@click.option(
    "--dense/--no-dense", default=True, show_default=True, help="Keep a dense (FAISS) index."
)
@click.option(
    "--bm25/--no-bm25", default=False, show_default=True, help="Keep a BM25 inverted index."
)
@click.option(
    "--splade/--no-splade",
    default=False,
    show_default=True,
    help="Keep a learned-sparse (SPLADE) index.",
)
@model_opt
@sparse_model_opt
@index_opt
@precision_opt
@batch_opt
@language_opt
@chunk_opt
def index(
    data_dir: Path,
    out: Path,
    dense: bool,
    bm25: bool,
    splade: bool,
    model: str | None,
    sparse_model: str | None,
    index_kind: str,
    precision: str,
    batch_size: int,
    language: str,
    chunk: int,
    from_encoded: Path | None,
) -> None:
    """Build a collection from a BEIR-format folder (corpus.jsonl); re-running resumes."""
    if from_encoded is not None:
        if data_dir is not None or model or sparse_model or splade or not dense:
            raise click.UsageError(
                "--from-encoded takes no DATA_DIR, --model, --sparse-model, --splade or "
                "--no-dense: the encoded dataset decides them"
            )
        _index_encoded(from_encoded, out, bm25, index_kind, language, precision, batch_size, chunk)
        return
    if data_dir is None:
        raise click.UsageError("give DATA_DIR (a BEIR folder) or --from-encoded")
    modes = ["dense"] * dense + ["bm25"] * bm25 + ["sparse"] * splade
    if not modes:
        raise click.UsageError("nothing to build: give --dense, --bm25 and/or --splade")
    opts = dict(
        model=model,
        sparse_model=sparse_model,
        index=index_kind,
        precision=precision,
        batch_size=batch_size,
        language=language,
        modes=modes,
    )
    try:
        data = load_beir(data_dir, split=_any_split(data_dir))
        col, seconds, added = index_dataset(data, out, opts, chunk)
    except (GraniteIndexError, ValueError, TypeError, FileNotFoundError) as exc:
        fail(exc)
    rate = added / seconds if seconds > 0 and added else 0.0
    click.echo(
        f"indexed {added} new documents ({len(col)} in all) into {out} in {seconds:.1f}s ({rate:.1f} docs/s)"
    )


def _index_encoded(
    encoded: Path,
    out: Path,
    bm25: bool,
    index_kind: str,
    language: str,
    precision: str,
    batch_size: int,
    chunk: int,
) -> None:
    t0 = time.perf_counter()
    try:
        col = collection_from_encoded(
            out,
            encoded,
            index=index_kind,
            bm25=bm25,
            language=language,
            precision=precision,
            batch_size=batch_size,
            chunk_size=chunk,
            show_progress=True,
        )
    except (GraniteIndexError, ValueError, TypeError, FileNotFoundError) as exc:
        fail(exc)
    click.echo(
        f"indexed {len(col)} documents from {encoded} into {out} ({', '.join(col.modes)}) "
        f"in {time.perf_counter() - t0:.1f}s"
    )


def _any_split(data_dir: Path) -> str:
    splits = sorted(p.stem for p in (data_dir / "qrels").glob("*.tsv"))
    return "test" if "test" in splits or not splits else splits[0]


def index_dataset(
    data: Any, path: Path, opts: dict[str, Any], chunk: int
) -> tuple[Any, float, int]:
    """Open (or create) the collection at ``path`` and add the dataset's missing documents."""
    col = open_or_create(path, opts)
    t0 = time.perf_counter()
    added = index_beir(col, data, chunk_size=chunk)
    return col, time.perf_counter() - t0, added
