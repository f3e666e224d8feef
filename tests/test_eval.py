"""`llara-search eval` on a small BEIR-format dataset written here: metrics agree with pytrec_eval on the run file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import pytrec_eval
from typer.testing import CliRunner

from llara_search.cli import app
from llara_search.eval import read_trec

runner = CliRunner()

TOPICS = {
    "d1": ("Volcanoes", "Basaltic lava flows from shield volcanoes cool into columnar basalt."),
    "d2": ("Coral reefs", "Coral bleaching follows marine heatwaves that expel symbiotic algae."),
    "d3": ("Bees", "Honeybee colonies communicate forage locations with the waggle dance."),
    "d4": ("Glaciers", "Glacier retreat exposes moraines and feeds proglacial meltwater lakes."),
    "d5": ("Tides", "Spring tides occur when the sun and moon align, neap tides at quadrature."),
    "d6": ("Mushrooms", "Mycorrhizal fungi trade soil phosphorus for plant sugars through hyphae."),
    "d7": ("Comets", "Comet tails point away from the sun, pushed by solar wind and radiation."),
    "d8": ("Owls", "Owls hunt silently at night, their serrated feathers muffling the wingbeat."),
    "q9": ("", "Which dance do honeybees use to share forage locations?"),  # a document equal to query q9
}
QUERIES = {
    "q1": "columnar basalt from lava flows",
    "q2": "why does coral bleaching happen after heatwaves",
    "q3": "glacier retreat moraines meltwater",
    "q4": "silent owl feathers",
    "q9": "Which dance do honeybees use to share forage locations?",
    "q10": "a judged query whose text is missing",
}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d4": 1}, "q4": {"d8": 1}, "q9": {"d3": 1}, "q10": {"d5": 1}}


def write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as f:
        for doc_id, (title, text) in TOPICS.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
        # a long document, chunked into several passages and collapsed back to one id (MaxP)
        long_text = " ".join(f"Filler sentence {i} about unrelated municipal zoning rules." for i in range(200))
        f.write(json.dumps({"_id": "d-long", "title": "Zoning", "text": long_text + " Tidal bores surge upriver."})
                + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for qid, text in QUERIES.items():
            if qid != "q10":
                f.write(json.dumps({"_id": qid, "text": text, "metadata": {}}) + "\n")
    with (root / "qrels" / "test.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, docs in QRELS.items():
            for d, s in docs.items():
                f.write(f"{qid}\t{d}\t{s}\n")
    return root


def pytrec_means(run_file: Path, n_judged: int) -> dict[str, float]:
    run = read_trec(run_file)
    ev = pytrec_eval.RelevanceEvaluator(QRELS, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    return {"ndcg@10": sum(v["ndcg_cut_10"] for v in ev.values()) / n_judged,
            "recall@100": sum(v["recall_100"] for v in ev.values()) / n_judged}


@pytest.fixture(scope="module")
def beir(tmp_path_factory) -> Path:
    return write_beir(tmp_path_factory.mktemp("beir") / "toyset")


def _eval(*args: str) -> dict:
    r = runner.invoke(app, ["eval", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_bm25_eval_text_only_matches_pytrec_eval_and_reuses_the_index(beir, tmp_path):
    index = tmp_path / "idx"
    out = _eval(str(beir), "--mode", "bm25", "--index", str(index))
    assert set(out) >= {"ndcg@10", "recall@100", "mrr@10", "map@100", "queries", "run_file"}
    assert out["queries"] == len(QRELS)  # the judged query without text counts, as 0
    ref = pytrec_means(Path(out["run_file"]), len(QRELS))
    assert abs(out["ndcg@10"] - ref["ndcg@10"]) <= 0.002 and abs(out["recall@100"] - ref["recall@100"]) <= 0.002
    # every query with text finds its document first; the missing one scores 0, so the mean is 5/6
    assert out["ndcg@10"] == pytest.approx(5 / 6, abs=1e-3) and out["mrr@10"] == pytest.approx(5 / 6, abs=1e-3)
    run = read_trec(out["run_file"])
    assert "q9" not in run.get("q9", {})  # a document whose id is the query's id is dropped (BEIR convention)
    assert "q10" not in run
    assert out["chunks"] > out["documents"] == len(TOPICS) + 1  # the long document was chunked ...
    assert sum(d == "d-long" for d in run.get("q1", {})) <= 1  # ... and collapsed back to one id
    again = _eval(str(beir), "--mode", "bm25", "--index", str(index))
    assert again["documents_ingested"] == 0 and again["ndcg@10"] == out["ndcg@10"]
    # a text-only index has no encoder: dense search is refused with one line
    r = runner.invoke(app, ["eval", str(beir), "--mode", "dense", "--index", str(index)])
    assert r.exit_code == 1 and "text-only" in r.output and "Traceback" not in r.output


def test_dense_and_hybrid_eval_with_a_model(beir, tmp_path, tiny_model):
    index = tmp_path / "dense"
    run_file = tmp_path / "runs" / "dense.trec"
    dense = _eval(str(beir), "--model", str(tiny_model), "--index", str(index), "--run-file", str(run_file), "-k", "5")
    assert dense["run_file"] == str(run_file) and run_file.is_file()
    assert dense["chunks_encoded"] == dense["chunks"] > 0
    lines = run_file.read_text().splitlines()
    assert all(len(line.split()) == 6 for line in lines)
    assert max(sum(1 for x in lines if x.startswith(q + " ")) for q in QRELS) <= 5
    ref = pytrec_means(run_file, len(QRELS))
    assert abs(dense["ndcg@10"] - ref["ndcg@10"]) <= 0.002
    hybrid = _eval(str(beir), "--mode", "hybrid", "--index", str(index))
    assert hybrid["chunks_encoded"] == 0  # reused: nothing re-encoded
    bm25 = _eval(str(beir), "--mode", "bm25", "--index", str(index))
    assert bm25["ndcg@10"] == pytest.approx(5 / 6, abs=1e-3)  # same BM25 over a model's index
    assert hybrid["recall@100"] >= min(dense["recall@100"], bm25["recall@100"])


def test_eval_bad_input_is_one_line(tmp_path, beir):
    r = runner.invoke(app, ["eval", str(tmp_path)])
    assert r.exit_code == 2 and "corpus.jsonl" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["eval", str(beir), "--split", "dev", "--mode", "bm25"])
    assert r.exit_code == 2 and "available splits: test" in r.output
    broken = write_beir(tmp_path / "broken")
    with (broken / "corpus.jsonl").open("a") as f:
        f.write("{not json\n")
    index = tmp_path / "broken-idx"
    r = runner.invoke(app, ["eval", str(broken), "--mode", "bm25", "--index", str(index)])
    assert r.exit_code == 1 and "corpus.jsonl:11" in r.output and "Traceback" not in r.output


def test_text_only_ingest_and_query(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# Ports\n\nThe listener binds port 8080 by default.\n")
    (docs / "b.md").write_text("# Logs\n\nRotate logs daily with logrotate.\n")
    index = tmp_path / "idx"
    r = runner.invoke(app, ["ingest", str(docs), "--index", str(index), "--model", "none", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["chunks_total"] == 2
    r = runner.invoke(app, ["query", "which port", "--index", str(index), "--mode", "bm25", "--json"])
    assert json.loads(r.stdout)["results"][0]["path"].endswith("a.md")
    r = runner.invoke(app, ["query", "which port", "--index", str(index), "--json"])  # no --mode: BM25 here
    assert r.exit_code == 0 and json.loads(r.stdout)["mode"] == "bm25"
    assert json.loads(r.stdout)["results"][0]["path"].endswith("a.md")
    r = runner.invoke(app, ["query", "which port", "--index", str(index), "--mode", "dense"])
    assert r.exit_code == 1 and "--mode bm25" in r.output
    s = json.loads(runner.invoke(app, ["status", "--index", str(index), "--json"]).stdout)
    assert s["model"] == "none" and s["index_type"] == "none" and s["chunks_total"] == 2
    r = runner.invoke(app, ["ingest", str(docs), "--index", str(index), "--index-type", "ivfpq"])
    assert r.exit_code == 1 and "text-only" in r.output
    assert json.loads(runner.invoke(app, ["status", "--index", str(index), "--json"]).stdout) == s
    from llara_search import Engine

    with Engine.open(index) as engine:
        assert engine.info["index_type"] == "none"  # the refused option was not recorded
