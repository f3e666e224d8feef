"""A retrain judged on held-out documents of the user's own corpus: the split, the verdict, the --force guard,
--keep-best. Through the CLI, on a tiny model trained a few steps on a generated folder."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from llara_search.cli import app
from llara_search.train import verdict as verdicts
from llara_search.train.heldout import CorpusDocument, build_check, split_documents

runner = CliRunner()
WORDS = ("balancer cache kernel tensor socket proxy gradient shard replica backend frontend timeout header cookie "
         "compiler vector matrix device thread queue buffer stream parser token index query server client").split()


def _folder(root: Path, n_docs: int = 30) -> Path:
    """Markdown files, three sections each, every heading unique, sections long enough to be judged answers."""
    rng = random.Random(7)
    root.mkdir(parents=True)
    for d in range(n_docs):
        parts = [f"# Guide {d}"]
        for s in range(3):
            topic = rng.sample(WORDS, 2)
            parts.append(f"## {topic[0].title()} {topic[1]} notes {d}-{s}")
            body = " ".join(rng.choice(WORDS) for _ in range(60))
            parts.append(f"The {topic[0]} and the {topic[1]} of guide {d} part {s}: {body}.")
        (root / f"guide{d:02d}.md").write_text("\n\n".join(parts) + "\n")
    return root


def _run(*args: str, code: int = 0):
    r = runner.invoke(app, [*map(str, args), "--json"])
    assert r.exit_code == code, r.output
    return r


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("retrain")
    docs = _folder(root / "docs")
    out = root / "adapter"
    r = _run("train", "--corpus", docs, "--base", tiny_model, "--output", out, "--max-steps", "4", "--batch-size",
             "2", "--lora-r", "4", "--save-every", "2", "--lr", "1e-3", "--heldout-share", "0.2", "--keep-best")
    return docs, out, json.loads(r.stdout)


def test_train_ends_with_a_verdict_on_held_out_documents(trained, tiny_model):
    from llara_search.encoder import load_tokenizer
    from llara_search.train.heldout import documents_from_corpus

    docs, out, card = trained
    v = card["verdict"]
    corpus = documents_from_corpus([docs], load_tokenizer(str(tiny_model)))
    train_docs, held = split_documents(corpus, 0.2, 42)
    assert card["heldout"]["heldout_documents"] == len(held) and card["heldout"]["pairs"] == v["queries"] >= 10
    assert v["verdict"] in (verdicts.BETTER, verdicts.SAME, verdicts.WORSE)
    lo, hi = v["ci95"]
    assert v["verdict"] == (verdicts.BETTER if lo > 0 else verdicts.WORSE if hi < 0 else verdicts.SAME)
    for mode in ("dense", "hybrid"):
        for metric in ("ndcg@10", "recall@100"):
            row = v["comparison"][mode][metric]
            assert 0 <= row["current"] <= 1 and 0 <= row["new"] <= 1 and len(row["ci95"]) == 2
    assert json.loads((out / verdicts.VERDICT_FILE).read_text())["verdict"] == v["verdict"]
    # the held-out documents never reached training: the examples are the other documents' chunks exactly
    assert {d.key for d in held}.isdisjoint(d.key for d in train_docs) and len(train_docs) + len(held) == 30
    assert card["data"]["examples"] == sum(len(d.chunks) for d in train_docs)
    # and the human summary says the verdict in one line with its interval
    r = runner.invoke(app, ["train", "--corpus", str(docs), "--base", str(tiny_model), "--output",
                            str(out.parent / "again"), "--max-steps", "1", "--batch-size", "2", "--lora-r", "4",
                            "--save-every", "0", "--heldout-share", "0.2"])
    assert r.exit_code == 0, r.output
    assert f"held-out check: {len(held)} of 30 documents" in r.output and "verdict: " in r.output and "[" in r.output
    assert "the check encodes" in r.output


def test_checkpoints_are_scored_and_keep_best_keeps_the_best(trained, tiny_model):
    from llara_search.encoder import LlaraEncoder
    from llara_search.encoder import load_tokenizer
    from llara_search.train.checked import CHECKPOINT_QUERIES
    from llara_search.train.heldout import documents_from_corpus

    docs, out, card = trained
    scores = card["checkpoint_scores"]
    assert [s["step"] for s in scores] == [2, 4] and [s["final"] for s in scores] == [False, True]
    best = max(scores, key=lambda s: (s["ndcg@10"], -s["step"]))
    assert card["kept_best"] == (None if best["final"] else best)
    assert not (out / "best").exists()
    # the adapter left in the output scores what the kept checkpoint scored
    corpus = documents_from_corpus([docs], load_tokenizer(str(tiny_model)))
    _, check = build_check(corpus, share=0.2, seed=42)
    enc = LlaraEncoder.from_pretrained(str(tiny_model), adapter=str(out), show_progress=False)
    got = verdicts.score_model(lambda t, k: enc.encode(list(t), k), check.subset(CHECKPOINT_QUERIES))
    assert got["dense"]["ndcg@10"].mean() == pytest.approx(best["ndcg@10"], abs=2e-3)


def test_a_model_judged_worse_needs_force_to_replace_the_current_one(trained, tiny_model, tmp_path):
    docs, out, _ = trained
    index = tmp_path / "idx"
    _run("ingest", docs, "--index", index, "--model", tiny_model, "--chunk-tokens", "64")
    before = json.loads(_run("status", "--index", index).stdout)
    worse = {m: {"ndcg@10": np.full(12, 0.2), "recall@100": np.full(12, 0.5)} for m in ("dense", "hybrid")}
    better = {m: {"ndcg@10": np.full(12, 0.6), "recall@100": np.full(12, 0.9)} for m in ("dense", "hybrid")}
    verdicts.save(out, verdicts.decide(better, worse))  # the new model lost on every held-out pair
    r = runner.invoke(app, ["reencode", "--index", str(index), "--adapter", str(out)])
    assert r.exit_code == 1 and "judged worse" in r.output and "--force" in r.output
    r = runner.invoke(app, ["ingest", str(docs), "--index", str(index), "--adapter", str(out)])
    assert r.exit_code == 1 and "judged worse" in r.output
    assert json.loads(_run("status", "--index", index).stdout)["fingerprint"] == before["fingerprint"]
    _run("reencode", "--index", index, "--adapter", out, "--force")
    after = json.loads(_run("status", "--index", index).stdout)
    assert after["fingerprint"] != before["fingerprint"] and after["verdict"]["verdict"] == verdicts.WORSE
    _run("ingest", docs, "--index", index, "--adapter", out)  # already the index's adapter: nothing to switch


def test_too_few_pairs_trains_on_everything_without_a_verdict(tmp_path, tiny_model):
    docs = _folder(tmp_path / "docs", n_docs=6)
    r = _run("train", "--corpus", docs, "--base", tiny_model, "--output", tmp_path / "o", "--max-steps", "1",
             "--batch-size", "2", "--lora-r", "4", "--save-every", "0")
    from llara_search.encoder import load_tokenizer
    from llara_search.train.heldout import documents_from_corpus

    card = json.loads(r.stdout)
    assert card["verdict"]["verdict"] == verdicts.UNJUDGED and card["heldout"]["heldout_documents"] == 0
    every = documents_from_corpus([docs], load_tokenizer(str(tiny_model)))
    assert card["data"]["examples"] == sum(len(d.chunks) for d in every)  # no document held out


def test_decide_reads_the_interval():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 200)
    cur = {"dense": {"ndcg@10": base, "recall@100": base}}
    up = {"dense": {"ndcg@10": base + 0.1, "recall@100": base}}
    noise = {"dense": {"ndcg@10": base + rng.normal(0, 0.05, 200), "recall@100": base}}
    assert verdicts.decide(cur, up)["verdict"] == verdicts.BETTER
    assert verdicts.decide(up, cur)["verdict"] == verdicts.WORSE
    assert verdicts.decide(cur, noise)["verdict"] == verdicts.SAME


def test_split_is_reproducible_and_stable_as_the_corpus_grows():
    docs = [CorpusDocument(f"doc{i}", [("H", "text")]) for i in range(50)]
    _, a = split_documents(docs, 0.1, seed=3)
    _, b = split_documents(docs, 0.1, seed=3)
    _, c = split_documents(docs, 0.1, seed=4)
    assert [d.key for d in a] == [d.key for d in b] != [d.key for d in c]
    _, grown = split_documents(docs + [CorpusDocument(f"new{i}", [("H", "t")]) for i in range(500)], 0.1, seed=3)
    assert {d.key for d in a} <= {d.key for d in grown}  # held out once, held out for good
    assert 0.05 < len(grown) / 550 < 0.15
    # the folder moved or copied elsewhere: the same files held out (keys are hashed relative to their folder)
    here = [CorpusDocument(f"/srv/docs/g{i}.md", [("H", "t")]) for i in range(60)]
    there = [CorpusDocument(f"/home/u/copy/docs/g{i}.md", [("H", "t")]) for i in range(60)]
    names = [sorted(d.key.rsplit("/", 1)[1] for d in split_documents(x, 0.2, seed=1)[1]) for x in (here, there)]
    assert names[0] == names[1] and names[0]


def test_user_queries_join_the_check_and_their_answers_leave_training(tmp_path):
    docs = [CorpusDocument(f"d{i}", [(f"Topic {i}", f"unique section {i} " + "word " * 60)]) for i in range(80)]
    secret = "a passage the user judged relevant " * 3
    docs.append(CorpusDocument("judged", [("Intro", secret)]))
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"query": "what did the user judge", "pos": [secret]}) + "\n")
    train_docs, check = build_check(docs, share=0.25, seed=0, queries_file=q)
    assert "judged" not in {d.key for d in train_docs}
    assert check.report["moved_for_your_queries"] == (0 if "judged" in check.heldout_keys else 1)
    assert check.queries[-1] == "what did the user judge" and check.units[next(iter(check.relevant[-1]))] == secret
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "q"}\n')
    from llara_search.train.data import TrainDataError

    with pytest.raises(TrainDataError, match="bad.jsonl:1"):
        build_check(docs, queries_file=bad)


def test_finetune_holds_out_labelled_queries_and_judges_them(tmp_path, tiny_model):
    rng = random.Random(3)
    passages = [f"passage {i}: " + " ".join(rng.choice(WORDS) for _ in range(30)) for i in range(120)]
    rows = [{"query": f"question {i} about {passages[i].split()[2]}", "pos": [passages[i]],
             "neg": [passages[(i + 1) % 120], passages[(i + 7) % 120]]} for i in range(120)]
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    r = _run("finetune", "--train", data, "--output", tmp_path / "ft", "--base", tiny_model, "--max-steps", "2",
             "--batch-size", "4", "--group-size", "3", "--lora-r", "4", "--save-every", "0")
    card = json.loads(r.stdout)
    assert card["heldout"]["heldout_documents"] == 12 and card["data"]["examples"] == 108
    assert card["verdict"]["queries"] == 12 and card["verdict"]["verdict"] in (
        verdicts.BETTER, verdicts.SAME, verdicts.WORSE)
