"""What a recipe is, how overrides apply to it, and how it runs.

A recipe is a short config: a runner stage (or ``"merge"``), :class:`~trainer.args.TrainingArgs`
values, and a few data parameters (where the data is, how negatives are mined, the teacher).
``run_recipe`` turns it into datasets and calls :func:`trainer.runner.train` (or
:func:`trainer.merging.merge_models`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from trainer.args import TrainingArgs
from trainer.data import (
    TrainExample,
    read_beir_pairs,
    read_jsonl_examples,
    read_title_body_pairs,
    write_jsonl_examples,
)
from trainer.recipes.models import check_local_model

__all__ = [
    "SCIFACT",
    "Recipe",
    "beir_corpus",
    "beir_pairs",
    "check_local_model",
    "parse_overrides",
    "run_recipe",
    "student_from_layers",
]

_SHARED = Path(__file__).resolve().parents[3] / "shared"
#: SciFact in BEIR layout; set GRANITE_DATA to the folder holding ``beir/`` to move it.
SCIFACT = str(Path(os.environ.get("GRANITE_DATA", _SHARED / "data")) / "beir" / "scifact")
_ARG_NAMES = {f.name for f in fields(TrainingArgs)}


@dataclass(frozen=True)
class Recipe:
    """A named training (or merging) configuration.

    Attributes
    ----------
    name : str
        The command name (``granite-train <name>``).
    stage : str
        A runner stage (``contrastive``, ``distill``, ``splade``, ``retromae``) or ``merge``.
    description : str
        One paragraph shown by ``granite-train <name> --help``.
    args : mapping
        :class:`TrainingArgs` values (``output_dir`` defaults to ``runs/<name>``).
    params : mapping
        Recipe parameters (data, mining, ``teacher`` ...); overridable like ``args``.
    data : callable, optional
        ``data(params, args) -> {dataset name: examples}``.
    prepare : callable, optional
        ``prepare(params, args) -> args``, run before the data (e.g. build a student).
    """

    name: str
    stage: str
    description: str
    args: Mapping[str, Any]
    params: Mapping[str, Any]
    data: Callable[[dict[str, Any], TrainingArgs], dict[str, list[Any]]] | None = None
    prepare: Callable[[dict[str, Any], TrainingArgs], TrainingArgs] | None = None


def _value(text: str) -> Any:
    """JSON when it parses (numbers, booleans, lists), ``none``/``null`` → None, else the text."""
    if text.lower() in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` → ``{key: value}`` (values as in JSON where they parse).

    Raises
    ------
    ValueError
        An item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not of the form key=value")
        out[key.strip()] = _value(value.strip())
    return out


def _split(recipe: Recipe, overrides: Mapping[str, Any]) -> tuple[dict, dict]:
    args, params = dict(recipe.args), dict(recipe.params)
    for key, value in overrides.items():
        if key in params:
            params[key] = value
        elif key in _ARG_NAMES and recipe.stage != "merge":
            args[key] = value
        else:
            valid = sorted(params) + ([] if recipe.stage == "merge" else sorted(_ARG_NAMES))
            raise ValueError(f"recipe {recipe.name!r} has no setting {key!r}; valid: {valid}")
    return args, params


def run_recipe(
    recipe: Recipe,
    overrides: Mapping[str, Any] | Sequence[str] = (),
    out: str | os.PathLike[str] | None = None,
    **train_kwargs: Any,
) -> Any:
    """Run a recipe with overrides; returns :class:`~trainer.runner.TrainResult` (or the merged
    folder's path for ``merge``).

    Parameters
    ----------
    recipe : Recipe
    overrides : mapping or sequence of "key=value"
        TrainingArgs fields or recipe params.
    out : str or path, optional
        Output folder (default ``runs/<name>``; an ``output_dir`` override also works).
    **train_kwargs
        Passed to :func:`trainer.runner.train` (``resume``, ``stop_after_steps``, ``device``,
        ``show_progress``).
    """
    if not isinstance(recipe, Recipe):
        raise TypeError(f"recipe must be a Recipe; got {type(recipe).__name__}")
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(list(overrides))
    arg_values, params = _split(recipe, overrides)
    output_dir = str(out or arg_values.get("output_dir") or Path("runs") / recipe.name)
    if recipe.stage == "merge":
        from trainer.recipes.merge_run import run_merge

        return run_merge(params, Path(output_dir))
    from trainer.runner import train

    args = TrainingArgs(**{**arg_values, "output_dir": output_dir})
    teacher = params.get("teacher")
    if teacher is not None:
        check_local_model(str(teacher), "teacher")
    if recipe.prepare is not None:
        args = recipe.prepare(params, args)
    datasets = recipe.data(params, args) if recipe.data is not None else {}
    return train(args, recipe.stage, datasets, teacher=teacher, **train_kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- data helpers
def _limit(data: dict[str, list[Any]], limit: int | None) -> dict[str, list[Any]]:
    return {k: v[:limit] for k, v in data.items()} if limit else data


def beir_corpus(params: dict[str, Any], args: TrainingArgs) -> dict[str, list[Any]]:
    """The corpus texts of ``params["beir"]`` (``title text``), first ``limit`` of them."""
    from granite_index.eval import load_beir

    beir = params["beir"]
    split = params.get("split", "train")
    texts = [t for t in load_beir(beir, split=split).documents() if t.strip()]
    return _limit({f"{Path(beir).name}-corpus": texts}, params.get("limit"))


def beir_pairs(params: dict[str, Any], args: TrainingArgs) -> dict[str, list[Any]]:
    """Train-qrels pairs (and title → body pairs when ``titles``), hard negatives mined.

    ``params``: ``beir``, ``split``, ``titles``, ``limit`` (examples per dataset, 0: all) and
    mining: ``mine`` ("none", "bm25", "dense", "hybrid"), ``mining_model``, ``depth``,
    ``skip``, ``mine_negatives``, ``max_similarity``. Mined data is cached in
    ``output_dir/data/`` and reused while these settings do not change.
    """
    beir, split = params["beir"], params.get("split", "train")
    name = Path(beir).name
    data: dict[str, list[Any]] = {f"{name}-{split}": read_beir_pairs(beir, split)}
    if params.get("titles"):
        data[f"{name}-titles"] = read_title_body_pairs(beir)
    data = _limit(data, params.get("limit"))
    if params.get("mine", "none") == "none":
        return data
    return _mined(data, params, args)


def _mined(
    data: dict[str, list[TrainExample]], params: dict[str, Any], args: TrainingArgs
) -> dict[str, list[Any]]:
    from granite_index.eval import load_beir
    from trainer.mining import MiningConfig, mine_hard_negatives

    config = MiningConfig(
        retriever=params["mine"],
        model=params.get("mining_model"),
        depth=params.get("depth", 100),
        skip=params.get("skip", 0),
        n_negatives=params.get("mine_negatives", 7),
        max_similarity=params.get("max_similarity", 0.95),
        seed=args.seed,
    )
    cache = Path(args.output_dir) / "data"
    stamp = {
        "mining": config.to_dict(),
        "beir": str(params["beir"]),
        "sizes": {k: len(v) for k, v in data.items()},
    }
    stamp_file = cache / "mining.json"
    if stamp_file.is_file() and json.loads(stamp_file.read_text(encoding="utf-8")) == stamp:
        return {k: read_jsonl_examples(cache / f"{k}.jsonl") for k in data}
    corpus = [t for t in load_beir(params["beir"], split=params.get("split", "train")).documents()]
    flat = [ex for v in data.values() for ex in v]
    mined = mine_hard_negatives(flat, [t for t in corpus if t.strip()], config)
    out, start = {}, 0
    for k, v in data.items():
        out[k] = mined[start : start + len(v)]
        start += len(v)
        write_jsonl_examples(out[k], cache / f"{k}.jsonl")
    stamp_file.write_text(json.dumps(stamp, indent=2), encoding="utf-8")
    return out


def student_from_layers(params: dict[str, Any], args: TrainingArgs) -> TrainingArgs:
    """Build ``output_dir/student-init`` from ``params["student_from"]`` (None: the teacher)
    keeping ``params["student_layers"]`` layers, and start training from it."""
    from trainer.modeling import truncate_layers

    init = Path(args.output_dir) / "student-init"
    if not init.is_dir():
        source = params.get("student_from") or params["teacher"]
        check_local_model(str(source), "student_from")
        tmp = init.with_name("student-init.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        truncate_layers(source, int(params["student_layers"]), tmp)
        tmp.rename(init)  # whole or absent, like checkpoints
    return replace(args, model=str(init))
