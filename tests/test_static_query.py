"""The compiled static-shape query path (encoder/static_query.py) gives the eager vectors, falls back when it must."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from llara_search.encoder import LlaraEncoder
from llara_search.encoder.static_query import StaticQueryPath, wanted

QUERIES = ["What is llama?", "x", "Who domesticated the llama and when did it happen in South America?",
           "retrieval of passages", "a b c d e f g h i j", "JAX grad jit vmap"]


@pytest.fixture(scope="module")
def compiled(tiny_model):
    """One bucket (4 queries x 64 tokens) keeps compile time to seconds on two cores."""
    enc = LlaraEncoder.from_pretrained(str(tiny_model), show_progress=False)
    enc.compile_queries(lengths=[64], batches=[4], warm=True)
    yield enc
    enc.static.close()


def _one_by_one(encoder, texts):
    """Each query alone, padded only to a multiple of 8: the unbucketed reference."""
    return np.concatenate([encoder.encode_queries([t]) for t in texts])


@pytest.mark.slow
def test_compiled_buckets_equal_eager_unpadded(compiled, encoder):
    assert compiled.static.failed is None and compiled.static._warm == {(4, 64)}
    calls = compiled.static.calls
    ref = _one_by_one(encoder, QUERIES)
    one = compiled.encode_queries(QUERIES[:1])
    four = compiled.encode_queries(QUERIES[:4])
    six = compiled.encode_queries(QUERIES)  # more than the largest batch bucket: split in two
    assert compiled.static.calls == calls + 1 + 1 + 2  # all of them ran compiled
    assert np.abs(one - ref[:1]).max() <= 1e-5
    assert np.abs(four - ref[:4]).max() <= 1e-5
    assert np.abs(six - ref).max() <= 1e-5
    assert np.allclose(np.linalg.norm(six, axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_bucket_padding_alone_keeps_vectors(compiled, encoder):
    """Padding to the bucket (more left pads, filler rows) through the EAGER model: the padding itself is exact."""
    import torch

    from llara_search.encoder.forward import pooled_embeddings
    from llara_search.encoder.prompts import build_inputs, tokenize_texts

    seqs = build_inputs(encoder.prompt, tokenize_texts(encoder.tokenizer, QUERIES[:3], 512), "query")
    ids, mask = compiled.static.pack(seqs, 4, 64)
    assert ids.shape == (4, 64) and mask[:, -1].all() and not mask[:, 0].any()
    with torch.inference_mode():
        padded = pooled_embeddings(encoder.model, ids, mask).numpy()[:3]
    assert np.abs(padded - _one_by_one(encoder, QUERIES[:3])).max() <= 1e-5


@pytest.mark.slow
def test_too_long_query_runs_eager_and_says_so_once(compiled, encoder, caplog):
    long_q = "llama " * 80  # beyond the 64-token bucket
    calls = compiled.static.calls
    with caplog.at_level(logging.INFO, logger="llara_search.encoder.static_query"):
        a = compiled.encode_queries([long_q])
        b = compiled.encode_queries([long_q, "short"])
    assert compiled.static.calls == calls
    assert np.abs(a - encoder.encode_queries([long_q])).max() <= 1e-6
    assert b.shape == (2, compiled.dim)
    told = [r for r in caplog.records if "longer than the compiled buckets" in r.getMessage()]
    assert len(told) <= 1 and (len(told) == 1 or compiled.static._told_outside)


def test_compile_failure_falls_back_to_eager_once(tiny_model, encoder, caplog):
    enc = LlaraEncoder.from_pretrained(str(tiny_model), show_progress=False)
    path = enc.compile_queries(lengths=[32], batches=[1], warm=False)

    def broken(ids, mask):
        raise RuntimeError("inductor: no C++ compiler found\nmore detail")

    path._compiled = broken
    with caplog.at_level(logging.WARNING, logger="llara_search.encoder.static_query"):
        a = enc.encode_queries(["What is llama?"])
        b = enc.encode_queries(["What is llama?"])
        assert path.warm() >= 0
    assert path.failed.startswith("RuntimeError: inductor: no C++ compiler found")
    warned = [r for r in caplog.records if "compiled query path failed" in r.getMessage()]
    assert len(warned) == 1
    ref = encoder.encode_queries(["What is llama?"])
    assert np.abs(a - ref).max() <= 1e-6 and np.abs(b - ref).max() <= 1e-6
    path.close()


def test_buckets_are_chosen_smallest_first(encoder):
    import torch

    path = StaticQueryPath(encoder.model, device=torch.device("cpu"), pad_id=0, lengths=[128, 32, 64],
                           batches=[8, 1, 32])
    assert path.bucket(1, 20) == (1, 32)
    assert path.bucket(2, 33) == (8, 64)
    assert path.bucket(9, 128) == (32, 128)
    assert path.bucket(40, 10) == (32, 32)  # split by encode() into batches of 32
    assert path.bucket(1, 129) is None
    with pytest.raises(ValueError):
        StaticQueryPath(encoder.model, device=torch.device("cpu"), pad_id=0, lengths=[], batches=[1])
    path.close()


def test_serve_default_compiles_on_cuda_only(monkeypatch):
    import torch

    monkeypatch.delenv("LLARA_SEARCH_COMPILE_QUERIES", raising=False)
    assert wanted(torch.device("cuda")) and not wanted(torch.device("cpu"))
    monkeypatch.setenv("LLARA_SEARCH_COMPILE_QUERIES", "on")
    assert wanted(torch.device("cpu"))
    monkeypatch.setenv("LLARA_SEARCH_COMPILE_QUERIES", "off")
    assert not wanted(torch.device("cuda"))


@pytest.mark.slow
def test_serve_compiles_at_start_and_answers_with_eager_vectors(tmp_path, tiny_model):
    """`llara-search serve` with the compiled path switched on (one bucket): it says so on stderr before serving,
    and its /embeddings vectors are the eager encoder's."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx
    from typer.testing import CliRunner

    from helpers import make_corpus
    from llara_search.cli import app

    index = tmp_path / "idx"
    r = CliRunner().invoke(app, ["ingest", str(make_corpus(tmp_path / "docs")), "--index", str(index), "--model",
                                 str(tiny_model), "--json"])
    assert r.exit_code == 0, r.output
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "LLARA_SEARCH_COMPILE_QUERIES": "on",
           "LLARA_SEARCH_QUERY_BUCKETS": "64x2"}
    proc = subprocess.Popen([sys.executable, "-m", "llara_search", "serve", "--index", str(index), "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env, cwd=root)
    try:
        lines, deadline = [], time.monotonic() + 600
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "serve exited: " + "".join(lines)
            lines.append(line)
            if line.startswith("serving "):
                break
        assert any(x.startswith("compiled 1 query shapes in ") for x in lines), lines
        url = line.split(" at ")[1].split()[0]
        body = {"input": ["What is llama?", "x"], "model": "llara", "input_type": "query"}
        got = httpx.post(url + "/v1/embeddings", json=body, timeout=60).json()
        vecs = np.array([d["embedding"] for d in got["data"]], dtype=np.float32)
        enc = LlaraEncoder.from_pretrained(str(tiny_model), show_progress=False)
        assert np.abs(vecs - enc.encode_queries(["What is llama?", "x"])).max() <= 1e-5
    finally:
        proc.terminate()
        proc.wait(timeout=60)
