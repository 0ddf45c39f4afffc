"""Checkpoints of a training run: ``out_dir/checkpoints/step-N/``, written whole or not at all.

A checkpoint holds

* ``model.safetensors``: the trained module's state (shared tensors stored once);
* ``optimizer.pt``: optimizer and scheduler states and torch's RNG states (plain tensors and
  numbers, read back with ``torch.load(weights_only=True)``);
* ``trainer_state.json``: step, batches drawn, the numpy and Python RNG states, the loss
  history and the arguments.

It is written into a hidden temporary folder that is renamed to ``step-N`` at the end, so a run
killed while saving leaves no half checkpoint behind.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["TrainState", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]

_NAME = re.compile(r"^step-(\d+)$")


@dataclass
class TrainState:
    """Progress of a run, saved with each checkpoint.

    Attributes
    ----------
    step : int
        Optimizer steps done (= batches drawn from the sampler).
    examples : int
        Training examples seen.
    losses : list of float
        Loss of every step.
    logs : dict
        Last logged averages of the stage's extra numbers (e.g. ``query_nnz``).
    """

    step: int = 0
    examples: int = 0
    losses: list[float] = field(default_factory=list)
    logs: dict[str, float] = field(default_factory=dict)


def _rng_states(rng: np.random.Generator) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    return {
        "numpy": rng.bit_generator.state,
        "python": [version, list(internal), gauss],
    }


def _set_rng_states(states: dict[str, Any], rng: np.random.Generator) -> None:
    rng.bit_generator.state = states["numpy"]
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))


def save_checkpoint(
    root: str | Path,
    state: TrainState,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rng: np.random.Generator,
    *,
    args: dict[str, Any],
    keep: int = 0,
) -> Path:
    """Write ``root/step-{state.step}`` atomically and prune old checkpoints.

    Parameters
    ----------
    root : str or path
        The checkpoints folder (created if missing).
    keep : int
        Checkpoints kept, newest first; 0 keeps all.

    Returns
    -------
    pathlib.Path
        The checkpoint folder.
    """
    from safetensors.torch import save_model

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state.step}"
    tmp = root / f".step-{state.step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": cuda,
        },
        tmp / "optimizer.pt",
    )
    meta = {
        "format_version": 1,
        "step": state.step,
        "examples": state.examples,
        "losses": state.losses,
        "logs": state.logs,
        "rng": _rng_states(rng),
        "args": args,
    }
    (tmp / "trainer_state.json").write_text(json.dumps(meta), encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    if keep > 0:
        for old in _checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _NAME.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint in ``root``, or None."""
    found = _checkpoints(Path(root))
    return found[-1] if found else None


def load_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rng: np.random.Generator,
) -> tuple[TrainState, dict[str, Any]]:
    """Restore model, optimizer, scheduler and every RNG from a checkpoint, in place.

    Returns
    -------
    state : TrainState
    args : dict
        The arguments the checkpoint was written with.
    """
    from safetensors.torch import load_model

    path = Path(path)
    meta = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    if meta.get("format_version") != 1:
        raise ValueError(f"{path}: checkpoint format_version {meta.get('format_version')} is not 1")
    device = next(model.parameters()).device
    load_model(model, str(path / "model.safetensors"), device=str(device))
    blob = torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True)
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["torch_rng"])
    if blob["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["cuda_rng"])
    _set_rng_states(meta["rng"], rng)
    state = TrainState(meta["step"], meta["examples"], list(meta["losses"]), dict(meta["logs"]))
    return state, meta["args"]
