"""Training: the pretext loss against an independent two-pass implementation of spec §2.3, and the trainers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from llara_search.cli import app
from llara_search.train import pretext_loss

runner = CliRunner()

TEXTS = [
    "The llama is a domesticated South American camelid, widely used as a meat and pack animal by Andean cultures "
    "since the pre-Columbian era. " * 4,  # longer than the 89 text tokens cutoff 128 leaves: truncated
    "HAProxy balances TCP and HTTP traffic.",
    "JAX transforms numerical functions: grad, jit, vmap and pmap compose.",
]
NEXT = [
    "Llamas are social animals and live with others as a herd.",
    "Each backend server gets a weight; the round-robin algorithm honours it.",
    "",  # the last chunk of a document has no next chunk: no EBAR target for it
]


def two_pass_reference(model, tok, texts, next_texts, cutoff_len=128):
    """Spec §2.3 computed the slow, obvious way: two separate causal passes per sample, no padding, no batching."""
    prefix = [1, 376]
    ebae = tok('", summarize the above passage within eight words: <s1><s2><s3><s4><s5><s6><s7><s8>',
               add_special_tokens=False)["input_ids"]
    ebar = tok('", predict the following passage within eight words: <s9><s10><s11><s12><s13><s14><s15><s16>',
               add_special_tokens=False)["input_ids"]
    assert (len(ebae), len(ebar)) == (19, 18)
    budget = cutoff_len - 2 - 19 - 18
    ce_sum, ce_n, e_terms, r_terms = 0.0, 0, [], []
    for text, nxt in zip(texts, next_texts):
        t = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"][:budget]
        la = model(input_ids=torch.tensor([prefix + t + ebae])).logits[0].float()
        lb = model(input_ids=torch.tensor([prefix + t + ebar])).logits[0].float()
        for j in range(len(prefix), len(prefix) + len(t)):
            ce_sum += float(-torch.log_softmax(la[j - 1], -1)[t[j - len(prefix)]])
            ce_n += 1
        for logits, target_text, terms in ((la, text, e_terms), (lb, nxt, r_terms)):
            ids = sorted({i for i in tok(target_text, truncation=True, max_length=cutoff_len)["input_ids"] if i > 2})
            if ids:
                logp = torch.log_softmax(logits[-8:].max(dim=0).values, -1)
                terms.append(float(-logp[ids].mean()))
    ar = ce_sum / ce_n
    e = sum(e_terms) / len(e_terms) / 10
    r = sum(r_terms) / len(r_terms) / 10
    return {"ar": ar, "ebae": e, "ebar": r, "total": ar + (e + r) / 2}


def test_pretext_loss_equals_two_separate_passes(real_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer, LlamaForCausalLM

    from llara_search.testing import make_tiny_llara

    path = make_tiny_llara(tmp_path / "m", tokenizer_dir=real_tokenizer_dir, seed=3)
    model = LlamaForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        got = pretext_loss(model, tok, TEXTS, NEXT, cutoff_len=128, remove_stopwords=False)
        ref = two_pass_reference(model, tok, TEXTS, NEXT)
    for key in ("total", "ar", "ebae", "ebar"):
        assert abs(float(got[key]) - ref[key]) <= 1e-4 * abs(ref[key]), (key, float(got[key]), ref[key])
    with torch.no_grad():  # --bow-weight 1 (a small model from scratch): each BoW term ×1 instead of ÷10
        heavy = pretext_loss(model, tok, TEXTS, NEXT, cutoff_len=128, remove_stopwords=False, bow_weight=1.0)
    for key in ("ebae", "ebar"):
        assert float(heavy[key]) == pytest.approx(10 * ref[key], rel=1e-4)
    assert float(heavy["total"]) == pytest.approx(ref["ar"] + 10 * (ref["ebae"] + ref["ebar"]) / 2, rel=1e-4)


def test_one_masked_pass_equals_two_causal_passes_hidden_states(tokenizer_dir, tmp_path):
    """Spec TV7: hidden states of the single masked pass equal the separate passes, also under left padding."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    from llara_search.encoder.prompts import PromptIds
    from llara_search.testing import make_tiny_llara
    from llara_search.train.pretext import build_pretext_batch

    path = make_tiny_llara(tmp_path / "m", tokenizer_dir=tokenizer_dir, seed=4)
    model = LlamaForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    prompt = PromptIds.for_tokenizer(tok)
    batch = build_pretext_batch(tok, prompt, TEXTS, NEXT, cutoff_len=128)
    with torch.no_grad():
        h = model.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                        position_ids=batch.position_ids).last_hidden_state
        n_ebar, n_ebae = batch.n_ebar, batch.n_ebae
        for row in range(len(TEXTS)):
            seen = batch.attention_mask[row, 0, -n_ebar - 1] == 0  # what the last EBAE token attends to
            body = batch.input_ids[row][seen].tolist()[:-n_ebae]
            a = model.model(input_ids=torch.tensor([body + prompt.ebae_suffix])).last_hidden_state[0]
            b = model.model(input_ids=torch.tensor([body + prompt.ebar_suffix])).last_hidden_state[0]
            n = len(body)
            assert torch.allclose(h[row, -n_ebar - n_ebae - n:-n_ebar], a, atol=1e-5)
            assert torch.allclose(h[row, -n_ebar:], b[-n_ebar:], atol=1e-5)


