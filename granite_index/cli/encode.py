"""``granite-index encode``: the batch encoding job on the command line."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

#: Bad lines listed in the closing summary (all of them are logged as they are met, and
#: ``--json`` prints the full list).
_SHOWN = 20


@click.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Lance dataset to write (re-running the same command resumes it).",
)
@click.option(
    "--model",
    default=None,
    help="Dense model: local folder, HF id, or default (bundled all-MiniLM-L6-v2).",
)
@click.option(
    "--sparse-model",
    default=None,
    help="Also encode SPLADE vectors with this model (local folder, HF id, or default: the "
    "bundled SPLADE-tiny).",
)
@click.option(
    "--dense/--no-dense",
    default=True,
    show_default=True,
    help="Encode dense vectors (--no-dense: SPLADE only).",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    default="auto",
    show_default=True,
    help="Dense encoding precision (auto: bf16 where the hardware has it).",
)
@click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="Texts per forward pass.",
)
@click.option(
    "--chunk-size",
    default=1024,
    show_default=True,
    type=click.IntRange(1),
    help="Input records per commit (an interrupted run resumes after the last one).",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="CPU: encoding processes, each with its own model and cores/N torch threads "
    "(1: this process, all cores). Ignored on a GPU.",
)
@click.option(
    "--on-bad-line",
    type=click.Choice(["skip", "fail"]),
    default="skip",
    show_default=True,
    help="A corrupt line or a record without id or text: skip it (logged, counted, listed in "
    "the summary) or stop.",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="Where chunks are encoded: local processes, or a Ray Data pipeline (extra "
    "'distributed'; map_batches on a pool of --workers actors). Resume and output are the same.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def encode(
    input_path: Path,
    out: Path,
    model: str | None,
    sparse_model: str | None,
    dense: bool,
    precision: str,
    batch_size: int,
    chunk_size: int,
    workers: int,
    on_bad_line: str,
    backend: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Encode a corpus (jsonl, parquet or BEIR folder) into a Lance dataset of vectors."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from granite_index.errors import GraniteIndexError
    from granite_index.jobs.encode import encode_corpus

    if not dense and sparse_model is None:
        raise click.UsageError("--no-dense needs --sparse-model (nothing to encode)")
    if not dense and model is not None:
        raise click.UsageError("--model is the dense model; it makes no sense with --no-dense")
    logging.basicConfig(format="%(message)s", level=logging.WARNING)
    try:
        with logging_redirect_tqdm():  # skipped lines print above the progress bar
            summary = encode_corpus(
                input_path,
                out,
                model=model,
                sparse_model=sparse_model,
                dense=dense,
                precision=precision,
                batch_size=batch_size,
                chunk_size=chunk_size,
                workers=workers,
                on_bad_line=on_bad_line,
                backend=backend,
                show_progress=not quiet,
            )
    except (GraniteIndexError, ValueError, TypeError, OSError, ImportError) as exc:
        raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc
    if as_json:
        click.echo(json.dumps(summary.to_dict()))
        return
    rate = summary.added / summary.seconds if summary.seconds > 0 else 0.0
    resumed = (
        f", resumed after {summary.resumed_from} {summary.unit}s" if summary.resumed_from else ""
    )
    state = "complete" if summary.complete else "INCOMPLETE"
    click.echo(
        f"encoded {summary.added} documents ({summary.rows} in all{resumed}) into {out} in "
        f"{summary.seconds:.1f}s ({rate:.1f} docs/s); {state}"
    )
    if summary.bad:
        click.echo(f"{len(summary.bad)} bad {summary.unit}s skipped:")
        for position, reason in summary.bad[:_SHOWN]:
            click.echo(f"  {summary.unit} {position}: {reason}")
        if len(summary.bad) > _SHOWN:
            click.echo(f"  ... and {len(summary.bad) - _SHOWN} more (--json lists them all)")
