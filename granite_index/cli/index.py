"""``granite-index index``: build (or resume) a collection from a corpus (jsonl / parquet file,
folder of parquet files, Lance dataset, BEIR folder) or from an encoded dataset."""

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
from granite_index.collection import add_source, index_beir, read_batches
from granite_index.errors import GraniteIndexError
from granite_index.jobs import EncodedDataset, EncodeJobError, collection_from_encoded

CORPUS_KINDS = (
    "a .jsonl / .jsonl.gz or .parquet file, a folder of parquet files, a Lance dataset or a BEIR "
    "folder"
)


@click.command()
@click.argument(
    "corpus", metavar="CORPUS", required=False, type=click.Path(exists=True, path_type=Path)
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
    help="Build from a dataset made by `granite-index encode` (no CORPUS, no re-encoding): "
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
@click.option(
    "--id-field",
    default="id",
    show_default=True,
    help="The documents' id field or column (with 'id', BEIR's '_id' is taken first).",
)
@click.option(
    "--text-field",
    default="text",
    show_default=True,
    help="The documents' text field or column (a 'title' is prepended and kept as metadata).",
)
def index(
    corpus: Path | None,
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
    id_field: str,
    text_field: str,
) -> None:
    """Build a collection from CORPUS (a .jsonl / .jsonl.gz or .parquet file, a folder of parquet
    files, a Lance dataset, or a BEIR folder: only its corpus.jsonl is read); re-running resumes.

    Every record needs an id and a text field (--id-field, --text-field); an optional title is
    prepended to the text; the other fields become the document's metadata. The corpus is
    streamed, --chunk documents per commit.
    """
    if from_encoded is not None:
        fields_given = (id_field, text_field) != ("id", "text")
        if corpus is not None or model or sparse_model or splade or not dense or fields_given:
            raise click.UsageError(
                "--from-encoded takes no CORPUS, --model, --sparse-model, --splade, --no-dense, "
                "--id-field or --text-field: the encoded dataset decides them"
            )
        _index_encoded(from_encoded, out, bm25, index_kind, language, precision, batch_size, chunk)
        return
    if corpus is None:
        raise click.UsageError(f"give CORPUS ({CORPUS_KINDS}) or --from-encoded")
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
    fields = dict(id_field=id_field, text_field=text_field)
    _check_corpus(corpus, fields)
    try:
        col = open_or_create(out, opts)
        t0 = time.perf_counter()
        added = add_source(col, corpus, batch_size=chunk, show_progress=True, **fields)
        seconds = time.perf_counter() - t0
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


def _check_corpus(corpus: Path, fields: dict[str, Any]) -> None:
    """A usage error, before any collection is made, for an input of no known kind, without the
    id / text columns, or made by `granite-index encode`."""
    try:
        read_batches(corpus, **fields)  # checks the kind (and the columns, where it has a schema)
    except (ValueError, TypeError, OSError) as exc:
        raise click.BadParameter(str(exc), param_hint="CORPUS") from exc
    if (corpus / "_versions").is_dir():  # a Lance dataset: maybe one `encode` wrote
        try:
            EncodedDataset.open(corpus)
        except EncodeJobError:
            return
        raise click.BadParameter(
            f"{corpus} was made by `granite-index encode`; build from it with --from-encoded "
            f"{corpus} (it keeps its vectors)",
            param_hint="CORPUS",
        )


def index_dataset(
    data: Any, path: Path, opts: dict[str, Any], chunk: int
) -> tuple[Any, float, int]:
    """Open (or create) the collection at ``path`` and add the dataset's missing documents."""
    col = open_or_create(path, opts)
    t0 = time.perf_counter()
    added = index_beir(col, data, chunk_size=chunk)
    return col, time.perf_counter() - t0, added
