"""The first run on an ordinary machine: the memory check before loading (against this machine's real RAM), --dtype
through every command that loads a model, the encode forecast, and the download announcement."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from helpers import db_state
from llara_search.cli import app
from llara_search.encoder.memory import (GiB, InsufficientMemoryError, TrainingShape, available_ram, cgroup_available,
                                         check_fits, count_parameters, estimate, normalize_dtype,
                                         safetensors_parameters)

runner = CliRunner()

LLAMA2_7B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
             "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
             "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
             "tie_word_embeddings": False, "torch_dtype": "float16"}
LLAMA2_70B = LLAMA2_7B | {"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
                          "num_attention_heads": 64, "num_key_value_heads": 8}


def _config_only(folder: Path, config: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _one_error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


# ---------------------------------------------------------------------------------------------------- the estimate
def test_parameter_counts_match_the_models_transformers_builds(tiny_model):
    from transformers import AutoModel, AutoModelForCausalLM

    config = json.loads((tiny_model / "config.json").read_text())
    encoder = sum(p.numel() for p in AutoModel.from_pretrained(tiny_model).parameters())
    causal = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model).parameters())
    assert count_parameters(config) == encoder == safetensors_parameters(tiny_model)
    assert count_parameters(config, with_lm_head=True) == causal == safetensors_parameters(tiny_model,
                                                                                           with_lm_head=True)
    assert count_parameters(LLAMA2_7B, with_lm_head=True) == 6_738_415_616  # LLaMA-2-7B's published count
    assert count_parameters(LLAMA2_70B, with_lm_head=True) == 68_976_648_192  # and 70B's (grouped KV heads)


def test_the_message_names_needed_available_and_what_would_fit(monkeypatch):
    est = estimate(LLAMA2_7B, dtype="float32", device="cpu", available=20 * GiB, name="llama-7b")
    assert not est.fits and 26 * GiB < est.needed_bytes < 28 * GiB
    msg = est.message()
    assert "llama-7b (6.6B parameters) needs ~27.1 GiB" in msg and "of RAM" in msg and "20.0 GiB is available" in msg
    assert "--dtype bfloat16 (needs ~13." in msg and "a GPU with" in msg and "a smaller model" in msg
    with pytest.raises(InsufficientMemoryError, match="20.0 GiB is available") as info:
        check_fits(LLAMA2_7B, "float32", "cpu", available=20 * GiB)
    assert info.value.estimate.needed_bytes == est.needed_bytes
    assert check_fits(LLAMA2_7B, "bf16", "cpu", available=20 * GiB).fits  # half the weights
    tight = estimate(LLAMA2_7B, dtype="float32", device="cpu", available=10 * GiB).message()
    assert "--dtype bfloat16" not in tight and "a GPU with" in tight  # bf16 would not fit either: not offered
    monkeypatch.setenv("LLARA_SEARCH_MEMORY_CHECK", "0")
    assert not check_fits(LLAMA2_7B, "float32", "cpu", available=20 * GiB).fits  # estimated, not refused
    assert normalize_dtype("BF16") == "bfloat16" and normalize_dtype(None) == "auto"
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        normalize_dtype("int8")


def test_training_needs_its_own_estimate():
    shape = TrainingShape(tokens=8 * 128, seq_len=128, lora_r=64)
    infer = estimate(LLAMA2_7B, dtype="bfloat16", device="cpu", available=24 * GiB)
    train = estimate(LLAMA2_7B, dtype="bfloat16", device="cpu", purpose="train", training=shape, available=24 * GiB)
    assert infer.fits and not train.fits  # inference fits in 24 GiB, training the same model does not
    assert train.training_state_bytes == 159_907_840 * 20  # LoRA r=64 on 7 projections: 159.9M float32 parameters
    assert train.weights_bytes > infer.weights_bytes  # the causal LM's output layer is loaded too
    assert "a smaller --batch-size" in train.message() and "a smaller base model (--base)" in train.message()
    checkpointed = estimate(LLAMA2_7B, dtype="bfloat16", device="cuda", purpose="train", available=80 * GiB,
                            training=TrainingShape(8 * 128, 128, 64, gradient_checkpointing=True))
    assert checkpointed.working_bytes < train.working_bytes / 4 and checkpointed.runtime_bytes == 0


def test_available_ram_reads_meminfo_and_cgroup_limits(tmp_path):
    total = int(next(line for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal:")).split()[1]) * 1024
    assert 0 < available_ram() <= total
    v2 = tmp_path / "v2"
    (v2 / "user.slice" / "job").mkdir(parents=True)
    (v2 / "user.slice" / "memory.max").write_text(f"{4 * GiB}\n")
    (v2 / "user.slice" / "memory.current").write_text(f"{3 * GiB}\n")
    (v2 / "user.slice" / "memory.stat").write_text(f"anon 123\ninactive_file {GiB}\n")
    (v2 / "user.slice" / "job" / "memory.max").write_text("max\n")
    assert cgroup_available("0::/user.slice/job\n", v2) == 2 * GiB  # 4 − (3 − 1 reclaimable page cache)
    v1 = tmp_path / "v1" / "memory" / "docker" / "abc"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text(f"{8 * GiB}\n")
    (v1 / "memory.usage_in_bytes").write_text(f"{GiB}\n")
    assert cgroup_available("12:cpu:/x\n5:memory:/docker/abc\n", tmp_path / "v1") == 7 * GiB
    assert cgroup_available("0::/\n", tmp_path / "empty") is None  # no limit anywhere: MemAvailable decides


# ---------------------------------------------------------------------------------------------------- the CLI
def test_ingest_refuses_a_7b_config_it_cannot_hold_and_creates_nothing(tmp_path):
    """A folder with LLaMA-2-7B's config and no weights, against this machine's real free RAM: float32 needs ~27 GiB.
    Where that happens to fit (a big machine), LLaMA-2-70B's config (~260 GiB) takes its place."""
    config = LLAMA2_7B if not estimate(LLAMA2_7B, dtype="float32", device="cpu").fits else LLAMA2_70B
    model = _config_only(tmp_path / "llama-7b-config-only", config)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nSome text.\n")
    index = tmp_path / "idx"
    r = runner.invoke(app, ["ingest", str(docs), "--model", str(model), "--index", str(index)])
    assert r.exit_code == 1, r.output
    line = _one_error_line(r)
    assert "B parameters) needs ~" in line and "GiB of RAM to encode in float32" in line and "is available" in line
    assert ("--dtype bfloat16" in line) == (config is LLAMA2_7B) and "a GPU with" in line
    assert not index.exists()  # the check ran before the index folder or its database was created


