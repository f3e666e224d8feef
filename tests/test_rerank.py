"""Rerankers against independent implementations of their reference usage (the bge-reranker / FlagReranker
recipe for cross-encoders, the RankLLaMA model card for the LoRA), then `query --rerank`, `serve`, `eval --rerank`
and MCP end to end with tiny random models built here."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from helpers import serve_in_thread
from llara_search.cli import app
from llara_search.engine import Engine, EngineError
from llara_search.rerank import NotARerankerError, RerankerOutputError, RerankPolicy, load_reranker
from llara_search.testing import make_tiny_cross_encoder, make_tiny_rankllama

runner = CliRunner()
WORDS = ("retrieval llama passage vector index the of and query search model token camelid JAX HAProxy "
         "configuration gradient 42 3.14 naïve café — «quotes» 東京 packing port proxy").split()
QUERIES = ["what is a llama", "how do I configure the port?", "x", "gradient of a vector search model"]


def _texts(n: int, seed: int = 0, lengths=(1, 3, 10, 40, 120, 300, 700)) -> list[str]:
    """Passages from one word to past the 512-token limit (truncation is exercised too)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.choice(lengths))) for _ in range(n)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine (or under `-n 2`) every op
    waits for the other thread's time slice: 5x slower. Restored for the tests after these."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cross_encoders(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ce")
    return {kind: make_tiny_cross_encoder(root / kind, kind=kind) for kind in ("bert", "xlm-roberta")}


@pytest.fixture(scope="module")
def rankllama(tmp_path_factory, tiny_model):
    return make_tiny_rankllama(tmp_path_factory.mktemp("rankllama"), tiny_model)


# ------------------------------------------------------------------------------------------------ references
def flag_reranker_reference(model_dir, pairs):
    """The bge-reranker model card: pair tokenization, padding, truncation at 512, the logit."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        inputs = tok(pairs, padding=True, truncation=True, return_tensors="pt", max_length=512)
        return model(**inputs, return_dict=True).logits.view(-1).float().numpy()


def rankllama_model_card(adapter_dir, query, title, passage):
    """castorini/rankllama-v1-7b-lora-passage's card: PeftConfig's base as a 1-label classifier, LoRA merged,
    `query: {q}` / `document: {title} {passage}`, logits[0][0]."""
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config = PeftConfig.from_pretrained(str(adapter_dir))
    key = str(adapter_dir)
    if key not in _CARD_MODELS:
        base = AutoModelForSequenceClassification.from_pretrained(config.base_model_name_or_path, num_labels=1)
        model = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload().eval()
        _CARD_MODELS[key] = model, AutoTokenizer.from_pretrained(config.base_model_name_or_path)
    model, tokenizer = _CARD_MODELS[key]
    inputs = tokenizer(f"query: {query}", f"document: {title} {passage}", return_tensors="pt")
    with torch.no_grad():
        return float(model(**inputs).logits[0][0]), inputs["input_ids"][0].tolist()


_CARD_MODELS: dict = {}


# ------------------------------------------------------------------------------------------------ scores
@pytest.mark.parametrize("kind", ["bert", "xlm-roberta"])
def test_cross_encoder_equals_the_bge_reranker_recipe(cross_encoders, kind):
    reranker = load_reranker(str(cross_encoders[kind]))
    assert reranker.family == "cross-encoder" and not reranker.decoder
    passages = _texts(15, seed=1, lengths=(1, 3, 10, 40, 120)) + _texts(1, seed=2, lengths=(700,))  # cut at 512
    titles = [None if i % 3 else f"Title {i}" for i in range(len(passages))]
    queries = [QUERIES[i % len(QUERIES)] for i in range(len(passages))]
    docs = [f"{t} {p}" if t else p for t, p in zip(titles, passages)]
    ref = flag_reranker_reference(cross_encoders[kind], [[q, d] for q, d in zip(queries, docs)])
    ours = reranker.score_pairs(queries, passages, titles)
    assert ours.dtype == np.float32 and ours.shape == (16,) and np.ptp(ours) > 0.1
    assert np.abs(ours - ref).max() <= 1e-4
    # batch partners and order do not matter: one pair at a time, shuffled, tiny batches
    reranker.max_batch_tokens = 64
    perm = np.random.default_rng(0).permutation(16)
    shuffled = reranker.score_pairs([queries[i] for i in perm], [passages[i] for i in perm], [titles[i] for i in perm])
    assert np.abs(shuffled - ref[perm]).max() <= 1e-4
    single = np.array([reranker.score(queries[i], [passages[i]], [titles[i]])[0] for i in range(0, 16, 5)])
    assert np.abs(single - ref[0:16:5]).max() <= 1e-4
    reranker.normalize = True  # FlagReranker's normalize=True: the sigmoid of the logit
    assert np.abs(reranker.score_pairs(queries, passages, titles) - 1 / (1 + np.exp(-ref))).max() <= 1e-5


def test_long_query_is_cut_to_three_quarters_as_flag_reranker_does(cross_encoders):
    """FlagReranker cuts the query to 3/4 of max_length before the passage gets what is left."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    d = cross_encoders["bert"]
    reranker = load_reranker(str(d))
    query, passage = _texts(1, seed=3, lengths=(700,))[0], _texts(1, seed=4, lengths=(700,))[0]
    tok = AutoTokenizer.from_pretrained(d)
    q = tok(query, add_special_tokens=False)["input_ids"][:384]
    p = tok(passage, add_special_tokens=False)["input_ids"][:512 - 384 - 3]
    ids = [tok.cls_token_id] + q + [tok.sep_token_id] + p + [tok.sep_token_id]
    types = [0] * (len(q) + 2) + [1] * (len(p) + 1)
    assert reranker.tokenize([query], [passage]) == [(ids, types)]
    model = AutoModelForSequenceClassification.from_pretrained(d).eval()
    with torch.no_grad():
        ref = model(input_ids=torch.tensor([ids]), token_type_ids=torch.tensor([types])).logits[0, 0].item()
    assert abs(reranker.score(query, [passage])[0] - ref) <= 1e-4


