"""The ``granite-train`` command line: run a recipe, merge models, evaluate a model folder.

Examples
--------
::

    granite-train list
    granite-train dense-scifact --out runs/dense-scifact -o max_steps=600 -o batch_size=32
    granite-train merge runs/a runs/b --out runs/ab --weights 0.7,0.3
    granite-train evaluate runs/dense-scifact ../shared/data/beir/scifact
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from trainer.recipes import RECIPES, Recipe, parse_overrides, run_recipe


def _fail(exc: Exception) -> None:
    raise click.ClickException(f"{type(exc).__name__}: {exc}") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress messages (mining, resume).")
def main(verbose: bool) -> None:
    """granite-train: recipes of the Granite Embedding training stages on top of granite_index."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")


def _recipe_command(recipe: Recipe) -> click.Command:
    @click.option(
        "-o",
        "--override",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Set a TrainingArgs field or recipe parameter (JSON values; repeatable).",
    )
    @click.option("--out", type=click.Path(path_type=Path), help=f"Default runs/{recipe.name}.")
    @click.option("--no-resume", is_flag=True, help="Ignore existing checkpoints.")
    @click.option("--stop-after-steps", type=int, help="Stop (with a checkpoint) after N steps.")
    @click.option("--quiet", is_flag=True, help="No progress bar.")
    def command(
        overrides: tuple[str, ...],
        out: Path | None,
        no_resume: bool,
        stop_after_steps: int | None,
        quiet: bool,
    ) -> None:
        try:
            values = parse_overrides(list(overrides))
            kwargs: dict[str, Any] = {}
            if recipe.stage != "merge":
                kwargs = {
                    "resume": not no_resume,
                    "stop_after_steps": stop_after_steps,
                    "show_progress": not quiet,
                }
            result = run_recipe(recipe, values, out, **kwargs)
        except (ValueError, TypeError, FileNotFoundError, FileExistsError) as exc:
            _fail(exc)
        _report(result)

    return click.command(name=recipe.name, help=recipe.description)(command)


def _report(result: Any) -> None:
    if isinstance(result, Path):
        click.echo(json.dumps({"output_dir": str(result)}))
        return
    click.echo(
        json.dumps(
            {
                "output_dir": str(result.output_dir),
                "steps": result.steps,
                "finished": result.finished,
                "final_loss": result.final_loss,
                "metrics": result.metrics,
            }
        )
    )


for _recipe in RECIPES.values():
    main.add_command(_recipe_command(_recipe))


@main.command("list")
def list_recipes() -> None:
    """List the recipes with their stage."""
    for name, recipe in RECIPES.items():
        first = recipe.description.strip().splitlines()[0] if recipe.description else ""
        click.echo(f"{name:18s} {recipe.stage:12s} {first}")


def _floats(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated numbers; got {text!r}") from exc


@main.command("merge")
@click.argument("models", nargs=-1, required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="New folder.")
@click.option(
    "--method", type=click.Choice(["linear", "task_arithmetic", "ties"]), default="linear"
)
@click.option(
    "--weights",
    help="Comma-separated weights, one per model (linear), or 'cocktail': LM-Cocktail weights "
    "from each model's loss on a few train pairs of --cocktail-beir.",
)
@click.option("--cocktail-beir", help="BEIR folder with train qrels (for --weights cocktail).")
@click.option("--cocktail-n", type=int, default=32, show_default=True, help="Examples used.")
@click.option("--cocktail-temperature", type=float, default=1.0, show_default=True)
@click.option("--base", help="Base model of task_arithmetic / ties.")
@click.option("--scaling", type=float, default=1.0, show_default=True)
@click.option("--density", type=float, default=0.2, show_default=True, help="TIES density.")
@click.option("--eval-beir", help="BEIR folder to evaluate the merged model on.")
def merge(
    models: tuple[str, ...],
    out: Path,
    method: str,
    weights: str | None,
    base: str | None,
    scaling: float,
    density: float,
    eval_beir: str | None,
    cocktail_beir: str | None,
    cocktail_n: int,
    cocktail_temperature: float,
) -> None:
    """Merge model folders of one architecture (MODELS: folders, or 'default')."""
    from trainer.recipes.merge_run import run_merge

    params = {
        "models": list(models),
        "method": method,
        "weights": weights if weights == "cocktail" else _floats(weights),
        "base": base,
        "scaling": scaling,
        "density": density,
        "eval_beir": eval_beir,
        "cocktail_beir": cocktail_beir,
        "cocktail_n": cocktail_n,
        "cocktail_temperature": cocktail_temperature,
    }
    try:
        run_merge(params, out)
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as exc:
        _fail(exc)
    click.echo(json.dumps({"output_dir": str(out)}))


@main.command("evaluate")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("beir_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--split", default="test", show_default=True)
@click.option("--kind", type=click.Choice(["auto", "dense", "sparse"]), default="auto")
def evaluate_command(model_dir: Path, beir_dir: Path, split: str, kind: str) -> None:
    """Index BEIR_DIR's corpus with MODEL_DIR and print nDCG@10 and recall@100 as JSON."""
    from trainer.evaluation import evaluate

    try:
        metrics = evaluate(model_dir, beir_dir, split, kind=kind)  # type: ignore[arg-type]
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    click.echo(json.dumps(metrics))


if __name__ == "__main__":  # pragma: no cover
    main()
