"""Checks on the model folders a recipe names (shared by the training and the merge recipes)."""

from __future__ import annotations

from pathlib import Path


def check_local_model(model: str, what: str) -> None:
    """Raise FileNotFoundError when a path-like model name must exist (a missing run folder should not reach the hub)."""
    if model == "default" or model.startswith("bundled:"):
        return
    if (model.startswith((".", "/", "~")) or model.startswith("runs/")) and not Path(
        model
    ).expanduser().is_dir():
        raise FileNotFoundError(
            f"{what} {model!r} does not exist: run the recipe that makes it first, or override "
            f"{what}=<folder>"
        )
