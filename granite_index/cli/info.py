"""``granite-index info``: a collection's manifest."""

from __future__ import annotations

import json
from pathlib import Path

import click

from granite_index.cli.common import fail
from granite_index.collection import Collection
from granite_index.errors import GraniteIndexError


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
def info(path: Path) -> None:
    """Show a collection's manifest: documents, commit, encoder, index."""
    try:
        click.echo(json.dumps(Collection.open(path).info(), indent=2))
    except GraniteIndexError as exc:
        fail(exc)
