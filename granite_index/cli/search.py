"""``granite-index search``: one query against a collection."""

from __future__ import annotations

import json
from pathlib import Path

import click

from granite_index.cli.common import MODES, fail, snippet
from granite_index.collection import Collection
from granite_index.errors import GraniteIndexError


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.argument("query")
@click.option("-k", default=10, show_default=True, type=click.IntRange(1), help="Hits to show.")
@click.option(
    "--mode", type=click.Choice(MODES), default=None, help="Retriever (default: dense if present)."
)
@click.option("--json", "as_json", is_flag=True, help="Print hits as JSON lines.")
def search(path: Path, query: str, k: int, mode: str | None, as_json: bool) -> None:
    """Search a collection with one query."""
    try:
        col = Collection.open(path)
        hits = col.search([query], k=k, mode=mode).to_pandas()
    except (GraniteIndexError, ValueError, TypeError) as exc:
        fail(exc)
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
            click.echo(f"{row.rank:>3}  {row.score:.4f}  {row.id}  {snippet(row.text)}")