def test_rankllama_equals_its_model_card_without_trailing_eos(rankllama, tiny_model, tmp_path):
    reranker = load_reranker(str(rankllama))
    assert reranker.family == "rankllama" and reranker.decoder
    passages = _texts(8, seed=5, lengths=(1, 3, 10, 40, 120))  # within 512 tokens: the card does not truncate
    titles = ["Llama" if i % 2 else None for i in range(8)]
    queries = [QUERIES[i % len(QUERIES)] for i in range(8)]
    ref, ref_ids = zip(*(rankllama_model_card(rankllama, q, t or "", p) for q, t, p in zip(queries, titles, passages)))
    ours = reranker.score_pairs(queries, passages, titles)
    assert np.ptp(ours) > 0.1 and np.abs(ours - np.array(ref)).max() <= 1e-4
    ids = [x for x, _ in reranker.tokenize(queries, passages, titles)]
    assert ids == list(ref_ids)
    eos, bos = reranker.tokenizer.eos_token_id, reranker.tokenizer.bos_token_id
    assert all(x[-1] != eos for x in ids)  # no trailing </s>: the score is read at the document's last token
    if ids[0][0] == bos:  # the LLaMA-2 tokenizer (../shared): <s> query <s> document
        assert all(x[0] == bos and x.count(bos) == 2 for x in ids)
    # the merged checkpoint (LlamaForSequenceClassification) is recognised and scores the same
    merged = load_reranker(str(make_tiny_rankllama(tmp_path / "merged", tiny_model, merged=True)))
    assert merged.family == "rankllama"
    assert np.abs(merged.score_pairs(queries, passages, titles) - np.array(ref)).max() <= 1e-4