def test_stopword_targets_follow_the_reference_regex(real_tokenizer_dir):
    from transformers import AutoTokenizer

    from llara_search.train import bow_targets

    tok = AutoTokenizer.from_pretrained(real_tokenizer_dir)
    got = bow_targets(tok, ["The cat, and THE dog_house!"], 128, remove_stopwords=True)[0]
    want = sorted({i for i in tok("cat dog house")["input_ids"] if i > 2})
    assert got == want


# ---------------------------------------------------------------------------------------------------- trainers
PROSE = [
    "HAProxy is a free, very fast and reliable reverse-proxy offering high availability, load balancing, and "
    "proxying for TCP and HTTP-based applications. It is particularly suited for very high traffic web sites.",
    "The configuration file is split into sections: global parameters, defaults, frontends and backends. Each "
    "frontend accepts connections on bind lines and forwards them to a backend of servers.",
    "Health checks mark servers up or down; a server that fails three checks in a row stops receiving traffic "
    "until it passes two checks again. Checks may be plain TCP connects or full HTTP requests.",
    "JAX is a Python library for accelerator-oriented array computation and program transformation, designed for "
    "high-performance numerical computing and large-scale machine learning.",
    "jax.jit compiles a function with XLA the first time it is called with arguments of given shapes; later calls "
    "with the same shapes reuse the compiled executable, which is much faster.",
    "vmap vectorizes a function over a leading batch axis, and grad returns a function that computes the "
    "gradient of a scalar function with respect to its first argument.",
]


def _docs(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "haproxy.md").write_text("# HAProxy\n\n" + "\n\n".join(PROSE[:3]) + "\n")
    (root / "jax.md").write_text("# JAX\n\n" + "\n\n".join(PROSE[3:]) + "\n")
    return root


def _run(*args: str) -> dict:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_train_then_ingest_adapter_end_to_end(tmp_path, tiny_model):
    from safetensors.torch import load_file

    from llara_search import Engine
    from llara_search.encoder import LlaraEncoder

    docs = _docs(tmp_path / "docs")
    index, out = tmp_path / "idx", tmp_path / "adapter"
    first = _run("ingest", str(docs), "--index", str(index), "--model", str(tiny_model), "--chunk-tokens", "40")
    before = _run("status", "--index", str(index))
    card = _run("train", "--index", str(index), "--output", str(out), "--max-steps", "4", "--batch-size", "2",
                "--lora-r", "4", "--save-every", "2", "--lr", "1e-3")
    assert card["steps"] == 4 and card["task"] == "pretext" and card["data"]["examples"] == first["chunks_total"]
    assert (out / "adapter_config.json").is_file() and (out / "TRAINING.md").is_file()
    saved = load_file(str(out / "adapter_model.safetensors"))
    assert saved and all("lora_" in k for k in saved)  # only LoRA weights are trained (the base had the tokens)
    assert {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in saved} == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    r = _run("ingest", str(docs), "--index", str(index), "--adapter", str(out))
    after = _run("status", "--index", str(index))
    assert r["chunks_encoded"] == first["chunks_total"] and after["chunks_total"] == before["chunks_total"]
    assert after["fingerprint"] != before["fingerprint"] and after["adapter"] == str(out.resolve())
    assert after["generation"] > before["generation"]
    enc = LlaraEncoder.from_pretrained(str(tiny_model), adapter=str(out), show_progress=False)
    with Engine.open(index) as engine:
        hits = engine.search("health checks of servers", k=3)
        q = engine.encode_queries(["health checks of servers"])
        assert abs(q - enc.encode_queries(["health checks of servers"])).max() < 1e-5  # queries follow the adapter
        stored = engine.searcher.vectors.get([hits[0].chunk_id])
        assert abs(stored - enc.encode_passages([f"{hits[0].heading}\n\n{hits[0].text}"])).max() < 2e-3  # fp16
    back = _run("reencode", "--index", str(index))  # back to the base model alone
    assert back["fingerprint"] == before["fingerprint"]


