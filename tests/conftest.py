"""Fixtures: tiny random LLaRA models built here, around the real LLaMA-2 tokenizer when ../shared has it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n N` each worker gets one core: N workers each spinning N intra-op threads thrash a small CI box.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)

from llara_search.testing import make_tiny_llara, shared_tokenizer_dir, train_fallback_tokenizer  # noqa: E402


@pytest.fixture(scope="session")
def real_tokenizer_dir() -> Path:
    d = shared_tokenizer_dir()
    if d is None:
        pytest.skip("../shared/models/llama2-llara-tokenizer is not present")
    return d


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    """The shared LLaMA-2 LLaRA tokenizer when present, a tokenizer trained here otherwise."""
    d = shared_tokenizer_dir()
    if d is not None:
        return d
    out = tmp_path_factory.mktemp("tokenizer")
    train_fallback_tokenizer(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tokenizer_dir) -> Path:
    return make_tiny_llara(tmp_path_factory.mktemp("tiny-llara"), tokenizer_dir=tokenizer_dir)


@pytest.fixture(scope="session")
def other_tiny_model(tmp_path_factory, tokenizer_dir) -> Path:
    return make_tiny_llara(tmp_path_factory.mktemp("tiny-llara-2"), tokenizer_dir=tokenizer_dir, seed=1)


@pytest.fixture(scope="session")
def fallback_model(tmp_path_factory) -> Path:
    """A model around a tokenizer trained in the fixture: what a bare clone without ../shared tests with."""
    tok = tmp_path_factory.mktemp("fallback-tok")
    train_fallback_tokenizer(tok)
    return make_tiny_llara(tmp_path_factory.mktemp("fallback-llara"), tokenizer_dir=tok)


@pytest.fixture(scope="session")
def encoder(tiny_model):
    from llara_search.encoder import LlaraEncoder

    return LlaraEncoder.from_pretrained(str(tiny_model), show_progress=False)