@pytest.fixture(scope="module")
def bf16_index(tmp_path_factory, tiny_model):
    """A first ingest in bfloat16 of > 256 chunks, so that the forecast is made after the first committed batch."""
    root = tmp_path_factory.mktemp("dtype")
    docs = root / "docs"
    docs.mkdir()
    words = "llama alpaca vicuna guanaco camel dromedary herd fleece wool pack trail andes".split()
    for f in range(4):
        # every word its own (a repeated passage takes the stored vector of its first copy: it is not encoded again)
        paras = [" ".join(f"{words[(f * 7 + p * 3 + i) % len(words)]}{f}{p}{i}" for i in range(6)) for p in range(100)]
        (docs / f"notes{f}.txt").write_text("\n\n".join(paras) + "\n")
    index = root / "idx"
    r = runner.invoke(app, ["ingest", str(docs), "--index", str(index), "--model", str(tiny_model), "--chunk-tokens",
                            "8", "--dtype", "bfloat16", "--json"], env={"LLARA_SEARCH_ESTIMATE_MIN_S": "0"})
    assert r.exit_code == 0, r.output
    return docs, index, json.loads(r.stdout), r.stderr


def test_first_ingest_in_bfloat16_is_recorded_and_forecast(bf16_index):
    _, index, report, stderr = bf16_index
    assert report["memory"]["dtype"] == "bfloat16" and report["memory"]["fits"] and report["memory"]["checked"]
    assert report["memory"]["available_bytes"] > report["memory"]["needed_bytes"]
    est = report["estimate"]
    assert est["dtype"] == "bfloat16" and est["device"] == "cpu" and est["chunks_per_s"] > 0
    assert 256 <= est["chunks_done"] < report["chunks_encoded"]
    assert abs(est["chunks"] - report["chunks_encoded"]) <= 0.2 * report["chunks_encoded"]  # extrapolated by bytes
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["estimate"] and events[0]["chunks"] == est["chunks"]
    assert events[0]["message"].endswith("Ctrl-C is safe, re-running resumes")
    status = json.loads(runner.invoke(app, ["status", "--index", str(index), "--json"]).stdout)
    assert status["passage_dtypes"] == ["bfloat16"]


