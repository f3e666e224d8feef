"""Loading weights straight from safetensors (encoder/fast_load.py): the same model transformers would build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from llara_search.encoder import LlaraEncoder, fast_load
from llara_search.testing import make_tiny_llara


def _state(model) -> dict:
    return {k: v for k, v in model.state_dict().items()}


def _same_weights(a, b) -> None:
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k
    ra = dict(a.named_buffers())
    rb = dict(b.named_buffers())
    assert ra.keys() == rb.keys()
    for k in ra:  # RoPE's computed inv_freq too
        assert torch.equal(ra[k], rb[k]), k


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("causal", [False, True])
def test_same_model_as_from_pretrained(tiny_model, dtype, causal):
    from transformers import AutoModel, AutoModelForCausalLM

    ours = fast_load.load_model(tiny_model, dtype=dtype, device=torch.device("cpu"), causal=causal)
    ref = (AutoModelForCausalLM if causal else AutoModel).from_pretrained(tiny_model, dtype=dtype)
    assert type(ours) is type(ref) and not ours.training
    assert all(not p.requires_grad for p in ours.parameters())
    _same_weights(ours, ref)
    ids = torch.tensor([[0, 0, 1, 376, 5, 9, 11, 3]])
    mask = (ids != 0).long()
    with torch.inference_mode():
        a = ours(input_ids=ids, attention_mask=mask).logits if causal else ours(input_ids=ids, attention_mask=mask
                                                                                ).last_hidden_state
        b = ref(input_ids=ids, attention_mask=mask).logits if causal else ref(input_ids=ids, attention_mask=mask
                                                                              ).last_hidden_state
    assert torch.equal(a, b)


def test_sharded_bf16_checkpoint_tied_embeddings_and_staged_copies(tmp_path, tokenizer_dir, monkeypatch):
    """A bf16 checkpoint in several shards, tied input/output embeddings (no lm_head in the files), read through
    the chunked staging loop the GPU uses (forced on the CPU with small chunks), converted to float32."""
    from transformers import AutoModelForCausalLM

    src = make_tiny_llara(tmp_path / "src", tokenizer_dir=tokenizer_dir, tie_embeddings=True, seed=4)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.bfloat16)
    out = tmp_path / "sharded"
    model.save_pretrained(out, max_shard_size="100KB")
    assert json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(fast_load.safetensors_files(out)) > 2
    assert not any(e.name == "lm_head.weight" for f in fast_load.safetensors_files(out)
                   for e in fast_load.read_header(f))
    monkeypatch.setattr(fast_load, "_FORCE_STAGED", True)
    monkeypatch.setattr(fast_load, "CHUNK", 4096)
    for causal in (True, False):
        ours = fast_load.load_model(out, dtype=torch.float32, device=torch.device("cpu"), causal=causal)
        ref = (AutoModelForCausalLM if causal else __import__("transformers").AutoModel).from_pretrained(
            out, dtype=torch.float32)
        _same_weights(ours, ref)
        if causal:
            assert ours.lm_head.weight.data_ptr() == ours.model.embed_tokens.weight.data_ptr()
    # no conversion: several reading threads, each with its own staging buffers
    ours = fast_load.load_model(out, dtype=torch.bfloat16, device=torch.device("cpu"), causal=True)
    _same_weights(ours, AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16))


def test_reading_threads_split_the_work_by_bytes(tiny_model):
    entries = fast_load.read_header(tiny_model / "model.safetensors")
    plan = [(e, e.name) for e in entries]
    bar = fast_load._Progress("x", sum(e.nbytes for e in entries), False)
    one = dict(fast_load._read_all(plan, torch.device("cpu"), torch.float32, bar, threads=1))
    three = dict(fast_load._read_all(plan, torch.device("cpu"), torch.float32, bar, threads=3))
    assert one.keys() == three.keys() == {e.name for e in entries}
    assert all(torch.equal(one[k], three[k]) for k in one)
    assert bar.done == 2 * sum(e.nbytes for e in entries)


def test_encoder_vectors_equal_transformers_loader(tiny_model, encoder, monkeypatch):
    """Today's vectors: the encoder loaded through transformers (the fallback) and through the fast path agree."""
    def unsupported(*a, **k):
        raise fast_load.Unsupported("forced for the test")

    texts = ["What is llama?", "a passage about camelids " * 20]
    fast = encoder.encode_passages(texts)
    monkeypatch.setattr(fast_load, "load_model", unsupported)
    slow = LlaraEncoder.from_pretrained(str(tiny_model), show_progress=False)
    assert np.array_equal(slow.encode_passages(texts), fast)


