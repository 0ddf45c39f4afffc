"""The ``granite-index`` command line: index, search, eval, info."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from granite_index.errors import GraniteIndexError

MODES = ["dense", "bm25", "sparse", "hybrid"]
LEGS = ("bm25", "sparse", "dense")


def _fail(exc: Exception) -> None:
    raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="granite-index")
def main() -> None:
    """granite-index: dense, BM25, learned-sparse and hybrid retrieval over Lance-persisted
    collections."""


def _open_or_create(path: Path, opts: dict[str, Any]) -> Any:
    from granite_index.collection import Collection

    model = opts["model"]
    if (path / "manifest.json").is_file():
        col = Collection.open(path, precision=opts["precision"], batch_size=opts["batch_size"])
        enc = col.manifest.encoder
        if model is not None and enc is not None and enc["model"] != model:
            raise click.UsageError(
                f"{path} was built with model {enc['model']!r}, not {model!r}; "
                "choose another --out / --collection"
            )
        for mode in opts["modes"]:
            if mode not in col.modes:
                raise click.UsageError(
                    f"{path} has no {mode} index (it has {col.modes}); choose another "
                    "--out / --collection"
                )
        return col
    return Collection.create(
        path,
        model=model if "dense" in opts["modes"] else None,
        index=opts["index"],
        precision=opts["precision"],
        batch_size=opts["batch_size"],
        dense="dense" in opts["modes"],
        sparse=[k for k, m in (("bm25", "bm25"), ("splade", "sparse")) if m in opts["modes"]],
        language=opts["language"],
        sparse_model=opts.get("sparse_model") if "sparse" in opts["modes"] else None,
    )


def _index_dataset(
    data: Any, path: Path, opts: dict[str, Any], chunk: int
) -> tuple[Any, float, int]:
    from granite_index.indexing import index_corpus

    col = _open_or_create(path, opts)
    metadata = [{"title": t} if t else None for t in data.titles]
    t0 = time.perf_counter()
    added = index_corpus(col, data.doc_ids, data.documents(), metadata, chunk_size=chunk)
    return col, time.perf_counter() - t0, added


_model_opt = click.option(
    "--model",
    default=None,
    help="Dense model: local folder, HF id, or default (bundled all-MiniLM-L6-v2).",
)
_sparse_model_opt = click.option(
    "--sparse-model",
    default=None,
    help="SPLADE model: local masked-LM folder, HF id, or default (bundled SPLADE-tiny).",
)
_index_opt = click.option(
    "--index",
    "index_kind",
    type=click.Choice(["flat", "hnsw", "ivfpq"]),
    default="flat",
    show_default=True,
    help="FAISS index kind.",
)
_precision_opt = click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="Encoding precision (auto: bf16 where the hardware has it).",
)
_batch_opt = click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="Texts per forward pass.",
)
_language_opt = click.option(
    "--language",
    default="en",
    show_default=True,
    help="BM25 analyzer language (ISO 639-1: en, de, zh, ...).",
)
_chunk_opt = click.option(
    "--chunk",
    default=2048,
    show_default=True,
    type=click.IntRange(1),
    help="Documents per commit (an interrupted run resumes from the last one).",
)


@main.command()
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
@_model_opt
@_sparse_model_opt
@_index_opt
@_precision_opt
@_batch_opt
@_language_opt
@_chunk_opt
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
    from granite_index.eval import load_beir

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
        col, seconds, added = _index_dataset(data, out, opts, chunk)
    except (GraniteIndexError, ValueError, TypeError, FileNotFoundError) as exc:
        _fail(exc)
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
    from granite_index.jobs import collection_from_encoded

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
        _fail(exc)
    click.echo(
        f"indexed {len(col)} documents from {encoded} into {out} ({', '.join(col.modes)}) "
        f"in {time.perf_counter() - t0:.1f}s"
    )


def _any_split(data_dir: Path) -> str:
    splits = sorted(p.stem for p in (data_dir / "qrels").glob("*.tsv"))
    return "test" if "test" in splits or not splits else splits[0]


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("query")
@click.option("-k", default=10, show_default=True, type=click.IntRange(1), help="Hits to show.")
@click.option(
    "--mode", type=click.Choice(MODES), default=None, help="Retriever (default: dense if present)."
)
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON lines.")
def search(path: Path, query: str, k: int, mode: str | None, as_json: bool) -> None:
    """Search a collection with one query."""
    from granite_index.collection import Collection

    try:
        col = Collection.open(path)
        hits = col.search([query], k=k, mode=mode).to_pandas()
    except (GraniteIndexError, ValueError, TypeError) as exc:
        _fail(exc)
    for row in hits.itertuples():
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "rank": row.rank,
                        "id": row.id,
                        "score": float(row.score),
                        "text": row.text,
                        "metadata": row.metadata,
                    }
                )
            )
        else:
            click.echo(f"{row.rank:>3}  {row.score:.4f}  {row.id}  {_snippet(row.text)}")


def _snippet(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


@main.command(name="eval")
@click.argument("data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="dense",
    show_default=True,
    help="Retriever to evaluate.",
)
@click.option("--split", default="test", show_default=True, help="Qrels split to evaluate on.")
@click.option(
    "--legs",
    default="bm25,sparse,dense",
    show_default=True,
    help="Hybrid: the legs to build and fuse (comma-separated: bm25, sparse, dense).",
)
@click.option(
    "--fusion",
    "fusion_kind",
    type=click.Choice(["convex", "rrf", "dbsf"]),
    default="convex",
    show_default=True,
    help="Hybrid without --fit-on: equal-weight convex (min-max), RRF (k=60) or DBSF.",
)
@click.option(
    "--fit-on",
    default=None,
    help="Hybrid: fit the fusion on this split's labelled queries (e.g. train), saved in the "
    "collection; never give the split you evaluate on.",
)
@click.option(
    "--collection",
    "col_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Collection to use; built (or resumed) there if incomplete. Default: a temporary one.",
)
@_model_opt
@_sparse_model_opt
@_index_opt
@_precision_opt
@_batch_opt
@_language_opt
@click.option(
    "-k",
    "depth",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="Retrieval depth per query.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object (ndcg@10, recall@100, mrr@10, n_queries, mode, ...).",
)
@click.option(
    "--example/--no-example", default=False, help="Also show one query with its top hits."
)
def eval_cmd(
    data_dir: Path,
    mode: str,
    split: str,
    legs: str,
    fusion_kind: str,
    fit_on: str | None,
    col_path: Path | None,
    model: str | None,
    sparse_model: str | None,
    index_kind: str,
    precision: str,
    batch_size: int,
    language: str,
    depth: int,
    as_json: bool,
    example: bool,
) -> None:
    """Index a BEIR-format dataset (or reuse a collection) and report nDCG@10, Recall@100, MRR@10.

    The collection is built with the indexes ``--mode`` needs (``bm25`` builds no dense index;
    ``hybrid`` builds ``--legs``).
    """
    from granite_index.eval import evaluate, load_beir, run_from_result

    leg_list = [x.strip() for x in legs.split(",") if x.strip()]
    bad = [x for x in leg_list if x not in LEGS]
    if bad or (mode == "hybrid" and len(leg_list) < 2):
        raise click.UsageError(f"--legs takes two or more of {', '.join(LEGS)}; got {legs!r}")
    if fit_on is not None and (mode != "hybrid" or fit_on == split):
        raise click.UsageError("--fit-on is for --mode hybrid, on a split other than --split")
    opts = dict(
        model=model,
        sparse_model=sparse_model,
        index=index_kind,
        precision=precision,
        batch_size=batch_size,
        language=language,
        modes=leg_list if mode == "hybrid" else [mode],
    )
    fusion = None
    with tempfile.TemporaryDirectory(prefix="granite-eval-") as tmp:
        try:
            data = load_beir(data_dir, split=split)
            path = col_path or Path(tmp) / "collection"
            col, index_s, added = _index_dataset(data, path, opts, 2048)
            search_opts: dict[str, Any] = {}
            if mode == "hybrid":
                search_opts["legs"] = leg_list
                if fit_on is not None:
                    train = load_beir(data_dir, split=fit_on)
                    tq, tt = train.eval_queries()
                    fusion = col.fit_fusion(tt, train.qrels, tq, legs=leg_list).fusion.to_dict()
                else:
                    fusion = {"kind": fusion_kind, "weights": {x: 1.0 for x in leg_list}}
                    if fusion_kind == "rrf":
                        fusion["k"] = 60
                search_opts["fusion"] = fusion
            qids, qtexts = data.eval_queries()
            t0 = time.perf_counter()
            queries = col.encode_queries(qtexts, opts["modes"])
            t1 = time.perf_counter()
            result = col.search(queries, k=depth, mode=mode, **search_opts)
            t2 = time.perf_counter()
            scores = evaluate(data.qrels, run_from_result(result, qids))
        except (GraniteIndexError, ValueError, TypeError, FileNotFoundError) as exc:
            _fail(exc)
        report = {
            "dataset": data.name,
            "split": split,
            "mode": mode,
            **{m: round(v, 5) for m, v in scores.items()},
            "n_queries": len(qids),
            "n_docs": len(col),
            "model": col.manifest.encoder["model"] if "dense" in opts["modes"] else None,
            "sparse_model": col.manifest.splade_encoder["model"]
            if "sparse" in opts["modes"]
            else None,
            "index": col.manifest.dense_index["kind"] if "dense" in opts["modes"] else None,
            "language": language if "bm25" in opts["modes"] else None,
            "legs": opts["modes"],
            "fusion": fusion,
            "fit_on": fit_on,
            "docs_indexed_now": added,
            "index_seconds": round(index_s, 2),
            "query_encode_seconds": round(t1 - t0, 3),
            "search_seconds": round(t2 - t1, 4),
        }
        if as_json:
            click.echo(json.dumps(report))
        else:
            click.echo(
                f"\n{data.name} ({split}, {len(qids)} queries, {len(col)} docs), mode={mode}"
                + (f", legs={','.join(leg_list)}" if mode == "hybrid" else "")
                + (f", fusion={fusion['kind']}" if fusion else "")
                + (f" (fitted on {fit_on})" if fit_on else "")
            )
            for m in scores:
                click.echo(f"  {m:<11} {scores[m]:.4f}")
        if example:
            _show_example(col, data, qids[0], mode, search_opts)


def _show_example(col: Any, data: Any, qid: str, mode: str, opts: dict[str, Any]) -> None:
    hits = col.search([data.queries[qid]], k=5, mode=mode, **opts).to_pandas()
    relevant = data.qrels.get(qid, {})
    click.echo(f"\nexample query {qid}: {data.queries[qid]}", err=True)
    for row in hits.itertuples():
        mark = "*" if relevant.get(str(row.id), 0) > 0 else " "
        click.echo(
            f" {mark}{row.rank:>2}  {row.score:.4f}  {row.id:<10} {_snippet(row.text, 90)}",
            err=True,
        )
    click.echo("  (* = judged relevant)", err=True)


@main.command()
@click.argument("path", type=click.Path(path_type=Path))
def info(path: Path) -> None:
    """Show a collection's manifest: documents, commit, encoder, index."""
    from granite_index.collection import Collection

    try:
        click.echo(json.dumps(Collection.open(path).info(), indent=2))
    except GraniteIndexError as exc:
        _fail(exc)


def _register_jobs() -> None:
    from granite_index.jobs.cli import encode

    main.add_command(encode)


_register_jobs()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