def test_query_runs_in_the_dtype_asked_for(bf16_index):
    _, index, _, _ = bf16_index
    got = {}
    for dtype in ("bfloat16", "auto"):
        r = runner.invoke(app, ["query", "alpaca fleece", "--index", str(index), "-k", "3", "--dtype", dtype, "--json"])
        assert r.exit_code == 0, r.output
        got[dtype] = json.loads(r.stdout)
    assert got["bfloat16"]["dtype"] == "bfloat16" and got["auto"]["dtype"] == "float32"  # auto: float32 on a CPU
    assert got["bfloat16"]["results"][0]["score"] != got["auto"]["results"][0]["score"]  # really encoded in bf16


def test_reencode_in_float32_refused_under_a_memory_cap_then_recorded(bf16_index):
    docs, index, _, _ = bf16_index
    before = _tree(index)
    r = runner.invoke(app, ["reencode", "--index", str(index), "--dtype", "float32"],
                      env={"LLARA_SEARCH_MAX_MEMORY": "64M"})
    assert r.exit_code == 1 and "but 0.1 GiB is available" in _one_error_line(r)
    assert _tree(index) == before  # refused before the lock file, the database or the vectors were touched
    (docs / "new.txt").write_text("a new note about guanaco herds\n")
    state = db_state(index)
    r = runner.invoke(app, ["ingest", str(docs), "--index", str(index)], env={"LLARA_SEARCH_MAX_MEMORY": "64M"})
    assert r.exit_code == 1 and "GiB of RAM to encode" in _one_error_line(r)
    assert db_state(index) == state  # an existing index: refused when the model loads, before any chunk is written
    (docs / "new.txt").unlink()
    r = runner.invoke(app, ["reencode", "--index", str(index), "--dtype", "float32"],
                      env={"LLARA_SEARCH_ESTIMATE_MIN_S": "0"})
    assert r.exit_code == 0, r.output
    assert "chunks at ~" in r.stderr and "(float32): about" in r.stderr and "re-running resumes" in r.stderr
    status = json.loads(runner.invoke(app, ["status", "--index", str(index), "--json"]).stdout)
    assert status["passage_dtypes"] == ["float32"]  # every stored vector is float32-encoded now