def test_bin_checkpoint_falls_back_to_transformers(tmp_path, tiny_model, encoder, caplog):
    import logging

    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "bin"
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    model.save_pretrained(out)
    (out / "model.safetensors").unlink()
    torch.save(model.state_dict(), out / "pytorch_model.bin")  # the older pickle format
    AutoTokenizer.from_pretrained(tiny_model).save_pretrained(out)
    with caplog.at_level(logging.INFO, logger="llara_search.encoder.fast_load"):
        enc = LlaraEncoder.from_pretrained(str(out), show_progress=False, check_memory=False)
    assert any("no safetensors weights" in r.getMessage() for r in caplog.records)
    assert np.abs(enc.encode_queries(["x y"]) - encoder.encode_queries(["x y"])).max() <= 1e-6


def test_truncated_weights_are_one_clear_error(tmp_path, tiny_model):
    import shutil

    out = tmp_path / "broken"
    shutil.copytree(tiny_model, out)
    f = out / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(OSError, match="cannot load model") as info:
        LlaraEncoder.from_pretrained(str(out), show_progress=False, check_memory=False)
    assert "\n" not in str(info.value)


def test_progress_line_for_big_models(tiny_model, capsys, monkeypatch):
    monkeypatch.setattr(fast_load, "PROGRESS_BYTES", 1000)
    fast_load.load_model(tiny_model, dtype=torch.float32, device=torch.device("cpu"), label="tiny")
    err = capsys.readouterr().err
    assert err.startswith("loading tiny: ") and "loaded tiny: " in err and "GB/s" in err
    monkeypatch.setattr(fast_load, "PROGRESS_BYTES", 1 << 40)
    fast_load.load_model(tiny_model, dtype=torch.float32, device=torch.device("cpu"), label="tiny")
    assert capsys.readouterr().err == ""


def test_loading_an_encoder_imports_only_what_it_needs(tiny_model):
    """A query process loads the model without the server, the database, peft or faiss."""
    code = (
        "import sys; from llara_search.encoder.model import LlaraEncoder; "
        f"e = LlaraEncoder.from_pretrained({str(tiny_model)!r}, show_progress=False); e.encode_queries(['x']); "
        "heavy = ('sqlalchemy', 'fastapi', 'uvicorn', 'peft', 'faiss', 'alembic', 'starlette', 'pymilvus'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=300,
                         env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_cpu_weights_are_a_private_mapping_of_the_file(tiny_model):
    """No conversion on the CPU: the weights are views of the mapped file (no second copy), and writing to one
    changes neither the file nor another load."""
    import hashlib

    f = tiny_model / "model.safetensors"
    before = hashlib.sha256(f.read_bytes()).hexdigest()
    a = fast_load.load_model(tiny_model, dtype=torch.float32, device=torch.device("cpu"))
    emb = a.embed_tokens.weight
    assert emb.untyped_storage().nbytes() == f.stat().st_size  # the storage is the whole mapped file
    ref = a.norm.weight.clone()
    with torch.no_grad():
        a.norm.weight.fill_(float("nan"))
    b = fast_load.load_model(tiny_model, dtype=torch.float32, device=torch.device("cpu"))
    assert torch.equal(b.norm.weight, ref)
    assert hashlib.sha256(f.read_bytes()).hexdigest() == before
    # a causal model (an adapter is merged into it in place) is read into memory of its own
    c = fast_load.load_model(tiny_model, dtype=torch.float32, device=torch.device("cpu"), causal=True)
    assert c.model.embed_tokens.weight.untyped_storage().nbytes() == c.model.embed_tokens.weight.nbytes
