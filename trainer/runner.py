"""The one training loop of every stage (contrastive, distill, splade, retromae).

AdamW with linear warm-up and decay, optional bf16 autocast, gradient clipping, seeded Python /
numpy / torch RNGs, a tqdm bar with the loss and examples/s, a JSON-lines log, atomic
checkpoints every ``save_steps`` with exact resume, and at the end the model saved in the
engine-loadable layout with a model card (evaluated on ``args.eval_beir`` when set).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from trainer.args import TrainingArgs
from trainer.checkpoint import TrainState, latest_checkpoint, load_checkpoint, save_checkpoint
from trainer.data import MultiDatasetSampler
from trainer.stages import STAGES, StageName, StepInput

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)
# arguments that may change between an interrupted run and its resumption
_RESUMABLE = {"output_dir", "save_steps", "save_total_limit", "logging_steps", "eval_beir"}


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    output_dir : pathlib.Path
        Holds the final model (when ``finished``) and ``checkpoints/``.
    steps : int
        Optimizer steps done in total (resumed ones included).
    finished : bool
        False when the run stopped early (``stop_after_steps``).
    losses : list of float
        Loss of every step.
    final_loss : float or None
        Mean loss of the last ``logging_steps`` steps.
    metrics : dict
        Evaluation on ``args.eval_beir`` (empty when not evaluated).
    """

    output_dir: Path
    steps: int
    finished: bool
    losses: list[float]
    final_loss: float | None
    metrics: dict[str, float]


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's legacy and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - for libraries that draw from the global one
    torch.manual_seed(seed)


def total_steps(args: TrainingArgs, datasets: Mapping[str, Sequence[Any]]) -> int:
    """``max_steps``, or ``ceil(epochs * examples / batch_size)``."""
    if args.max_steps > 0:
        return args.max_steps
    n = sum(len(d) for d in datasets.values())
    return max(1, math.ceil(args.epochs * n / args.batch_size))


def _schedule(warmup: int, total: int) -> Any:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _optimizer(model: torch.nn.Module, args: TrainingArgs) -> torch.optim.Optimizer:
    """AdamW; biases and norm weights (1-D parameters) get no weight decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": args.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=args.learning_rate)


def _as_datasets(datasets: Any) -> dict[str, Sequence[Any]]:
    if isinstance(datasets, Mapping):
        out = dict(datasets)
    elif isinstance(datasets, Sequence) and not isinstance(datasets, str):
        out = {"train": datasets}
    else:
        raise TypeError("datasets must be a mapping of name to examples, or one sequence")
    if not out or any(len(d) == 0 for d in out.values()):
        raise ValueError("datasets must be non-empty, and so must each dataset")
    return out


def _load_teacher(teacher: Any, device: torch.device) -> Any:
    if teacher is None:
        return None
    from trainer.modeling import BiEncoder

    if not isinstance(teacher, BiEncoder):
        teacher = BiEncoder(teacher)
    teacher.eval().requires_grad_(False).to(device)
    return teacher


def _resume(
    out: Path, args: TrainingArgs, model: Any, opt: Any, sched: Any, rng: np.random.Generator
) -> TrainState:
    ckpt = latest_checkpoint(out / "checkpoints")
    if ckpt is None:
        return TrainState()
    state, saved = load_checkpoint(ckpt, model, opt, sched, rng)
    now = args.to_dict()
    changed = sorted(k for k in now if k not in _RESUMABLE and saved.get(k) != now[k])
    if changed:
        log.warning("resuming %s with changed arguments %s", ckpt, changed)
    log.info("resumed from %s (step %d)", ckpt, state.step)
    return state


def _write_log(out: Path, record: dict[str, Any]) -> None:
    with open(out / "train_log.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _finish(
    out: Path,
    args: TrainingArgs,
    stage: str,
    model: Any,
    state: TrainState,
    datasets: Mapping[str, Sequence[Any]],
    teacher: Any,
) -> dict[str, float]:
    """Save the final model with its card; evaluate first when ``eval_beir`` is set."""
    from trainer.evaluation import evaluate, model_card

    window = state.losses[-args.logging_steps :]
    kind = "sparse" if stage == "splade" else "dense"
    card = {
        "stage": stage,
        "args": args.to_dict(),
        "data": {name: len(d) for name, d in datasets.items()},
        "steps": state.step,
        "examples": state.examples,
        "final_loss": float(np.mean(window)) if window else None,
        "kind": kind,
        "teacher": getattr(teacher, "source", None),
        "logs": state.logs,
    }
    model.save(out, card=model_card(**card))
    metrics: dict[str, float] = {}
    if args.eval_beir:
        metrics = evaluate(out, args.eval_beir, args.eval_split, kind=kind)
        card.update(metrics=metrics, eval_data=f"{args.eval_beir} ({args.eval_split})")
        (out / "README.md").write_text(model_card(**card), encoding="utf-8")
    summary = {k: v for k, v in card.items() if k != "args"}
    (out / "training_args.json").write_text(json.dumps(args.to_dict(), indent=2), encoding="utf-8")
    (out / "train_summary.json").write_text(
        json.dumps({**summary, "metrics": metrics}, indent=2), encoding="utf-8"
    )
    return metrics


def train(
    args: TrainingArgs,
    stage: StageName,
    datasets: Mapping[str, Sequence[Any]] | Sequence[Any],
    *,
    teacher: Any = None,
    resume: bool = True,
    stop_after_steps: int | None = None,
    device: str | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Train one stage and save the model in the layout the engine loads.

    Parameters
    ----------
    args : TrainingArgs
    stage : {"contrastive", "distill", "splade", "retromae"}
    datasets : mapping of str to sequence, or a sequence
        :class:`~trainer.data.TrainExample` lists (texts for ``retromae``); each batch comes
        from one dataset (:class:`~trainer.data.MultiDatasetSampler`, ``args.alpha``).
    teacher : str, path or BiEncoder, optional
        Dense teacher of ``distill`` / ``splade``; without it those stages use the examples'
        precomputed ``positive_scores`` / ``negative_scores`` (``splade`` falls back to
        contrastive training when there are none).
    resume : bool
        Continue from the newest checkpoint in ``output_dir/checkpoints`` if there is one.
    stop_after_steps : int, optional
        Stop once this many steps are done (writing a checkpoint), as an interrupted run would;
        the schedule still spans the whole run. For time-boxed jobs and tests.
    device : str, optional
        Default: CUDA when available, else CPU.
    show_progress : bool
        Show a tqdm bar.

    Returns
    -------
    TrainResult
    """
    if not isinstance(args, TrainingArgs):
        raise TypeError(f"args must be a TrainingArgs; got {type(args).__name__}")
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {sorted(STAGES)}; got {stage!r}")
    if stop_after_steps is not None and (
        isinstance(stop_after_steps, bool)
        or not isinstance(stop_after_steps, int)
        or stop_after_steps < 1
    ):
        raise ValueError(f"stop_after_steps must be an int >= 1 or None; got {stop_after_steps!r}")
    spec = STAGES[stage]
    datasets = _as_datasets(datasets)
    if args.embedding_weight > 0 and (stage != "distill" or teacher is None):
        raise ValueError(
            "embedding_weight > 0 is for the distill stage with a teacher model (its vectors are "
            f"the targets); got stage {stage!r} with "
            + ("no teacher" if teacher is None else "a teacher")
        )
    spec.check(datasets, teacher is not None)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    seed_everything(args.seed)
    model = spec.build(args).to(dev).train()
    teacher_model = _load_teacher(teacher, dev)
    total = total_steps(args, datasets)
    opt = _optimizer(model, args)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(args.warmup_steps, total))
    rng = np.random.default_rng(args.seed)
    state = _resume(out, args, model, opt, sched, rng) if resume else TrainState()
    batches = iter(MultiDatasetSampler(datasets, args.batch_size, alpha=args.alpha, seed=args.seed))
    for _ in range(state.step):  # the sampler is deterministic: replay what was drawn
        next(batches)
    run = _Run(args, spec, model, teacher_model, opt, sched, rng, state, out)
    _loop(run, batches, min(total, stop_after_steps or total), total, show_progress)
    finished = state.step >= total
    metrics = _finish(out, args, stage, model, state, datasets, teacher_model) if finished else {}
    window = state.losses[-args.logging_steps :]
    return TrainResult(
        out,
        state.step,
        finished,
        list(state.losses),
        float(np.mean(window)) if window else None,
        metrics,
    )


