"""What the commands share: error reporting, the common options, open-or-create of a collection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from granite_index.collection import Collection
from granite_index.search import LEG_NAMES, MODES

__all__ = ["LEG_NAMES", "MODES", "fail", "open_or_create", "snippet"]


def fail(exc: Exception) -> None:
    raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


def open_or_create(path: Path, opts: dict[str, Any]) -> Any:
    model = opts["model"]
    if Collection.exists(path):
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


def snippet(text: str, width: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


model_opt = click.option(
    "--model",
    default=None,
    help="Dense model: local folder, HF id, or default (bundled all-MiniLM-L6-v2).",
)
sparse_model_opt = click.option(
    "--sparse-model",
    default=None,
    help="SPLADE model: local masked-LM folder, HF id, or default (bundled SPLADE-tiny).",
)
index_opt = click.option(
    "--index",
    "index_kind",
    type=click.Choice(["auto", "flat", "ivf", "hnsw"]),
    default="auto",
    show_default=True,
    help="Dense search: auto (exact below 200k vectors, IVF past it), flat (always exact), "
    "ivf, hnsw.",
)
precision_opt = click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="Encoding precision (auto: bf16 where the hardware has it).",
)
batch_opt = click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="Texts per forward pass.",
)
language_opt = click.option(
    "--language",
    default="en",
    show_default=True,
    help="BM25 analyzer language (ISO 639-1: en, de, zh, ...).",
)
chunk_opt = click.option(
    "--chunk",
    default=2048,
    show_default=True,
    type=click.IntRange(1),
    help="Documents per commit (an interrupted run resumes from the last one).",
)