def test_eval_train_and_finetune_take_the_dtype(tmp_path, tiny_model):
    from test_eval import write_beir

    beir = write_beir(tmp_path / "beir")
    index = tmp_path / "eval-idx"
    r = runner.invoke(app, ["eval", str(beir), "--index", str(index), "--model", str(tiny_model), "-k", "5",
                            "--dtype", "bf16", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["memory"]["dtype"] == "bfloat16"
    status = json.loads(runner.invoke(app, ["status", "--index", str(index), "--json"]).stdout)
    assert status["passage_dtypes"] == ["bfloat16"]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Llamas\n\nLlamas carry packs.\n\nAlpacas grow fleece.\n")
    r = runner.invoke(app, ["train", "--corpus", str(tmp_path / "docs"), "--base", str(tiny_model), "--output",
                            str(tmp_path / "ad"), "--max-steps", "1", "--batch-size", "2", "--lora-r", "2",
                            "--save-every", "0", "--dtype", "bfloat16", "--json"])
    assert r.exit_code == 0, r.output
    card = json.loads(r.stdout)
    assert card["dtype"] == "bfloat16" and card["config"]["dtype"] == "bfloat16"
    assert card["memory"]["purpose"] == "train" and card["memory"]["dtype"] == "bfloat16" and card["memory"]["fits"]
    rows = [{"query": "who carries packs", "pos": ["Llamas carry packs."], "neg": ["Alpacas grow fleece."]}]
    (tmp_path / "ft.jsonl").write_text("\n".join(json.dumps(x) for x in rows * 2) + "\n")
    r = runner.invoke(app, ["finetune", "--train", str(tmp_path / "ft.jsonl"), "--base", str(tiny_model), "--output",
                            str(tmp_path / "ft"), "--max-steps", "1", "--batch-size", "2", "--group-size", "2",
                            "--lora-r", "2", "--save-every", "0", "--dtype", "bfloat16", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["dtype"] == "bfloat16"
    for cmd in ("train", "finetune"):
        r = runner.invoke(app, [cmd, "--corpus" if cmd == "train" else "--train", str(tmp_path / "ft.jsonl"),
                                "--output", str(tmp_path / "x"), "--dtype", "float16"])
        assert r.exit_code == 2 and "float16 cannot train" in _one_error_line(r)


def test_every_model_loading_command_checks_its_dtype(tmp_path):
    commands = [["ingest", str(tmp_path)], ["query", "q"], ["serve"], ["mcp"], ["eval", str(tmp_path)],
                ["reencode"], ["train", "--output", str(tmp_path / "o"), "--corpus", str(tmp_path)],
                ["finetune", "--train", str(tmp_path), "--output", str(tmp_path / "o")]]
    for cmd in commands:
        r = runner.invoke(app, [*cmd, "--index", str(tmp_path / "none"), "--dtype", "int4"] if cmd[0] not in (
            "train", "finetune") else [*cmd, "--dtype", "int4"])
        assert r.exit_code == 2, (cmd, r.output)
        assert "--dtype: unknown dtype 'int4'" in _one_error_line(r), cmd
    assert not (tmp_path / "none").exists()


def test_status_doctor_and_bm25_queries_never_import_torch(bf16_index):
    _, index, _, _ = bf16_index
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom llara_search.cli import app\n"
            f"for args in (['status'], ['doctor'], ['query', 'alpaca', '--mode', 'bm25']):\n"
            f"    r = CliRunner().invoke(app, args + ['--index', {str(index)!r}, '--json'])\n"
            "    assert r.exit_code == 0, r.output\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr[-2000:]


# ---------------------------------------------------------------------------------------------------- downloads
def test_download_plan_counts_what_the_cache_lacks(tmp_path):
    from llara_search.encoder.checkpoint import plan_download, remote_files

    repo = tmp_path / "hub" / "models--BAAI--LLARA-passage"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    files = [("config.json", 700), ("model-00001-of-00002.safetensors", 9_976_576_152),
             ("model-00002-of-00002.safetensors", 3_500_296_424), ("tokenizer.model", 499_723)]
    plan = plan_download("BAAI/LLARA-passage", "abc123", files, cache_dir=tmp_path / "hub")
    assert plan.files == 3 and plan.bytes == 9_976_576_152 + 3_500_296_424 + 499_723
    assert plan.destination == str(repo)
    assert plan.message().startswith(f"downloading BAAI/LLARA-passage: 13.5 GB in 3 files to {repo}")
    assert remote_files("BAAI/LLARA-passage") is None  # HF_HUB_OFFLINE=1 (conftest): fails soft, asks nobody
