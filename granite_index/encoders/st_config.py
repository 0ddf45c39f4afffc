"""Read the sentence-transformers files of a model folder (dense or SPLADE) so existing models load as they are."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Pooling = Literal["cls", "mean"]
Activation = Literal["relu", "log1p_relu"]


@dataclass(frozen=True)
class FolderConfig:
    """What a sentence-transformers folder says about pooling, length and prompts (None: not said)."""

    transformer_path: Path
    pooling: Pooling | None = None
    normalize: bool | None = None
    max_length: int | None = None
    query_prefix: str | None = None
    document_prefix: str | None = None


def _load(path: Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def read_folder_config(path: Path) -> FolderConfig:
    """Read ``modules.json``, ``1_Pooling/config.json``, ``sentence_bert_config.json`` and prompts.

    A plain Hugging Face folder (no ``modules.json``) gives a config with every field None but
    ``max_length``, read from a ``sentence_bert_config.json`` beside the weights when there is one
    (as sentence-transformers' Transformer module reads it).
    """
    modules_file = path / "modules.json"
    if not modules_file.is_file():
        st_file = path / "sentence_bert_config.json"
        length = _load(st_file).get("max_seq_length") if st_file.is_file() else None
        return FolderConfig(transformer_path=path, max_length=length)
    modules = _load(modules_file)
    transformer_path, pooling, normalize = path, None, False
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        sub = path / module.get("path", "")
        if kind == "Transformer":
            transformer_path = sub
        elif kind == "Pooling":
            pooling = _pooling_mode(_load(sub / "config.json"), sub)
        elif kind == "Normalize":
            normalize = True
    max_length, prefixes = None, {}
    st_file = transformer_path / "sentence_bert_config.json"
    if st_file.is_file():
        max_length = _load(st_file).get("max_seq_length")
    prompts_file = path / "config_sentence_transformers.json"
    if prompts_file.is_file():
        prefixes = _load(prompts_file).get("prompts") or {}
    return FolderConfig(
        transformer_path=transformer_path,
        pooling=pooling,
        normalize=normalize,
        max_length=max_length,
        query_prefix=prefixes.get("query"),
        document_prefix=prefixes.get("document", prefixes.get("passage")),
    )


def _pooling_mode(cfg: dict, where: Path) -> Pooling:
    if cfg.get("pooling_mode_cls_token"):
        return "cls"
    if cfg.get("pooling_mode_mean_tokens"):
        return "mean"
    if cfg.get("pooling_mode") in ("cls", "mean"):
        return cfg["pooling_mode"]
    raise ValueError(
        f"{where}/config.json asks for a pooling other than CLS or mean, which is not supported"
    )


@dataclass(frozen=True)
class SpladeFolderConfig:
    """What a sentence-transformers sparse folder says (None: not said, or a plain HF folder)."""

    transformer_path: Path
    activation: Activation = "relu"
    max_length: int | None = None
    query_prefix: str | None = None
    document_prefix: str | None = None


def read_splade_folder(path: Path) -> SpladeFolderConfig:
    """Read ``modules.json``, the ``SpladePooling`` config, ``max_seq_length`` and prompts.

    Raises
    ------
    ValueError
        The folder asks for something this encoder does not do (sum pooling, other modules).
    """

    if not (path / "modules.json").is_file():
        return SpladeFolderConfig(transformer_path=path)
    transformer_path, activation = path, "relu"
    for module in _load(path / "modules.json"):
        kind = module.get("type", "").rsplit(".", 1)[-1]
        sub = path / module.get("path", "")
        if kind in ("Transformer", "MLMTransformer"):
            transformer_path = sub
        elif kind == "SpladePooling":
            cfg = _load(sub / "config.json") if (sub / "config.json").is_file() else {}
            if cfg.get("pooling_strategy", "max") != "max":
                raise ValueError(
                    f"{sub}/config.json asks for {cfg['pooling_strategy']!r} pooling; only 'max' "
                    "(SPLADE v2 and later) is supported"
                )
            activation = cfg.get("activation_function", "relu")
            if activation not in ("relu", "log1p_relu"):
                raise ValueError(f"{sub}/config.json: unsupported activation {activation!r}")
        else:
            raise ValueError(
                f"{path}/modules.json holds a {kind} module; only a masked-LM Transformer "
                "followed by SpladePooling is supported"
            )
    st_file = transformer_path / "sentence_bert_config.json"
    max_length = _load(st_file).get("max_seq_length") if st_file.is_file() else None
    prompts_file = path / "config_sentence_transformers.json"
    prompts = (_load(prompts_file).get("prompts") or {}) if prompts_file.is_file() else {}
    return SpladeFolderConfig(
        transformer_path=transformer_path,
        activation=activation,
        max_length=max_length,
        query_prefix=prompts.get("query"),
        document_prefix=prompts.get("document", prompts.get("passage")),
    )