def test_not_a_reranker_and_nan_are_one_clear_line(tiny_model, cross_encoders, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    with pytest.raises(NotARerankerError, match="is not a reranker: its checkpoint is LlamaForCausalLM"):
        load_reranker(str(tiny_model))
    nli = make_tiny_cross_encoder(tmp_path / "nli", num_labels=3)
    with pytest.raises(NotARerankerError, match="classification head has 3 labels"):
        load_reranker(str(nli))
    lm_adapter = tmp_path / "lm-adapter"
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                   LoraConfig(task_type="CAUSAL_LM", r=2, target_modules=["q_proj"])).save_pretrained(lm_adapter)
    with pytest.raises(NotARerankerError, match="peft adapter for CAUSAL_LM, not a reranker"):
        load_reranker(str(lm_adapter))
    model = AutoModelForSequenceClassification.from_pretrained(cross_encoders["bert"])
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "nan")
    (tmp_path / "nan" / "tokenizer.json").write_bytes((cross_encoders["bert"] / "tokenizer.json").read_bytes())
    (tmp_path / "nan" / "tokenizer_config.json").write_bytes(
        (cross_encoders["bert"] / "tokenizer_config.json").read_bytes())
    with pytest.raises(RerankerOutputError, match="produced NaN/inf scores"):
        load_reranker(str(tmp_path / "nan")).score("q", ["a passage"])


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def index(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("rr")
    docs = root / "docs"
    docs.mkdir()
    for i in range(14):
        (docs / f"page{i}.md").write_text(f"# Page {i}\n\n{_texts(1, seed=100 + i, lengths=(20, 60))[0]}\n")
    idx = root / "idx"
    r = runner.invoke(app, ["ingest", str(docs), "--index", str(idx), "--model", str(tiny_model), "--json"])
    assert r.exit_code == 0, r.output
    return idx


def test_cli_query_rerank_json(index, cross_encoders):
    model = str(cross_encoders["xlm-roberta"])
    r = runner.invoke(app, ["query", "llama packing", "--index", str(index), "-k", "4", "--rerank", model,
                            "--rerank-depth", "9", "--mode", "hybrid", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["rerank"]["applied"] and out["rerank"]["candidates"] == 9 and out["rerank"]["scored"] == 9
    res = out["results"]
    assert [x["rank"] for x in res] == [1, 2, 3, 4]
    assert {"first_stage_rank", "first_stage_score"} <= set(res[0])
    first = Engine.open(index).search("llama packing", k=9, mode="hybrid")
    assert {x["chunk_id"] for x in res} <= {h.chunk_id for h in first}
    # the scores are the bge recipe's scores of those passages, and they rank the results
    ref = flag_reranker_reference(model, [["llama packing", f"{h.heading} {h.text}" if h.heading else h.text]
                                          for h in first])
    by_id = {h.chunk_id: (i, s) for i, (h, s) in enumerate(zip(first, ref))}
    assert [x["chunk_id"] for x in res] == [first[i].chunk_id for i in np.argsort(-ref, kind="stable")[:4]]
    for x in res:
        i, s = by_id[x["chunk_id"]]
        assert abs(x["score"] - s) <= 1e-4 and x["first_stage_rank"] == i + 1
        assert x["first_stage_score"] == first[i].score
    r = runner.invoke(app, ["query", "llama packing", "--index", str(index), "-k", "3", "--rerank", model])
    assert r.exit_code == 0 and "first stage #" in r.stdout and "re-ranked by" in r.stdout


def test_cli_rerank_errors_are_one_line(index, tiny_model, cross_encoders, tmp_path):
    model = str(cross_encoders["bert"])
    cases = [
        (["-k", "5", "--rerank", model, "--rerank-depth", "3"], "--rerank-depth (3) is below k (5)"),
        (["--rerank-depth", "30"], "--rerank-depth needs --rerank MODEL"),
        (["--rerank", str(tiny_model)], "is not a reranker"),
        (["--rerank", str(index / "nothing-here")], "cannot load reranker"),
    ]
    for args, msg in cases:
        r = runner.invoke(app, ["query", "x", "--index", str(index), *args])
        assert r.exit_code != 0 and msg in r.stderr and r.stderr.strip().count("\n") == 0, (args, r.stderr)
    # serve, mcp and eval refuse a bad reranker before they bind a port or ingest anything
    for args, msg in ((["serve", "--rerank", str(tiny_model)], "is not a reranker"),
                      (["serve", "--rerank-budget-ms", "10"], "--rerank-budget-ms needs --rerank MODEL"),
                      (["serve", "--rerank", model, "--rerank-depth", "50", "--rerank-max-depth", "20"],
                       "--rerank-max-depth (20) is below --rerank-depth (50)"),
                      (["mcp", "--rerank", str(tiny_model)], "is not a reranker")):
        r = runner.invoke(app, [*args, "--index", str(index)])
        assert r.exit_code != 0 and msg in r.stderr and r.stderr.strip().count("\n") == 0, (args, r.stderr)
    from test_eval import write_beir

    beir = write_beir(tmp_path / "beir")
    r = runner.invoke(app, ["eval", str(beir), "--index", str(tmp_path / "ev"), "--model", str(tiny_model),
                            "--rerank", str(tiny_model)])
    assert r.exit_code == 1 and "is not a reranker" in r.stderr and r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "ev" / "vectors").exists() or not any((tmp_path / "ev" / "vectors").iterdir())
    engine = Engine.open(index)
    with pytest.raises(EngineError, match="below k"):
        engine.search("x", k=10, rerank=model, rerank_depth=5)
    hits = engine.search("x", k=3, rerank=model)  # the engine API: a model name, loaded once and kept
    assert len(hits) == 3 and hits[0].first_stage_rank is not None
    assert engine.reranker(model) is engine.reranker(model)


def test_serve_reranks_per_request_and_never_loses_the_first_stage(index, cross_encoders, tmp_path):
    from llara_search.serve import create_app

    engine = Engine.open(index)
    reranker = engine.reranker(str(cross_encoders["bert"]))
    app_ = create_app(engine, rerank=RerankPolicy(reranker, depth=8, max_depth=12))
    base, srv = serve_in_thread(app_)
    try:
        info = httpx.get(base + "/info").json()["rerank"]
        assert info["family"] == "cross-encoder" and info["depth"] == 8 and info["max_depth"] == 12
        r = httpx.post(base + "/search", json={"query": "llama packing", "k": 3}).json()
        assert r["rerank"]["applied"] and r["rerank"]["candidates"] == 8
        assert [x["rank"] for x in r["results"]] == [1, 2, 3] and "first_stage_rank" in r["results"][0]
        local = engine.search("llama packing", k=3, rerank=reranker, rerank_depth=8)
        assert [x["chunk_id"] for x in r["results"]] == [h.chunk_id for h in local]
        # the typed client and the LangChain retriever pass re-ranking through, over HTTP and in-process
        from llara_search.client import Client
        from llara_search.langchain import LlaraSearchRetriever

        with Client(base) as client:
            hits = client.search("llama packing", k=3, rerank=True)
        assert [h.chunk_id for h in hits] == [h.chunk_id for h in local]
        assert [h.first_stage_rank for h in hits] == [h.first_stage_rank for h in local]
        for retriever in (LlaraSearchRetriever(url=base, k=3, search_kwargs={"rerank": True}),
                          LlaraSearchRetriever(engine=engine, k=3,
                                               search_kwargs={"rerank": reranker, "rerank_depth": 8})):
            docs = retriever.invoke("llama packing")
            assert [d.metadata["chunk_id"] for d in docs] == [h.chunk_id for h in local]
            assert [d.metadata["first_stage_rank"] for d in docs] == [h.first_stage_rank for h in local]
        plain = httpx.get(base + "/search", params={"q": "llama packing", "k": 3, "rerank": "false"}).json()
        assert "rerank" not in plain and set(plain["results"][0]) == set(r["results"][0]) - {
            "first_stage_rank", "first_stage_score"}
        b = httpx.post(base + "/batch_search", json={"queries": ["llama", "port"], "k": 2, "rerank_depth": 5}).json()
        assert [o["candidates"] for o in b["rerank"]] == [5, 5] and [len(x) for x in b["results"]] == [2, 2]
        for body, msg in (({"k": 9, "rerank_depth": 4}, "below k"), ({"k": 3, "rerank_depth": 20}, "limit of 12")):
            bad = httpx.post(base + "/search", json={"query": "q", **body})
            assert bad.status_code == 422 and msg in bad.json()["detail"]
        # a spent time budget, then a reranker producing NaN: first-stage order, said so, never an error
        first = [h.chunk_id for h in engine.search("llama packing", k=3)]
        app_.state.rerank = RerankPolicy(reranker, depth=8, budget_ms=1e-6)
        r = httpx.post(base + "/search", json={"query": "llama packing", "k": 3}).json()
        assert not r["rerank"]["applied"] and "time budget" in r["rerank"]["reason"]
        assert [x["chunk_id"] for x in r["results"]] == first and "first_stage_rank" not in r["results"][0]
        nan = load_reranker(str(cross_encoders["bert"]))
        with torch.no_grad():
            nan.model.classifier.bias.fill_(float("nan"))
        app_.state.rerank = RerankPolicy(nan, depth=8, by_default=False)
        assert "rerank" not in httpx.post(base + "/search", json={"query": "llama", "k": 3}).json()
        r = httpx.post(base + "/search", json={"query": "llama packing", "k": 3, "rerank": True})
        assert r.status_code == 200 and "NaN" in r.json()["rerank"]["reason"]
        assert [x["chunk_id"] for x in r.json()["results"]] == first
        app_.state.rerank = None
        r = httpx.post(base + "/search", json={"query": "llama", "rerank": True})
        assert r.status_code == 400 and "serve --rerank MODEL" in r.json()["detail"]
    finally:
        srv.should_exit = True


def test_mcp_search_reranks(index, cross_encoders):
    pytest.importorskip("mcp")
    import anyio
    from mcp import Client

    from llara_search.serve.mcp import create_mcp_server

    engine = Engine.open(index)
    server = create_mcp_server(engine, RerankPolicy(engine.reranker(str(cross_encoders["bert"])), depth=6))

    async def calls():
        async with Client(server) as client:
            a = await client.call_tool("search", {"query": "llama packing", "k": 3, "mode": "dense"})
            b = await client.call_tool("search", {"query": "llama packing", "k": 3, "mode": "dense", "rerank": False})
            return a.structured_content["result"], b.structured_content["result"]

    reranked, plain = anyio.run(calls)
    local = engine.search("llama packing", k=3, mode="dense", rerank=engine.reranker(str(cross_encoders["bert"])),
                          rerank_depth=6)
    assert [x["chunk_id"] for x in reranked] == [h.chunk_id for h in local]
    assert all(x["first_stage_rank"] is not None for x in reranked)
    assert all(x["first_stage_rank"] is None for x in plain)


def test_eval_reports_first_stage_and_reranked_side_by_side(tmp_path, tiny_model, cross_encoders):
    import pytrec_eval

    from llara_search.eval import read_trec
    from test_eval import QRELS, write_beir

    beir = write_beir(tmp_path / "beir")
    r = runner.invoke(app, ["eval", str(beir), "--index", str(tmp_path / "idx"), "--model", str(tiny_model),
                            "--rerank", str(cross_encoders["bert"]), "--rerank-depth", "6", "-k", "8", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    rr = out["rerank"]
    assert rr["depth"] == 6 and rr["family"] == "cross-encoder"
    for m in ("ndcg@10", "recall@100", "mrr@10", "map@100"):
        assert 0.0 <= rr[m] <= 1.0 and rr["delta"][m] == pytest.approx(rr[m] - out[m], abs=2e-4)
    run = read_trec(rr["run_file"])
    ev = pytrec_eval.RelevanceEvaluator(QRELS, {"ndcg_cut.10"}).evaluate(run)
    assert rr["ndcg@10"] == pytest.approx(sum(v["ndcg_cut_10"] for v in ev.values()) / len(QRELS), abs=1e-4)
    first = read_trec(out["run_file"])
    assert set(run) == set(first) and all(set(run[q]) == set(first[q]) for q in run)  # same documents, new order
    r = runner.invoke(app, ["eval", str(beir), "--index", str(tmp_path / "idx"), "--rerank",
                            str(cross_encoders["bert"]), "--rerank-depth", "6", "-k", "8"])
    assert r.exit_code == 0 and "first stage (dense)" in r.stdout and "re-ranked top 6" in r.stdout


def test_commands_that_do_not_rerank_import_no_more_than_before():
    code = ("import sys; import llara_search.cli, llara_search.engine, llara_search.rerank, llara_search.serve.app, "
            "llara_search.serve.mcp, llara_search.eval; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'llara_search.rerank.model') "
            "if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr


def test_the_requests_deadline_cuts_the_reranker_and_keeps_the_first_stage(index, cross_encoders):
    """The reranker busy with another request past this one's deadline (`--request-timeout`): the answer is the first
    stage's order, in time, saying that the request's deadline is what cut it; once free, re-ranking resumes."""
    from llara_search.serve import create_app

    engine = Engine.open(index)
    reranker = engine.reranker(str(cross_encoders["bert"]))
    app_ = create_app(engine, rerank=RerankPolicy(reranker, depth=8, budget_ms=None), request_timeout=1.0)
    base, srv = serve_in_thread(app_)
    try:
        first = [h.chunk_id for h in engine.search("llama packing", k=3)]
        with reranker._lock:  # another request's scoring holds the reranker
            t = time.perf_counter()
            r = httpx.post(base + "/search", json={"query": "llama packing", "k": 3}, timeout=30)
            took = time.perf_counter() - t
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body["rerank"]["applied"] and "--request-timeout" in body["rerank"]["reason"], body["rerank"]
        assert [x["chunk_id"] for x in body["results"]] == first
        assert took < 5, took
        r = httpx.post(base + "/search", json={"query": "llama packing", "k": 3}, timeout=30).json()
        assert r["rerank"]["applied"]
    finally:
        srv.should_exit = True


def test_a_request_made_big_by_its_default_rerank_depth_does_not_wait_for_itself(index, cross_encoders):
    """Four queries at k=3 ask for 12 results, a small request; re-ranked at the server's default depth of 100 they
    read 400, a big one, and run in the big lane, whose checkpoints pause while small requests are in the server.
    The request must be counted as what it runs as, or it pauses for itself (0.5 s at each checkpoint)."""
    from llara_search.serve import create_app
    from llara_search.serve.lanes import BIG_MAX_WAIT_S

    engine = Engine.open(index)
    reranker = engine.reranker(str(cross_encoders["bert"]))
    base, srv = serve_in_thread(create_app(engine, rerank=RerankPolicy(reranker, depth=100, max_depth=100)))
    try:
        body = {"queries": ["llama packing", "alpaca wool", "proxy port", "vector index"], "k": 3, "mode": "bm25"}
        httpx.post(base + "/batch_search", json=body, timeout=60)  # warm
        t = time.perf_counter()
        r = httpx.post(base + "/batch_search", json=body, timeout=60)
        took = time.perf_counter() - t
        assert r.status_code == 200, r.text
        assert [o["applied"] for o in r.json()["rerank"]] == [True] * 4
        assert took < 3 * BIG_MAX_WAIT_S, took
    finally:
        srv.should_exit = True
