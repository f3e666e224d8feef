"""The bulk pipeline (encoder/bulk.py): windows tokenized ahead on their own thread, the same vectors as one window."""

from __future__ import annotations

import threading

import numpy as np

from llara_search.encoder import bulk

TEXTS = ["x", "What is llama?", "llama " * 200, "a passage about camelids " * 10, "JAX grad jit vmap",
         "HAProxy load balancer " * 40, "short one", "the quick brown fox " * 3, "y", "configuration file port"]


def test_windows_give_the_same_vectors_in_order(encoder, monkeypatch):
    whole = bulk.encode(encoder, TEXTS, "passage", window=len(TEXTS))
    threads, sizes = [], []
    real = bulk.sequences

    def recording(enc, texts, kind):
        threads.append(threading.current_thread().name)
        sizes.append(len(texts))
        return real(enc, texts, kind)

    monkeypatch.setattr(bulk, "sequences", recording)
    done = []
    windowed = bulk.encode(encoder, TEXTS, "passage", window=3, batch_size=2, after_batch=done.append)
    assert sizes == [3, 3, 3, 1] and all(t.startswith("llara-tokenize") for t in threads)
    assert sum(done) == len(TEXTS)
    assert np.abs(windowed - whole).max() <= 1e-5
    # each row is its own text's vector: compare with encoding each text alone
    alone = np.concatenate([encoder.encode_passages([t]) for t in TEXTS])
    assert np.abs(windowed - alone).max() <= 1e-5


def test_given_token_ids_are_used_as_is(encoder):
    seqs = bulk.sequences(encoder, TEXTS[:4], "query")
    a = bulk.encode(encoder, TEXTS[:4], "query", seqs=seqs, window=2)
    assert np.abs(a - encoder.encode_queries(TEXTS[:4])).max() <= 1e-5
    assert bulk.encode(encoder, [], "query").shape == (0, encoder.dim)


def test_nan_is_still_reported_per_window(tiny_model):
    import pytest
    import torch

    from llara_search.encoder import LlaraEncoder

    enc = LlaraEncoder.from_pretrained(str(tiny_model), show_progress=False)
    with torch.no_grad():
        enc.model.norm.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="NaN"):
        bulk.encode(enc, TEXTS, "passage", window=4)
