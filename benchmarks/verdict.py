"""Does the retrain verdict agree with real judgments? The corpus-built check next to the dataset's own queries.

`train` judges a new model on pairs it builds from held-out documents of the corpus (heading → section, title →
abstract). This benchmark asks whether that check tells the truth: on each dataset it builds a small Llama
(random init, as benchmarks/adapt.py), trains it with `train --full` (the product's command, the check included),
and puts the verdict's gain (new − current, dense nDCG@10, held-out pairs) next to the gain on the dataset's own
judged queries (`eval` of both models, paired bootstrap over the queries), in one run:

  SciFact (a subsample; title → abstract pairs from the index)   vs its 300 expert-judged test claims
  JAX and HAProxy docs folders (heading → section pairs)          vs every heading that names one section
                                                                     (benchmarks/adapt.py's docs_folder_to_beir)

    python -m benchmarks.verdict                                  # all three, the default budget
    python -m benchmarks.verdict --datasets scifact --steps 400   # a quick look
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from llara_search.eval.stats import paired_bootstrap

from .adapt import BOW_WEIGHT, PRETEXT_LR, SCIFACT, TOKENIZER, Runner, docs_folder_to_beir, per_query, \
    subsample_beir
from .common import SHARED, WORK, machine, record

FOLDERS = {"jax": SHARED / "data" / "docs-jax" / "docs", "haproxy": SHARED / "data" / "docs-haproxy" / "doc"}


def run_dataset(name: str, args, work: Path, run: Runner) -> dict:
    from llara_search.eval import load_beir
    from llara_search.testing import make_tiny_llara

    if name == "scifact":
        beir = subsample_beir(SCIFACT, work / "beir", args.docs)
        train_from = None
    else:
        beir = docs_folder_to_beir(FOLDERS[name], work / "beir")
        train_from = FOLDERS[name]
    qrels = load_beir(beir, "test").qrels
    model_a = make_tiny_llara(work / "models" / "a", tokenizer_dir=TOKENIZER, hidden_size=args.hidden,
                              num_layers=args.layers, num_heads=max(1, args.hidden // 32), seed=0)
    idx_a = work / "indexes" / "a"
    ev_a = run("eval", beir, "--split", "test", "--index", idx_a, "--model", model_a, "--run-file",
               work / "runs" / "a.trec")
    out = work / "models" / "c"
    source = ["--corpus", train_from, "--base", model_a] if train_from else ["--index", idx_a]
    card = run("train", *source, "--output", out, "--full", "--max-steps", args.steps, "--batch-size", 4,
               "--lr", PRETEXT_LR, "--bow-weight", BOW_WEIGHT, "--ebar-target", "following", "--save-every", 0,
               "--heldout-share", args.share, "--seed", args.seed)
    ev_c = run("eval", beir, "--split", "test", "--index", work / "indexes" / "c", "--model", out, "--run-file",
               work / "runs" / "c.trec")
    a, c = per_query(qrels, work / "runs" / "a.trec"), per_query(qrels, work / "runs" / "c.trec")
    judged = {m: paired_bootstrap(c[m], a[m]) for m in ("ndcg@10", "recall@100")}
    v = card["verdict"]
    row = {"queries": len(qrels), "documents": ev_a.get("documents"), "steps": card["steps"],
           "train_seconds": card["seconds"], "heldout": card["heldout"], "verdict": v["verdict"],
           "verdict_queries": v.get("queries"), "verdict_diff": v.get("diff"), "verdict_ci95": v.get("ci95"),
           "verdict_recall100": (v.get("comparison") or {}).get("dense", {}).get("recall@100"),
           "judged_ndcg10": {"a": ev_a["ndcg@10"], "c": ev_c["ndcg@10"], **judged["ndcg@10"]},
           "judged_recall100": {"a": ev_a["recall@100"], "c": ev_c["recall@100"], **judged["recall@100"]}}
    jd = judged["ndcg@10"]
    row["same_sign"] = (v.get("diff") is not None and (v["diff"] > 0) == (jd["diff"] > 0))
    row["judged_verdict"] = "better" if jd["ci95"][0] > 0 else "worse" if jd["ci95"][1] < 0 else \
        "no measurable change"
    print(f"  {name}: verdict {v['verdict']} {v.get('diff')} {v.get('ci95')} on {v.get('queries')} held-out pairs; "
          f"judged queries {jd['diff']:+.4f} {jd['ci95']} ({row['judged_verdict']})", flush=True)
    return row


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.verdict", description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="scifact,jax,haproxy")
    ap.add_argument("--steps", type=int, default=1500, help="pretext steps of 4 passages [1500]")
    ap.add_argument("--docs", type=int, default=1000, help="SciFact subsample (documents) [1000]")
    ap.add_argument("--share", type=float, default=0.1, help="held-out share [0.1, the product's default]")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    command = "python -m benchmarks.verdict" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    if not (TOKENIZER / "tokenizer.model").is_file() and not (TOKENIZER / "tokenizer.json").is_file():
        raise SystemExit(f"needs the LLaMA-2 tokenizer at {TOKENIZER}")
    t0 = time.perf_counter()
    rows: dict = {}
    result: dict = {"rows": rows}
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        if name != "scifact" and not FOLDERS[name].is_dir() or name == "scifact" and not SCIFACT.is_dir():
            print(f"  {name}: data not present; skipped", flush=True)
            continue
        work = (WORK / "verdict" / name).resolve()
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        rows[name] = run_dataset(name, args, work, Runner(work, quiet=True))
        result = {"rows": rows, "steps": args.steps, "share": args.share, "model": f"{args.hidden} × {args.layers}",
                  "seconds": round(time.perf_counter() - t0, 1), "command": command, "machine": machine()}
        if not args.no_record:  # after each dataset: a long run stopped midway keeps what it measured
            record("verdict_agreement", result)
    print(table(result))
    return result


def table(r: dict) -> str:
    lines = ["| dataset | held-out pairs | verdict: Δ dense nDCG@10 [95%] | judged queries | judged: Δ nDCG@10 [95%] "
             "| same sign |", "|---|---|---|---|---|---|"]
    for name, row in r["rows"].items():
        ci = row["verdict_ci95"] or [None, None]
        j = row["judged_ndcg10"]
        lines.append(f"| {name} | {row['verdict_queries']} | {row['verdict']}: {row['verdict_diff']:+.4f} "
                     f"[{ci[0]:+.4f}, {ci[1]:+.4f}] | {row['queries']} | {row['judged_verdict']}: {j['diff']:+.4f} "
                     f"[{j['ci95'][0]:+.4f}, {j['ci95'][1]:+.4f}] ({j['a']:.3f} → {j['c']:.3f}) | "
                     f"{'yes' if row['same_sign'] else 'no'} |" if row["verdict_diff"] is not None else
                     f"| {name} | {row['verdict_queries']} | {row['verdict']} | {row['queries']} | "
                     f"{row['judged_verdict']}: {j['diff']:+.4f} | — |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
