"""TrainingArgs: defaults, validation, round trip, command-line parsing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from trainer.args import TrainingArgs
from trainer.losses import ContrastiveLoss


def test_defaults_round_trip_and_json():
    args = TrainingArgs(model="m", output_dir="out")
    d = args.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert TrainingArgs.from_dict(d) == args
    assert d["format_version"] == 1 and d["alpha"] == 0.5 and d["temperature"] == 0.02
    with pytest.raises(dataclasses.FrozenInstanceError):
        args.seed = 1  # type: ignore[misc]


def test_every_field_has_help():
    for f in dataclasses.fields(TrainingArgs):
        assert f.metadata.get("help"), f.name


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"model": ""}, ValueError, "model"),
        ({"learning_rate": 0.0}, ValueError, "learning_rate"),
        ({"batch_size": -1}, ValueError, "batch_size"),
        ({"temperature": "0.1"}, TypeError, "temperature"),
        ({"alpha": -1.0}, ValueError, "alpha"),
        ({"max_steps": 0}, ValueError, "max_steps"),
        ({"warmup_steps": -5}, ValueError, "warmup_steps"),
    ],
)
def test_validation(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        TrainingArgs(**{"model": "m", "output_dir": "o", **kwargs})


def test_from_dict_rejects_unknown_and_future_versions():
    with pytest.raises(ValueError, match="unknown TrainingArgs fields"):
        TrainingArgs.from_dict({"model": "m", "output_dir": "o", "lr": 1.0})
    with pytest.raises(ValueError, match="format_version"):
        TrainingArgs.from_dict({"model": "m", "output_dir": "o", "format_version": 2})


def test_hf_argument_parser_and_loss_kwargs():
    from transformers import HfArgumentParser

    (args,) = HfArgumentParser(TrainingArgs).parse_args_into_dataclasses(
        ["--model", "m", "--output_dir", "o", "--qq", "false", "--batch_size", "8", "--bf16"]
    )
    assert args == TrainingArgs(model="m", output_dir="o", qq=False, batch_size=8, bf16=True)
    loss = ContrastiveLoss(**args.loss_kwargs())
    assert (loss.qq, loss.pp, loss.temperature) == (False, True, 0.02)
