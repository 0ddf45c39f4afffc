"""``granite-index eval``: index a BEIR dataset (or reuse a collection) and score its queries."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import click

from granite_index.cli.common import (
    LEG_NAMES,
    MODES,
    batch_opt,
    fail,
    index_opt,
    language_opt,
    model_opt,
    precision_opt,
    snippet,
    sparse_model_opt,
)
from granite_index.cli.index import index_dataset
from granite_index.collection import evaluate_beir
from granite_index.errors import GraniteIndexError
from granite_index.eval import load_beir


@click.command(name="eval")
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
@model_opt
@sparse_model_opt
@index_opt
@precision_opt
@batch_opt
@language_opt
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
    leg_list = [x.strip() for x in legs.split(",") if x.strip()]
    bad = [x for x in leg_list if x not in LEG_NAMES]
    if bad or (mode == "hybrid" and len(leg_list) < 2):
        raise click.UsageError(f"--legs takes two or more of {', '.join(LEG_NAMES)}; got {legs!r}")
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
            col, index_s, added = index_dataset(data, path, opts, 2048)
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
            run = evaluate_beir(col, data, mode=mode, k=depth, **search_opts)
            scores, qids = run.scores, run.query_ids
        except (GraniteIndexError, ValueError, TypeError, FileNotFoundError) as exc:
            fail(exc)
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
            "query_encode_seconds": round(run.encode_seconds, 3),
            "search_seconds": round(run.search_seconds, 4),
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
            f" {mark}{row.rank:>2}  {row.score:.4f}  {row.id:<10} {snippet(row.text, 90)}",
            err=True,
        )
    click.echo("  (* = judged relevant)", err=True)
