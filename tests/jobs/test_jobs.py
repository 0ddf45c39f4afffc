"""The batch encoding job: sources, resume after SIGKILL, bad lines, settings checks, and
collections built from an encoded dataset. Tiny random models, corpora of 40 short texts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from granite_index import Collection
from granite_index.cli import main
from granite_index.jobs import (
    EncodedDataset,
    EncodeJobError,
    collection_from_encoded,
    encode_corpus,
    load_summary,
)
from granite_index.jobs.encode import PACE_ENV
from granite_index.jobs.sources import JsonlSource, ParquetSource, open_source

WORDS = "apple river stone cloud violin tiger garden rocket pepper silver forest engine".split()


def _doc(i: int) -> dict:
    a, b = WORDS[i % 12], WORDS[(5 * i + 3) % 12]
    return {"id": f"d{i}", "title": a.title() if i % 3 == 0 else "", "text": f"{a} {b} note {i}"}


def write_corpus(path: Path, n: int = 40, bad: dict[int, str] | None = None) -> Path:
    """``n`` lines; ``bad`` replaces line number -> raw text."""
    lines = [json.dumps(_doc(i)) for i in range(n)]
    for line_no, raw in (bad or {}).items():
        lines[line_no - 1] = raw
    path.write_text("\n".join(lines) + "\n")
    return path


BAD = {
    3: '{"id": "d2", "text": "cut he',  # truncated
    7: "not json at all",
    11: json.dumps({"id": "d10"}),  # no text
    15: json.dumps({"id": "d14", "text": "   "}),  # empty text
    19: "",  # a blank line: not a record, not an error
    23: json.dumps({"text": "no id"}),
    27: "[1, 2]",
}


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BertForMaskedLM (hidden 32) for SPLADE, with the bundled tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from granite_index.encoders import resolve_model

    folder = tmp_path_factory.mktemp("tiny-mlm")
    tok = AutoTokenizer.from_pretrained(resolve_model(None).path)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    model = BertForMaskedLM(cfg)
    with torch.no_grad():  # strongly negative bias: few terms per text
        model.get_output_embeddings().bias.fill_(-2.0)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "c.jsonl")


def read_rows(path: Path) -> dict[str, list]:
    return lance.dataset(path).to_table().to_pydict()


# ---------------------------------------------------------------------- sources
def test_jsonl_chunks_positions_bad_lines_and_seek(tmp_path):
    path = write_corpus(tmp_path / "c.jsonl", 30, BAD)
    path.write_text(path.read_text() + '{"id": "tail", "text": "no newline"}')
    src = JsonlSource(path)
    assert src.total() == 31
    chunks = list(src.chunks(0, 0, 8))
    assert [(c.start, c.end) for c in chunks] == [(0, 8), (8, 16), (16, 24), (24, 31)]
    bad = {pos: reason for c in chunks for pos, reason in c.bad}
    assert sorted(bad) == [3, 7, 11, 15, 23, 27]
    assert "invalid JSON" in bad[3] and "truncated" in bad[3]
    assert "no 'text'" in bad[11] and "empty text" in bad[15] and "no id" in bad[23]
    assert "JSON object" in bad[27]
    ids = [i for c in chunks for i in c.ids]
    assert len(ids) == 31 - 6 - 1 and ids[-1] == "tail" and "d18" not in ids
    assert chunks[0].texts[0] == "Apple apple cloud note 0"  # title + " " + text
    resumed = list(src.chunks(chunks[1].end, chunks[1].end_byte, 8))  # seek, no reread
    assert [(c.ids, c.bad) for c in resumed] == [(c.ids, c.bad) for c in chunks[2:]]


def test_parquet_chunks_resume_inside_row_groups(tmp_path):
    docs = [_doc(i) for i in range(23)]
    docs[4]["text"] = None
    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(docs), path, row_group_size=7)
    src = open_source(path)
    assert isinstance(src, ParquetSource) and src.total() == 23
    full = list(src.chunks(0, 0, 5))
    assert [(c.start, c.end) for c in full] == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 23)]
    assert full[0].bad == [[5, "no 'text' field"]]
    tail = list(src.chunks(15, 15, 5))  # row 16 is inside the third row group
    assert [c.ids for c in tail] == [c.ids for c in full[3:]]


# ---------------------------------------------------------------------- the job
def test_encode_dense_and_sparse_matches_the_encoders(tmp_path, tiny_bert, tiny_mlm):
    from granite_index import DenseEncoder, SparseEncoder

    path = write_corpus(tmp_path / "c.jsonl", 28, BAD)
    out = tmp_path / "out.lance"
    summary = encode_corpus(
        path, out, model=str(tiny_bert), sparse_model=str(tiny_mlm), chunk_size=10,
        show_progress=False,
    )  # fmt: skip
    assert summary.complete and summary.rows == summary.added == 28 - 6 - 1
    assert [b[0] for b in summary.bad] == [3, 7, 11, 15, 23, 27]
    ds = EncodedDataset.open(out)
    assert ds.spec.encoder["model"] == str(tiny_bert) and ds.spec.encoder["revision"]
    assert ds.spec.splade_encoder["model"] == str(tiny_mlm)
    assert ds.ds.schema.field("vector").type == pa.list_(pa.float32(), 32)
    assert ds.ds.schema.field("sparse_indices").type == pa.list_(pa.uint32())
    (batch,) = list(ds.batches(100))
    dense = DenseEncoder(tiny_bert).encode_documents(batch.texts)
    np.testing.assert_allclose(batch.vectors, dense, atol=1e-5)
    sparse = SparseEncoder(tiny_mlm).encode_documents(batch.texts)
    np.testing.assert_array_equal(batch.sparse.indptr, sparse.indptr)
    np.testing.assert_array_equal(batch.sparse.indices, sparse.indices)
    np.testing.assert_allclose(batch.sparse.values, sparse.values, rtol=1e-5)


def test_kill_mid_run_then_resume_equals_uninterrupted(tmp_path, corpus, tiny_bert):
    out = tmp_path / "killed.lance"
    args = [corpus, "--out", out, "--model", tiny_bert, "--chunk-size", "4", "--quiet"]
    cmd = [sys.executable, "-m", "granite_index.cli", "encode", *map(str, args)]
    env = {**os.environ, PACE_ENV: "0.4"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _versions(out) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    part = EncodedDataset.open(out).progress()
    assert not part.done and 0 < part.rows < 40 and part.rows == part.end  # consistent state
    assert read_rows(out)["id"] == [f"d{i}" for i in range(part.rows)]

    res = CliRunner().invoke(main, ["encode", *map(str, args), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.splitlines()[-1])
    assert summary["resumed_from"] == part.end and summary["added"] == 40 - part.rows
    assert summary["complete"] and summary["rows"] == 40

    ref = tmp_path / "ref.lance"
    encode_corpus(corpus, ref, model=str(tiny_bert), chunk_size=4, show_progress=False)
    got, want = read_rows(out), read_rows(ref)
    assert got["id"] == want["id"] == [f"d{i}" for i in range(40)]  # no gaps, no duplicates
    assert got["text"] == want["text"]
    np.testing.assert_array_equal(np.array(got["vector"]), np.array(want["vector"]))
    again = encode_corpus(corpus, out, model=str(tiny_bert), chunk_size=4, show_progress=False)
    assert again.added == 0 and again.rows == 40  # a finished job is left alone


def _versions(out: Path) -> int:
    folder = out / "_versions"
    return len(list(folder.glob("*.manifest"))) if folder.is_dir() else 0


def test_resume_refuses_other_settings_and_unrelated_outputs(
    tmp_path, corpus, tiny_bert, tiny_roberta
):
    out = tmp_path / "out.lance"
    opts = dict(chunk_size=20, show_progress=False)
    encode_corpus(corpus, out, model=str(tiny_bert), **opts)
    with pytest.raises(EncodeJobError, match="other settings.*encoder"):
        encode_corpus(corpus, out, model=str(tiny_roberta), **opts)
    other = write_corpus(tmp_path / "other.jsonl", 41)
    with pytest.raises(EncodeJobError, match="other settings.*input"):
        encode_corpus(other, out, model=str(tiny_bert), **opts)
    unrelated = tmp_path / "unrelated.lance"
    lance.write_dataset(pa.table({"x": [1, 2]}), unrelated)
    with pytest.raises(EncodeJobError, match="not one written by"):
        encode_corpus(corpus, unrelated, model=str(tiny_bert), **opts)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("mine")
    with pytest.raises(EncodeJobError, match="not a Lance dataset"):
        encode_corpus(corpus, tmp_path / "folder", model=str(tiny_bert), **opts)
    assert (tmp_path / "folder" / "notes.txt").read_text() == "mine"


def test_leftover_of_a_killed_create_is_restarted(tmp_path, tiny_bert):
    path = write_corpus(tmp_path / "c.jsonl", 6)
    out = tmp_path / "out.lance"
    (out / "data").mkdir(parents=True)  # data files written, no version committed
    (out / "data" / "orphan.lance").write_bytes(b"partial")
    summary = encode_corpus(path, out, model=str(tiny_bert), show_progress=False)
    assert summary.rows == 6 and summary.resumed_from == 0


def test_cli_bad_lines_skip_lists_them_and_fail_stops(tmp_path, tiny_bert):
    path = write_corpus(tmp_path / "c.jsonl", 12, {3: "{broken", 7: json.dumps({"id": "x"})})
    runner = CliRunner()
    base = ["encode", str(path), "--model", str(tiny_bert), "--quiet"]
    res = runner.invoke(main, [*base, "--out", str(tmp_path / "a.lance")])
    assert res.exit_code == 0, res.output
    assert "encoded 10 documents" in res.output and "2 bad lines skipped" in res.output
    assert "line 3: invalid JSON" in res.output and "line 7: no 'text' field" in res.output
    assert [b[0] for b in load_summary(tmp_path / "a.lance").bad] == [3, 7]
    res = runner.invoke(
        main,
        [*base, "--out", str(tmp_path / "b.lance"), "--on-bad-line", "fail", "--chunk-size", "2"],
    )
    assert res.exit_code == 1 and f"{path}:3: invalid JSON" in res.output
    assert "Traceback" not in res.output
    assert EncodedDataset.open(tmp_path / "b.lance").progress().end == 2  # chunks before it kept


def test_cli_beir_folder_and_parquet_inputs(tmp_path, tiny_bert):
    beir = tmp_path / "beir"
    beir.mkdir()
    docs = [{"_id": d["id"], "title": d["title"], "text": d["text"]} for d in map(_doc, range(9))]
    (beir / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    pq.write_table(pa.Table.from_pylist(docs), tmp_path / "c.parquet")
    runner = CliRunner()
    for name, src in (("beir", beir), ("pq", tmp_path / "c.parquet")):
        out = tmp_path / f"{name}.lance"
        res = runner.invoke(
            main, ["encode", str(src), "--out", str(out), "--model", str(tiny_bert), "--quiet"]
        )
        assert res.exit_code == 0, res.output
        rows = read_rows(out)
        assert rows["id"] == [d["_id"] for d in docs]
        assert rows["text"] == [f"{d['title']} {d['text']}".strip() for d in docs]  # as load_beir


def test_workers_two_processes_match_one(tmp_path, corpus, tiny_bert):
    one = encode_corpus(corpus, tmp_path / "1.lance", model=str(tiny_bert), chunk_size=8,
                        show_progress=False)  # fmt: skip
    two = encode_corpus(corpus, tmp_path / "2.lance", model=str(tiny_bert), chunk_size=8,
                        workers=2, show_progress=False)  # fmt: skip
    assert one.rows == two.rows == 40
    a, b = read_rows(one.path), read_rows(two.path)
    assert a["id"] == b["id"]
    np.testing.assert_allclose(np.array(a["vector"]), np.array(b["vector"]), atol=1e-6)


# ---------------------------------------------------------------------- collections
def test_collection_from_encoded_searches_like_direct_encoding(
    tmp_path, corpus, tiny_bert, tiny_mlm
):
    enc = tmp_path / "enc.lance"
    encode_corpus(
        corpus, enc, model=str(tiny_bert), sparse_model=str(tiny_mlm), chunk_size=8,
        show_progress=False,
    )  # fmt: skip
    direct = Collection.create(
        tmp_path / "direct", model=tiny_bert, sparse=["bm25", "splade"], sparse_model=tiny_mlm
    )
    docs = [_doc(i) for i in range(40)]
    for start in range(0, 40, 8):  # the job's chunks: the same batches, the same vectors
        part = docs[start : start + 8]
        direct.add(
            [d["id"] for d in part],
            [f"{d['title']} {d['text']}".strip() for d in part],
            [{"title": d["title"]} if d["title"] else None for d in part],
        )
    built = collection_from_encoded(tmp_path / "built", enc, bm25=True, chunk_size=16)
    assert built.modes == direct.modes == ["bm25", "sparse", "dense", "hybrid"]
    queries = ["apple river", "violin note", "silver engine 7"]
    for mode in ("dense", "sparse", "bm25", "hybrid"):
        a, b = built.search(queries, k=5, mode=mode), direct.search(queries, k=5, mode=mode)
        assert a.doc_ids() == b.doc_ids(), mode
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    assert built.get(["d3"]).to_pylist() == direct.get(["d3"]).to_pylist()

    res = CliRunner().invoke(  # the CLI; re-running resumes (adds nothing)
        main, ["index", "--from-encoded", str(enc), "--out", str(tmp_path / "built")]
    )
    assert res.exit_code == 0, res.output
    assert "indexed 40 documents" in res.output and len(Collection.open(built.path)) == 40


def test_from_encoded_checks_models_and_completeness(tmp_path, corpus, tiny_bert, tiny_roberta):
    enc = tmp_path / "enc.lance"
    encode_corpus(corpus, enc, model=str(tiny_bert), chunk_size=20, show_progress=False)
    other = Collection.create(tmp_path / "other", model=tiny_roberta)
    with pytest.raises(EncodeJobError, match="differ in"):
        collection_from_encoded(other.path, enc)
    res = CliRunner().invoke(
        main, ["index", "--from-encoded", str(enc), "--out", str(tmp_path / "c"), "--splade"]
    )
    assert res.exit_code == 2 and "--from-encoded takes no" in res.output
    part = tmp_path / "part.lance"
    ds = EncodedDataset.open(enc)
    lance.write_dataset(ds.ds.to_table().slice(0, 5), part, schema=ds.ds.schema)  # no chunk record
    with pytest.raises(EncodeJobError, match="incomplete"):
        collection_from_encoded(tmp_path / "p", part)


# ---------------------------------------------------------------------- Ray
def test_chunk_starts_match_the_chunks(tmp_path):
    path = write_corpus(tmp_path / "c.jsonl", 29, bad=BAD)  # bad and blank lines
    path.write_bytes(path.read_bytes().rstrip(b"\n"))  # a last line without a newline
    src = JsonlSource(path)
    for start, size in ((0, 4), (0, 29), (0, 50), (8, 5), (9, 1)):
        byte = next(src.chunks(0, 0, start)).end_byte if start else 0
        want, prev = [], byte
        for c in src.chunks(start, byte, size):
            want.append((c.start, prev))
            prev = c.end_byte
        assert src.chunk_starts(start, byte, size) == want
    assert src.chunk_starts(29, path.stat().st_size, 4) == []
    pq.write_table(
        pa.table({"id": ["a", "b", "c"], "text": ["x", "y", "z"]}), tmp_path / "p.parquet"
    )
    assert ParquetSource(tmp_path / "p.parquet").chunk_starts(1, 1, 1) == [(1, 1), (2, 2)]


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_data_pipeline_output_equals_local(tmp_path, local_ray, tiny_bert, tiny_mlm):
    corpus = write_corpus(tmp_path / "bad.jsonl", bad=BAD)
    opts = {"model": str(tiny_bert), "sparse_model": str(tiny_mlm), "chunk_size": 8,
            "show_progress": False}  # fmt: skip
    got = encode_corpus(corpus, tmp_path / "ray.lance", backend="ray", workers=2, **opts)
    ref = encode_corpus(corpus, tmp_path / "local.lance", **opts)
    assert got.rows == ref.rows == 33 and got.complete and got.bad == ref.bad
    a, b = read_rows(got.path), read_rows(ref.path)
    assert a == b  # ids, texts, titles, dense vectors and sparse rows, bit for bit
    assert EncodedDataset.open(got.path).spec == EncodedDataset.open(ref.path).spec


class _Crash(Exception):
    pass


def test_ray_resumes_a_crashed_local_run(tmp_path, corpus, local_ray, tiny_bert, monkeypatch):
    from granite_index.jobs import dataset as encoded

    out, calls = tmp_path / "crashed.lance", []
    real = encoded.append_chunk

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise _Crash  # the process dies between two commits
        return real(*args, **kwargs)

    monkeypatch.setattr(encoded, "append_chunk", crash_on_third)
    with pytest.raises(_Crash):
        encode_corpus(corpus, out, model=str(tiny_bert), chunk_size=6, show_progress=False)
    monkeypatch.setattr(encoded, "append_chunk", real)
    assert EncodedDataset.open(out).progress().rows == 12
    got = encode_corpus(corpus, out, model=str(tiny_bert), chunk_size=6, backend="ray",
                        show_progress=False)  # fmt: skip
    assert got.resumed_from == 12 and got.added == 28 and got.complete
    ref = encode_corpus(corpus, tmp_path / "ref.lance", model=str(tiny_bert), chunk_size=6,
                        show_progress=False)  # fmt: skip
    assert read_rows(out) == read_rows(ref.path)
