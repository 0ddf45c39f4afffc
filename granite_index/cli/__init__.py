"""The ``granite-index`` command line: index, search, eval, info, encode (one module per command).

Imports: the layers below through their public names only (:mod:`granite_index.collection`,
:mod:`granite_index.jobs`, :mod:`granite_index.search`, :mod:`granite_index.eval`). Tests:
``tests/e2e/``.
"""

from __future__ import annotations

import sys

import click

from granite_index.cli.encode import encode
from granite_index.cli.eval import eval_cmd
from granite_index.cli.index import index
from granite_index.cli.info import info
from granite_index.cli.search import search

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="granite-index")
def main() -> None:
    """granite-index: dense, BM25, learned-sparse and hybrid retrieval over Lance-persisted
    collections."""


for _command in (index, search, eval_cmd, info, encode):
    main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
