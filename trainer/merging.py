"""Model merging over state dicts: linear averaging, task arithmetic, TIES, LM-Cocktail weights.

Every merge is a pure function of ``{name: tensor}`` dicts with the same keys and shapes.
Floating-point tensors are merged in float32 (float64 stays float64) and cast back to their
dtype; other tensors (integer buffers such as ``position_ids``) are copied from the first dict
(the base, where there is one). :func:`merge_models` applies a merge to model folders on disk.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "linear_merge",
    "few_shot_losses",
    "lm_cocktail_weights",
    "merge_models",
    "task_arithmetic",
    "ties_merge",
]

StateDict = Mapping[str, Tensor]
Method = Literal["linear", "task_arithmetic", "ties"]


def _check_state_dicts(dicts: Sequence[StateDict], name: str) -> None:
    """Raise unless every dict maps the same keys to tensors of the same shape and dtype."""
    if not dicts:
        raise ValueError(f"{name} is empty: give at least one state dict")
    first = dicts[0]
    for i, sd in enumerate(dicts):
        if not isinstance(sd, Mapping):
            raise TypeError(
                f"{name}[{i}] must be a mapping of str to Tensor; got {type(sd).__name__}"
            )
        for key, value in sd.items():
            if not isinstance(value, Tensor):
                raise TypeError(f"{name}[{i}][{key!r}] is a {type(value).__name__}, not a Tensor")
        if i == 0:
            continue
        if sd.keys() != first.keys():
            missing = sorted(first.keys() - sd.keys())[:3]
            extra = sorted(sd.keys() - first.keys())[:3]
            raise ValueError(
                f"{name}[{i}] has other keys than {name}[0]: missing {missing}, extra {extra}"
            )
        for key, value in sd.items():
            ref = first[key]
            if value.shape != ref.shape or value.dtype != ref.dtype:
                raise ValueError(
                    f"{name}[{i}][{key!r}] is {tuple(value.shape)} {value.dtype}, but "
                    f"{name}[0][{key!r}] is {tuple(ref.shape)} {ref.dtype}"
                )


def _work_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def _check_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise TypeError(f"{name} must be a number; got {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return float(value)


def _normalised_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    ws = [_check_number(w, "weights") for w in weights]
    if len(ws) != n:
        raise ValueError(f"weights has {len(ws)} entries for {n} state dicts")
    if any(w < 0 for w in ws) or sum(ws) <= 0:
        raise ValueError(f"weights must be >= 0 with a positive sum; got {ws}")
    total = sum(ws)
    return [w / total for w in ws]


def linear_merge(
    state_dicts: Sequence[StateDict], weights: Sequence[float] | None = None
) -> dict[str, Tensor]:
    """Weighted average of parameters: ``sum_i w_i θ_i`` with ``w`` normalised to sum 1.

    Parameters
    ----------
    state_dicts : sequence of mapping str -> torch.Tensor
        Same keys, shapes and dtypes in each.
    weights : sequence of float, optional
        One ``>= 0`` weight per dict (any positive sum); default: uniform.

    Returns
    -------
    dict of str to torch.Tensor
        Same keys, shapes and dtypes; non-float tensors are copies of ``state_dicts[0]``'s.
    """
    state_dicts = list(state_dicts)
    _check_state_dicts(state_dicts, "state_dicts")
    ws = _normalised_weights(weights, len(state_dicts))
    out: dict[str, Tensor] = {}
    for key, ref in state_dicts[0].items():
        if not ref.is_floating_point():
            out[key] = ref.detach().clone()
            continue
        acc = torch.zeros(ref.shape, dtype=_work_dtype(ref))
        for w, sd in zip(ws, state_dicts):
            acc += w * sd[key].detach().to("cpu", acc.dtype)
        out[key] = acc.to(ref.dtype)
    return out


def _task_vectors(base: StateDict, finetuned: Sequence[StateDict], key: str) -> list[Tensor]:
    ref = base[key].detach().to("cpu", _work_dtype(base[key]))
    return [sd[key].detach().to("cpu", ref.dtype) - ref for sd in finetuned]


def task_arithmetic(
    base: StateDict, finetuned_list: Sequence[StateDict], scaling: float = 1.0
) -> dict[str, Tensor]:
    """Task arithmetic (Ilharco et al., 2023): ``θ = base + λ · sum_i (θ_i - base)``.

    Parameters
    ----------
    base : mapping str -> torch.Tensor
        The model the fine-tuned ones started from.
    finetuned_list : sequence of mapping str -> torch.Tensor
        Same keys, shapes and dtypes as ``base``.
    scaling : float
        ``λ``; ``1 / len(finetuned_list)`` gives the plain average of the fine-tuned models.

    Returns
    -------
    dict of str to torch.Tensor
        Non-float tensors are copies of ``base``'s.
    """
    finetuned_list = list(finetuned_list)
    if not finetuned_list:
        raise ValueError("finetuned_list is empty: give at least one fine-tuned state dict")
    _check_state_dicts([base, *finetuned_list], "[base, *finetuned_list]")
    lam = _check_number(scaling, "scaling")
    out: dict[str, Tensor] = {}
    for key, ref in base.items():
        if not ref.is_floating_point():
            out[key] = ref.detach().clone()
            continue
        delta = torch.stack(_task_vectors(base, finetuned_list, key)).sum(dim=0)
        out[key] = (ref.detach().to("cpu", delta.dtype) + lam * delta).to(ref.dtype)
    return out


def _trim(tv: Tensor, density: float) -> Tensor:
    """Keep the ``ceil(density · numel)`` largest-magnitude entries (all entries tied at the cut)."""
    flat = tv.abs().flatten()
    k = math.ceil(density * flat.numel())
    if k >= flat.numel():
        return tv
    threshold = torch.kthvalue(flat, flat.numel() - k + 1).values
    return torch.where(tv.abs() >= threshold, tv, torch.zeros_like(tv))


def _ties_delta(task_vectors: list[Tensor], density: float) -> Tensor:
    trimmed = torch.stack([_trim(tv, density) for tv in task_vectors])  # (n_models, *shape)
    sign = torch.sign(trimmed.sum(dim=0))
    agree = (torch.sign(trimmed) == sign) & (trimmed != 0)
    count = agree.sum(dim=0)
    total = torch.where(agree, trimmed, torch.zeros_like(trimmed)).sum(dim=0)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))


def ties_merge(
    base: StateDict,
    finetuned_list: Sequence[StateDict],
    density: float = 0.2,
    scaling: float = 1.0,
) -> dict[str, Tensor]:
    """TIES-Merging (Yadav et al., 2023): trim, elect sign, disjoint mean.

    Per tensor, each task vector ``τ_i = θ_i - base`` keeps its ``ceil(density · numel)``
    largest-magnitude entries (every entry tied with the smallest kept magnitude is kept too);
    the elected sign of an entry is the sign of the sum of the trimmed ``τ_i``; the merged entry
    is the mean of the trimmed ``τ_i`` whose (non-zero) entry has the elected sign, 0 where none
    has. The result is ``base + scaling · merged``.

    Parameters
    ----------
    base : mapping str -> torch.Tensor
    finetuned_list : sequence of mapping str -> torch.Tensor
        Same keys, shapes and dtypes as ``base``.
    density : float
        Fraction of entries kept per task vector and tensor, in (0, 1].
    scaling : float
        ``λ`` applied to the merged task vector.

    Returns
    -------
    dict of str to torch.Tensor
        Non-float tensors are copies of ``base``'s.
    """
    finetuned_list = list(finetuned_list)
    if not finetuned_list:
        raise ValueError("finetuned_list is empty: give at least one fine-tuned state dict")
    _check_state_dicts([base, *finetuned_list], "[base, *finetuned_list]")
    density = _check_number(density, "density")
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1]; got {density}")
    lam = _check_number(scaling, "scaling")
    out: dict[str, Tensor] = {}
    for key, ref in base.items():
        if not ref.is_floating_point():
            out[key] = ref.detach().clone()
            continue
        delta = _ties_delta(_task_vectors(base, finetuned_list, key), density)
        out[key] = (ref.detach().to("cpu", delta.dtype) + lam * delta).to(ref.dtype)
    return out


def lm_cocktail_weights(
    losses: Sequence[float], temperature: float = 1.0, *, higher_is_better: bool = False
) -> list[float]:
    """Merge weights of LM-Cocktail (Xiao et al., 2023): ``softmax(-loss_i / τ)``.

    Parameters
    ----------
    losses : sequence of float
        Each candidate model's loss on a few examples of the target task.
    temperature : float
        ``τ > 0``; small ``τ`` puts nearly all weight on the best model.
    higher_is_better : bool
        ``losses`` are scores (e.g. nDCG), weighted by ``softmax(score_i / τ)`` instead.

    Returns
    -------
    list of float
        One weight per model, summing to 1; pass to :func:`linear_merge`.
    """
    values = [_check_number(v, "losses") for v in losses]
    if not values:
        raise ValueError("losses is empty: give one value per model")
    tau = _check_number(temperature, "temperature")
    if tau <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    sign = 1.0 if higher_is_better else -1.0
    logits = np.asarray(values, dtype=np.float64) * sign / tau
    w = np.exp(logits - logits.max())
    return (w / w.sum()).tolist()


def few_shot_losses(
    models: Sequence[str | os.PathLike[str]],
    examples: Sequence[Any],
    *,
    temperature: float = 0.05,
    max_length: int = 256,
    batch_size: int = 16,
) -> list[float]:
    """Each dense model's contrastive loss on a few labelled examples: LM-Cocktail's "loss on
    the target task's examples", for an embedding model.

    The loss is the InfoNCE of :func:`trainer.losses.improved_contrastive_loss` (in-batch
    positives and each example's hard negatives, no query-query / passage-passage terms),
    averaged over batches of ``batch_size`` examples, without gradients.

    Parameters
    ----------
    models : sequence of str or path
        Model folders (or ``"default"``) that :class:`trainer.modeling.BiEncoder` loads.
    examples : sequence of TrainExample
        A few (query, positives, negatives) examples; the first positive and every negative of
        an example are used (the same number of negatives per example: the smallest count).
    temperature : float
        τ of the loss.
    max_length : int
        Passage truncation in tokens (queries: 64).
    batch_size : int
        Examples per batch.

    Returns
    -------
    list of float
        One loss per model; pass to :func:`lm_cocktail_weights`.
    """
    from trainer.losses import improved_contrastive_loss
    from trainer.modeling import BiEncoder

    if not examples:
        raise ValueError("examples is empty: give a few labelled (query, positive) examples")
    n_neg = min(len(ex.negatives) for ex in examples)
    losses = []
    for model in models:
        enc = BiEncoder(model).eval()
        total, n = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(examples), batch_size):
                part = examples[start : start + batch_size]
                q = enc.encode([ex.query for ex in part], 64, prefix=enc.query_prefix)
                p = enc.encode(
                    [ex.positives[0] for ex in part], max_length, prefix=enc.document_prefix
                )
                negs = None
                if n_neg:
                    flat = [t for ex in part for t in ex.negatives[:n_neg]]
                    negs = enc.encode(flat, max_length, prefix=enc.document_prefix)
                    negs = negs.reshape(len(part), n_neg, -1)
                loss = improved_contrastive_loss(
                    q, p, negs, temperature=temperature, qq=False, pp=False
                )
                total += float(loss) * len(part)
                n += len(part)
        losses.append(total / n)
    return losses


_WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "*.ckpt")
_SKIP_DIRS = ("onnx", "openvino", ".git", ".cache", "checkpoints", "data", "student-init")


def _load_model(path: Path) -> tuple[torch.nn.Module, Path]:
    """Load the transformer of an HF or sentence-transformers folder with its own class."""
    import transformers

    from granite_index.encoders.st_config import read_folder_config

    if not (path / "config.json").is_file() and not (path / "modules.json").is_file():
        raise FileNotFoundError(f"{path} is not a model folder: no config.json or modules.json")
    folder = read_folder_config(path).transformer_path
    config = transformers.AutoConfig.from_pretrained(folder)
    arch = (getattr(config, "architectures", None) or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    cls = cls or transformers.AutoModel
    model = cls.from_pretrained(folder, dtype="auto")
    return model, folder


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"out_dir {out_dir} exists and is not an empty folder")


def merge_models(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    method: Method = "linear",
    *,
    base: str | os.PathLike[str] | None = None,
    weights: Sequence[float] | None = None,
    scaling: float = 1.0,
    density: float = 0.2,
) -> Path:
    """Merge model folders of one architecture and save the result in the same layout.

    Parameters
    ----------
    paths : sequence of str or path
        Hugging Face or sentence-transformers folders. The first one's files other than weights
        (tokenizer, ``modules.json``, ``1_Pooling/``...) are copied to ``out_dir``.
    out_dir : str or path
        A new or empty folder.
    method : {"linear", "task_arithmetic", "ties"}
        :func:`linear_merge` (with ``weights``), :func:`task_arithmetic` (with ``base``,
        ``scaling``) or :func:`ties_merge` (with ``base``, ``density``, ``scaling``).
    base : str or path, optional
        The common starting model; required by ``task_arithmetic`` and ``ties``.
    weights, scaling, density
        Passed to the merge function.

    Returns
    -------
    pathlib.Path
        ``out_dir``, which loads like ``paths[0]`` (e.g. ``granite_index.DenseEncoder(out_dir)``).
    """
    if method not in ("linear", "task_arithmetic", "ties"):
        raise ValueError(f"method must be 'linear', 'task_arithmetic' or 'ties'; got {method!r}")
    if isinstance(paths, str | os.PathLike) or not paths:
        raise ValueError("paths must be a non-empty sequence of model folders")
    if method != "linear" and base is None:
        raise ValueError(f"method {method!r} needs base, the model the others were tuned from")
    folders = [Path(p) for p in paths]
    out_dir = Path(out_dir)
    _check_out_dir(out_dir)
    loaded = [_load_model(p) for p in folders]
    first, transformer_path = loaded[0]
    for p, (model, _) in zip(folders[1:], loaded[1:]):
        if type(model) is not type(first):
            raise ValueError(
                f"{p} holds a {type(model).__name__}, {folders[0]} a {type(first).__name__}"
            )
    dicts = [m.state_dict() for m, _ in loaded]
    if method == "linear":
        merged = linear_merge(dicts, weights)
    else:
        base_sd = _load_model(Path(base))[0].state_dict()  # type: ignore[arg-type]
        if method == "task_arithmetic":
            merged = task_arithmetic(base_sd, dicts, scaling)
        else:
            merged = ties_merge(base_sd, dicts, density, scaling)
    first.load_state_dict(merged, strict=True)
    shutil.copytree(
        folders[0],
        out_dir,
        ignore=shutil.ignore_patterns(*_WEIGHT_FILES, *_SKIP_DIRS),
        dirs_exist_ok=True,
    )
    first.save_pretrained(out_dir / transformer_path.relative_to(folders[0]))
    return out_dir