def test_resume_continues_at_the_saved_step(tmp_path, tiny_model):
    from llara_search.train.trainer import TrainConfig, TrainingInterrupted, train

    pairs = [(PROSE[i], PROSE[i + 1] if i + 1 < len(PROSE) else "") for i in range(len(PROSE))]

    def cfg(out, **kw):
        return TrainConfig(output=out, base=str(tiny_model), max_steps=6, batch_size=2, lora_r=4, lr=1e-3,
                           save_every=2, **kw)

    straight = train(cfg(tmp_path / "a"), pairs, show_progress=False)

    def stop_at_5(step, logs):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match="step 5/6"):
        train(cfg(tmp_path / "b"), pairs, show_progress=False, on_step=stop_at_5)
    resumed = train(cfg(tmp_path / "b", resume=True), pairs, show_progress=False)
    assert resumed["resumed_from"].endswith("step-0000005") and resumed["steps"] == 6
    assert [h["step"] for h in resumed["history"]] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(straight["history"], resumed["history"]):
        assert a["total"] == pytest.approx(b["total"], rel=1e-5)  # same data order, same optimizer state


def test_pretext_loss_falls_on_real_text(tmp_path, tiny_model):
    from llara_search.train.trainer import TrainConfig, train

    pairs = [(PROSE[i], PROSE[(i + 1) % len(PROSE)]) for i in range(len(PROSE))]
    card = train(TrainConfig(output=tmp_path / "o", base=str(tiny_model), max_steps=30, batch_size=6, lora_r=8,
                             lr=3e-3, warmup_ratio=0.0, save_every=0, lora_dropout=0.0), pairs, show_progress=False)
    losses = [h["total"] for h in card["history"]]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.05, losses


def test_finetune_moves_positives_up(tmp_path, tiny_model):
    import numpy as np

    from llara_search.encoder import LlaraEncoder

    queries = ["what is haproxy", "haproxy configuration sections", "server health checks", "what is jax",
               "jit compilation with xla", "vmap and grad"]
    rows = [{"query": q, "pos": [p], "neg": [x for x in PROSE if x != p]} for q, p in zip(queries, PROSE)]
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")

    def mrr(enc):
        q = enc.encode_queries(queries)
        p = enc.encode_passages(PROSE)
        ranks = [1 + int((row > row[i]).sum()) for i, row in enumerate(q @ p.T)]
        return float(np.mean([1 / r for r in ranks]))

    before = mrr(LlaraEncoder.from_pretrained(str(tiny_model), show_progress=False))
    out = tmp_path / "ft"
    card = _run("finetune", "--train", str(train_file), "--output", str(out), "--base", str(tiny_model),
                "--max-steps", "25", "--batch-size", "6", "--group-size", "3", "--lr", "3e-3", "--lora-r", "8",
                "--lora-dropout", "0", "--save-every", "0")
    assert card["task"] == "contrastive" and card["loss_last"] < card["loss_first"]
    after = mrr(LlaraEncoder.from_pretrained(str(tiny_model), adapter=str(out), show_progress=False))
    assert after > before + 0.1, (before, after)


def test_training_input_errors_are_one_line(tmp_path, tiny_model):
    r = runner.invoke(app, ["train", "--output", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--index" in r.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q"}\n')
    r = runner.invoke(app, ["finetune", "--train", str(bad), "--output", str(tmp_path / "o"), "--base",
                            str(tiny_model)])
    assert r.exit_code == 2 and "bad.jsonl:1" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["train", "--corpus", str(_docs(tmp_path / "d")), "--output", str(tmp_path / "o2"),
                            "--base", str(tiny_model), "--resume"])
    assert r.exit_code == 1 and "no checkpoint" in r.output


def test_train_and_finetune_under_torchrun_two_cpu_processes(tmp_path, tiny_model):
    """DDP with gloo: both ranks step together; finetune gathers embeddings across ranks (cross-device negatives)."""
    import subprocess
    import sys

    docs = _docs(tmp_path / "docs")
    rows = [{"query": f"question {i}", "pos": [p], "neg": [x for x in PROSE if x != p][:2]} for i, p in
            enumerate(PROSE)]
    (tmp_path / "ft.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    runs = {"train": ["train", "--corpus", str(docs), "--output", str(tmp_path / "pre")],
            "finetune": ["finetune", "--train", str(tmp_path / "ft.jsonl"), "--output", str(tmp_path / "ft"),
                         "--group-size", "2"]}
    for name, args in runs.items():
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "llara_search", *args,
               "--base", str(tiny_model), "--max-steps", "2", "--batch-size", "2", "--lora-r", "4", "--json"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, r.stderr[-2000:]
        cards = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        assert len(cards) == 1 and cards[0]["world_size"] == 2 and cards[0]["steps"] == 2, r.stdout
        assert (Path(cards[0]["output"]) / "adapter_model.safetensors").is_file()