@dataclass
class _Run:
    """The objects one run's steps update."""

    args: TrainingArgs
    spec: Any
    model: torch.nn.Module
    teacher: Any
    opt: torch.optim.Optimizer
    sched: Any
    rng: np.random.Generator
    state: TrainState
    out: Path

    def checkpoint(self) -> None:
        save_checkpoint(
            self.out / "checkpoints",
            self.state,
            self.model,
            self.opt,
            self.sched,
            self.rng,
            args=self.args.to_dict(),
            keep=self.args.save_total_limit,
        )

    def step(self, batch: list[Any]) -> tuple[float, dict[str, float]]:
        """One optimizer step on ``batch``: (loss, the stage's numbers to log)."""
        args, dev = self.args, next(self.model.parameters()).device
        inp = StepInput(args, self.model, self.teacher, self.rng, self.state.step)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss, logs = self.spec.step(inp, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {float(loss)} at step {self.state.step}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), args.max_grad_norm)
        self.opt.step()
        self.sched.step()
        self.state.step += 1
        self.state.examples += len(batch)
        self.state.losses.append(float(loss.detach()))
        return self.state.losses[-1], logs


def _loop(run: _Run, batches: Any, end: int, total: int, show_progress: bool) -> None:
    """Run steps until ``state.step == end``; checkpoint every ``save_steps`` and at ``end``."""
    args, state = run.args, run.state
    bar = tqdm(total=total, initial=state.step, disable=not show_progress, desc=run.spec.name)
    window: dict[str, list[float]] = {}
    started, seen = time.perf_counter(), 0
    try:
        while state.step < end:
            _, batch = next(batches)
            loss, logs = run.step(batch)
            seen += len(batch)
            for k, v in {"loss": loss, **logs}.items():
                window.setdefault(k, []).append(v)
            rate = seen / max(time.perf_counter() - started, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", ex_s=f"{rate:.1f}")
            if state.step % args.logging_steps == 0 or state.step == end:
                means = {k: float(np.mean(v)) for k, v in window.items()}
                state.logs = {k: v for k, v in means.items() if k != "loss"}
                lr = run.sched.get_last_lr()[0]
                record = {"step": state.step, "lr": lr, "examples_per_s": rate, **means}
                _write_log(run.out, record)
                window = {}
            if (args.save_steps > 0 and state.step % args.save_steps == 0) or (
                state.step == end and end < total
            ):
                run.checkpoint()
    finally:
        bar.close()
