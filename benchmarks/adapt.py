"""Dense quality you can measure: a small Llama built here and trained by the product's own commands.

Every dense figure elsewhere comes from random weights (no real checkpoint can be downloaded here), so this
benchmark builds a small Llama around the real LLaMA-2 tokenizer, random init, and measures on one BEIR folder,
in one run, nDCG@10 and Recall@100 of

  (a) the random model                                  `eval BEIR --model A`
  (b) A trained with the causal-LM loss alone           `train --index IDX_A --full --loss causal` → B, `eval`
      (the paper's "plain LLM" baseline, same batches and steps as (c))
  (c) A after LLaRA's pretext task (EBAE + EBAR)        `train --index IDX_A --full` → C, `eval`
  (d) C fine-tuned on the train split, when there is    `finetune --train BEIR --base C --full` → D, `eval`
      one (hard negatives mined by BM25)
  BM25                                                  `eval --mode bm25`
  hybrid on the best dense model                        `eval --mode hybrid --index IDX_BEST`

Each step is a `llara-search ... --json` command run as a user would run it; nothing reaches into the product
from the side. Run-to-run noise: a paired bootstrap over queries of each difference (95% interval), and with
`--seeds 42,43` the whole training repeated per seed. Extra studies on the trained models (no new training):
the fusion of dense and BM25 (from the two run files), the chunk budget (`--chunk-tokens`), IVF-PQ forced
(`reindex --index-type ivfpq` then `bench`).

    python -m benchmarks.adapt                                   # SciFact (../shared/data/beir-scifact)
    python -m benchmarks.adapt --beir DIR                        # any BEIR folder, train split or not
    python -m benchmarks.adapt --docs-folder ../shared/data/docs-jax/docs   # section headings as queries
    python -m benchmarks.adapt --docs 600 --budget 40            # a quick look on a subsample

`--docs-folder` turns a documentation folder into a BEIR folder first: every section (parsed as `ingest` parses)
is a document without its heading, and a heading that names exactly one section is the query whose answer is
that section.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from llara_search.eval.stats import paired_bootstrap

from .common import ROOT, SHARED, WORK, machine, record

TOKENIZER = SHARED / "models" / "llama2-llara-tokenizer"
SCIFACT = SHARED / "data" / "beir-scifact"
CHUNK_SIZES = (128, 256, 384)
# The recipe adapt_notes.md measured on 2 CPU cores (each a choice among the runs tabled there): a 64 × 2 model
# takes ~0.3 s per step of 4 passages, so many updates fit in minutes; fewer, larger steps never left the unigram
# plateau of the bag-of-words losses.
HIDDEN, LAYERS = 64, 2
# Pretext steps of (b) and (c): PASSES over the corpus' chunks, at most MAX_BUDGET steps. 3000 steps of 4 (1.2 passes
# over SciFact's 10,414 chunks) moved relevant abstracts into the top 100 but not the top 10; the sf1000 recipe that
# reached the top 10 made ~4 passes. 12,000 steps took 71 min with (b) and (c) side by side on 2 cores.
PASSES, MAX_BUDGET = 5, 12_000
BATCH = 4
PRETEXT_LR = 2e-3  # 5e-3 collapsed (c) on 128 × 4; the product's --full default for this size is close to it
FINETUNE_LR = 1e-4
BOW_WEIGHT = 3.0  # the released 0.1 is for a pretrained 7B; from scratch on 64 × 2, 3.0 beat 1.0 (adapt_notes.md)


# ---------------------------------------------------------------------------------------------------- data
def subsample_beir(src: Path, dst: Path, n_docs: int, seed: int = 0, max_queries: int = 300) -> Path:
    """A smaller BEIR folder: judged documents of up to `max_queries` queries per split, then random others."""
    rng = random.Random(seed)
    qrels: dict[str, dict[str, dict[str, int]]] = {}
    for f in sorted((src / "qrels").glob("*.tsv")):
        rows: dict[str, dict[str, int]] = {}
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines()):
            parts = line.split("\t")
            if len(parts) < 3 or (n == 0 and not parts[-1].strip().lstrip("-").isdigit()):
                continue
            rows.setdefault(parts[0], {})[parts[1]] = int(parts[-1])
        qids = sorted(rows)
        rng.shuffle(qids)
        qrels[f.stem] = {q: rows[q] for q in qids[:max_queries]}
    corpus = [json.loads(line) for line in (src / "corpus.jsonl").open(encoding="utf-8") if line.strip()]
    ids = {str(d["_id"]) for d in corpus}
    keep: set[str] = set()
    for split in sorted(qrels, key=lambda s: s != "test"):  # the test split's documents first
        for q, docs in qrels[split].items():
            judged = {d for d, s in docs.items() if s > 0 and d in ids}
            if judged and len(keep | judged) <= n_docs:
                keep |= judged
    others = sorted(ids - keep)
    rng.shuffle(others)
    keep |= set(others[:max(0, n_docs - len(keep))])
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "qrels").mkdir(exist_ok=True)
    with (dst / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for d in corpus:
            if str(d["_id"]) in keep:
                f.write(json.dumps(d) + "\n")
    used: set[str] = set()
    for split, rows in qrels.items():
        kept = {q: {d: s for d, s in docs.items() if d in keep} for q, docs in rows.items()}
        kept = {q: docs for q, docs in kept.items() if any(s > 0 for s in docs.values())}
        used |= set(kept)
        with (dst / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as f:
            f.write("query-id\tcorpus-id\tscore\n")
            for q, docs in kept.items():
                for d, s in docs.items():
                    f.write(f"{q}\t{d}\t{s}\n")
    with (dst / "queries.jsonl").open("w", encoding="utf-8") as out, \
            (src / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if line.strip() and str(json.loads(line)["_id"]) in used:
                out.write(line if line.endswith("\n") else line + "\n")
    return dst


def docs_folder_to_beir(folder: Path, dst: Path, max_queries: int = 500, seed: int = 0,
                        min_chars: int = 200) -> Path:
    """A BEIR folder from documentation: sections (parsed as `ingest` parses them) are the documents, without
    their heading; a heading (the section's own, last element of its path) that names exactly one section of
    at least `min_chars` characters is a query, that section its one relevant document. No train split."""
    from llara_search.ingest.parsers import ParseError, SkipFile, parse_file
    from llara_search.ingest.walk import walk

    docs: list[tuple[str, str, str]] = []  # (id, heading, text)
    for path in walk([folder]).files:
        try:
            parsed = parse_file(path, path.read_bytes())
        except (ParseError, SkipFile, OSError):
            continue
        rel = path.relative_to(folder).as_posix()
        for i, section in enumerate(parsed.sections):
            text = "\n\n".join(b.text for b in section.blocks).strip()
            heading = (section.heading[-1] if section.heading else "").strip()
            if text:
                docs.append((f"{rel}#{i}", heading, text))
    by_heading: dict[str, list[int]] = {}
    for n, (_, heading, text) in enumerate(docs):
        words = re.findall(r"[A-Za-z]{2,}", heading)
        if words and len(heading) <= 120:
            by_heading.setdefault(" ".join(heading.lower().split()), []).append(n)
    candidates = sorted(h for h, ns in by_heading.items() if len(ns) == 1 and len(docs[ns[0]][2]) >= min_chars)
    random.Random(seed).shuffle(candidates)
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "qrels").mkdir(exist_ok=True)
    with (dst / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, _, text in docs:
            f.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
    with (dst / "queries.jsonl").open("w", encoding="utf-8") as fq, \
            (dst / "qrels" / "test.tsv").open("w", encoding="utf-8") as fr:
        fr.write("query-id\tcorpus-id\tscore\n")
        for i, h in enumerate(candidates[:max_queries]):
            n = by_heading[h][0]
            fq.write(json.dumps({"_id": f"q{i}", "text": docs[n][1]}) + "\n")
            fr.write(f"q{i}\t{docs[n][0]}\t1\n")
    return dst


# ---------------------------------------------------------------------------------------------------- running
class Runner:
    """Runs `llara-search` commands as a user would, in a subprocess with `--json`; logs each with its time."""

    def __init__(self, work: Path, quiet: bool = False):
        self.work = work
        self.quiet = quiet
        self.log: list[dict] = []
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                    "LLARA_SEARCH_INDEX": str(work / "indexes" / "default"),
                    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}

    def __call__(self, *args: str, threads: int | None = None) -> dict:
        """`threads` caps torch's threads (OMP_NUM_THREADS) for commands that run side by side."""
        cmd = [sys.executable, "-m", "llara_search", *map(str, args), "--json"]
        shown = "llara-search " + " ".join(shlex.quote(str(a)) for a in args)
        env = self.env | ({"OMP_NUM_THREADS": str(threads)} if threads else {})
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=self.work)
        seconds = time.perf_counter() - t
        if r.returncode != 0 and not (args[0] == "ingest" and r.returncode == 3):  # 3: some files failed
            raise SystemExit(f"failed ({r.returncode}): {shown}\n{r.stderr[-4000:]}")
        out = json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])
        self.log.append({"command": shown, "seconds": round(seconds, 1)})
        if not self.quiet:
            print(f"  {seconds:7.1f}s  {shown}", flush=True)
        return out


def per_query(qrels: dict[str, dict[str, int]], run_file: Path) -> dict[str, np.ndarray]:
    """nDCG@10 and Recall@100 of every judged query (0 where the run has nothing), in qrels order."""
    import pytrec_eval

    from llara_search.eval import read_trec

    run = read_trec(run_file)
    got = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    qids = list(qrels)
    return {"ndcg@10": np.array([got.get(q, {}).get("ndcg_cut_10", 0.0) for q in qids]),
            "recall@100": np.array([got.get(q, {}).get("recall_100", 0.0) for q in qids])}


# ---------------------------------------------------------------------------------------------------- fusion study
def fusion_study(qrels: dict[str, dict[str, int]], dense_run: Path, bm25_run: Path,
                 calibrated: float | None = None) -> dict:
    """nDCG@10 of ways to fuse the two ranked lists (documents, top 100 each), computed from the run files alone:
    RRF with a dense weight, and convex combinations of min-max and z-score normalized scores; also each method at
    the weight the index calibrated for itself (llara_search/fusion.py)."""
    import pytrec_eval

    from llara_search.eval import read_trec
    from llara_search.search import fuse

    dense, bm25 = read_trec(dense_run), read_trec(bm25_run)

    def score(run) -> float:
        got = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
        return round(float(sum(v["ndcg_cut_10"] for v in got.values()) / len(qrels)), 4)

    def ranking(run, q):
        return sorted(run.get(q, {}).items(), key=lambda x: (-x[1], x[0]))

    out: dict[str, dict[str, float]] = {}
    for method in ("rrf", "minmax", "zscore"):
        out[method] = {}
        weights = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
        for w in weights + ([calibrated] if calibrated is not None else []):
            run = {}
            for q in qrels:
                fused = fuse(ranking(dense, q), ranking(bm25, q), 100, method=method, dense_weight=w)
                run[q] = {d: s for d, s in fused}
            out[method][f"{w:.1f}" if w in weights else f"calibrated {w:.3f}"] = score(run)
    return out


# ---------------------------------------------------------------------------------------------------- the run
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.adapt", description=__doc__.split("\n\n")[0])
    ap.add_argument("--beir", type=Path, help="BEIR folder [../shared/data/beir-scifact]")
    ap.add_argument("--docs-folder", type=Path, help="a documentation folder: headings become the queries")
    ap.add_argument("--split", default=None, help="judged split to report [test, else dev]")
    ap.add_argument("--budget", type=int, default=None, help=f"pretext steps of (b) and (c) each [{PASSES} passes over "
                    f"the corpus' chunks at batch size, at most {MAX_BUDGET}]")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                    help="train (b) and (c) side by side, the cores split between them [2 where there are 2 cores: "
                         "1.4× the throughput of one after the other on 2 cores]")
    ap.add_argument("--finetune-steps", type=int, default=None, help="steps of (d) [one epoch of the train split]")
    ap.add_argument("--batch-size", type=int, default=BATCH)
    ap.add_argument("--lr", type=float, default=PRETEXT_LR, help=f"peak lr of (b) and (c) [{PRETEXT_LR:g}; 0: the "
                    "product's --full default]")
    ap.add_argument("--finetune-lr", type=float, default=FINETUNE_LR, help=f"peak lr of (d) [{FINETUNE_LR:g}; 0: the "
                    "product's --full default]")
    ap.add_argument("--bow-weight", type=float, default=BOW_WEIGHT,
                    help=f"(c)'s bag-of-words weight, `train --bow-weight` [{BOW_WEIGHT}: see adapt_notes.md]")
    ap.add_argument("--ebar-target", default="following", choices=("following", "next"),
                    help="(c)'s `train --ebar-target` [following: a corpus of abstracts has one chunk per document]")
    ap.add_argument("--hidden", type=int, default=HIDDEN)
    ap.add_argument("--layers", type=int, default=LAYERS)
    ap.add_argument("--tied", action="store_true", help="tie input and output embeddings [separate: tied ones "
                    "collapsed (b) and (c) in adapt_notes.md]")
    ap.add_argument("--seeds", default="42", help="training seeds, comma separated; the first one is tabled")
    ap.add_argument("--docs", type=int, default=None, help="subsample the corpus to this many documents")
    ap.add_argument("--chunk-sizes", default=",".join(map(str, CHUNK_SIZES)),
                    help="chunk budgets to check on the best model ('' to skip)")
    ap.add_argument("--no-ivfpq", action="store_true", help="skip the IVF-PQ recall check")
    ap.add_argument("--work", type=Path, default=None, help="work folder [benchmarks/.work/adapt/<dataset>]")
    ap.add_argument("--no-record", action="store_true", help="do not write benchmarks/results.json")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    command = "python -m benchmarks.adapt" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))

    if args.docs_folder:
        name = f"{args.docs_folder.resolve().parent.name}-headings"
    else:
        src = (args.beir or SCIFACT).resolve()
        if not (src / "corpus.jsonl").is_file():
            raise SystemExit(f"no BEIR folder at {src} (corpus.jsonl, queries.jsonl, qrels/); pass --beir DIR")
        name = src.name
    if args.docs:
        name += f"-{args.docs}docs"
    work = (args.work or WORK / "adapt" / name).resolve()
    shutil.rmtree(work, ignore_errors=True)  # models are rebuilt: indexes of old ones would be refused
    work.mkdir(parents=True)
    if args.docs_folder:
        beir = docs_folder_to_beir(args.docs_folder.resolve(), work / "beir")
        if args.docs:
            beir = subsample_beir(beir, work / "beir-sub", args.docs)
    else:
        beir = subsample_beir(src, work / "beir", args.docs) if args.docs else src
    from llara_search.eval import load_beir

    splits = {p.stem for p in (beir / "qrels").glob("*.tsv")}
    split = args.split or ("test" if "test" in splits else "dev" if "dev" in splits else sorted(splits)[0])
    has_train = "train" in splits and split != "train"
    data = load_beir(beir, split)
    qrels = data.qrels
    print(f"adapt benchmark on {beir} ({split}: {len(qrels)} judged queries; train split: {has_train})", flush=True)

    run = Runner(work)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    rows: dict[str, dict] = {}
    scores: dict[str, dict[str, np.ndarray]] = {}

    def evaluate(key: str, model: Path | str, mode: str = "dense", index: Path | None = None,
                 chunk_tokens: int | None = None) -> dict:
        idx = index or work / "indexes" / key
        extra = ["--chunk-tokens", str(chunk_tokens)] if chunk_tokens else []
        r = run("eval", beir, "--split", split, "--index", idx, "--model", model, "--mode", mode,
                "--run-file", work / "runs" / f"{key}.trec", *extra)
        rows[key] = {m: r[m] for m in ("ndcg@10", "recall@100", "mrr@10")} | {"chunks": r["chunks"],
                                                                             "index": str(idx)}
        if mode == "dense":
            rows[key]["fusion"] = run("status", "--index", idx).get("fusion")
        scores[key] = per_query(qrels, work / "runs" / f"{key}.trec")
        print(f"    {key}: nDCG@10 {r['ndcg@10']:.4f}  Recall@100 {r['recall@100']:.4f}", flush=True)
        return r

    # -------------------------------------------------------------------------------------------- models
    from llara_search.testing import make_tiny_llara
    from llara_search.train.trainer import default_lr, model_parameters

    if not (TOKENIZER / "tokenizer.model").is_file() and not (TOKENIZER / "tokenizer.json").is_file():
        raise SystemExit(f"needs the LLaMA-2 tokenizer at {TOKENIZER}")
    model_a = make_tiny_llara(work / "models" / "a-random", tokenizer_dir=TOKENIZER, hidden_size=args.hidden,
                              num_layers=args.layers, num_heads=max(1, args.hidden // 32), seed=0,
                              tie_embeddings=args.tied)
    n_params = model_parameters(str(model_a))
    lr = args.lr or default_lr(str(model_a), True)
    evaluate("bm25", "none", mode="bm25")
    chunks = evaluate("a", model_a)["chunks"]
    budget = args.budget or min(MAX_BUDGET, -(-PASSES * chunks // args.batch_size))
    idx_a = work / "indexes" / "a"
    n_train = len(load_beir(beir, "train").qrels) if has_train else 0
    ft_steps = args.finetune_steps or max(1, -(-n_train // 8))
    models: dict[str, Path] = {"a": model_a}
    threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None  # each of the side-by-side arms
    for i, seed in enumerate(seeds):
        tag = "" if i == 0 else f"@{seed}"
        common = ["--full", "--max-steps", budget, "--batch-size", args.batch_size, "--lr", lr,
                  "--seed", seed, "--save-every", 0, "--bow-weight", args.bow_weight,
                  "--ebar-target", args.ebar_target]
        arms = {key: (loss, work / "models" / f"{key}{tag}") for key, loss in (("b", "causal"), ("c", "llara"))}
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            cards = dict(zip(arms, pool.map(
                lambda arm: run("train", "--index", idx_a, "--output", arm[1], "--loss", arm[0], *common,
                                threads=threads), arms.values())))
        for key, (_, out) in arms.items():
            rows.setdefault("_training", {})[key + tag] = {k: cards[key][k] for k in (
                "steps", "loss_first", "loss_last", "seconds", "tokens_per_second")}
            evaluate(key + tag, out)
            models[key + tag] = out
        if has_train:
            out = work / "models" / f"d{tag}"
            ft = ["--lr", args.finetune_lr] if args.finetune_lr else []
            card = run("finetune", "--train", beir, "--index", work / "indexes" / "bm25", "--base",
                       models["c" + tag], "--full", "--output", out, "--max-steps", ft_steps, "--batch-size", 8,
                       "--seed", seed, "--save-every", 0, *ft)
            rows["_training"]["d" + tag] = {k: card[k] for k in ("steps", "loss_first", "loss_last", "seconds",
                                                                  "tokens_per_second", "lr")}
            evaluate("d" + tag, out)
            models["d" + tag] = out

    dense_keys = [k for k in ("a", "b", "c", "d") if k in rows]
    best = max(dense_keys, key=lambda k: rows[k]["ndcg@10"])
    evaluate("hybrid", models[best], mode="hybrid", index=work / "indexes" / best)

    # -------------------------------------------------------------------------------------------- noise
    compare = {"c_vs_b": ("c", "b"), "d_vs_c": ("d", "c"), "hybrid_vs_best_dense": ("hybrid", best),
               "hybrid_vs_bm25": ("hybrid", "bm25"), "best_dense_vs_bm25": (best, "bm25")}
    noise = {name: {m: paired_bootstrap(scores[x][m], scores[y][m]) for m in ("ndcg@10", "recall@100")}
             for name, (x, y) in compare.items() if x in scores and y in scores}
    seed_rows = {}
    if len(seeds) > 1:
        for key in ("b", "c", "d"):
            vals = [rows[key + ("" if i == 0 else f"@{s}")]["ndcg@10"] for i, s in enumerate(seeds)
                    if key + ("" if i == 0 else f"@{s}") in rows]
            if vals:
                seed_rows[key] = {"ndcg@10": vals, "mean": round(float(np.mean(vals)), 4),
                                  "spread": round(float(np.max(vals) - np.min(vals)), 4)}

    # -------------------------------------------------------------------------------------------- studies
    calibrated = (rows[best].get("fusion") or {}).get("dense_weight")
    fusion = fusion_study(qrels, work / "runs" / f"{best}.trec", work / "runs" / "bm25.trec", calibrated)
    chunking = {}
    sizes = [int(s) for s in args.chunk_sizes.split(",") if s.strip()]
    for size in sizes:
        if size == 256:
            chunking[str(size)] = {m: rows[best][m] for m in ("ndcg@10", "recall@100", "chunks")}
            continue
        key = f"{best}-chunk{size}"
        evaluate(key, models[best], chunk_tokens=size)
        chunking[str(size)] = {m: rows[key][m] for m in ("ndcg@10", "recall@100", "chunks")}
    ivfpq = None
    if not args.no_ivfpq:
        idx_best = work / "indexes" / best
        run("reindex", "--index", idx_best, "--index-type", "ivfpq")
        ivfpq = run("bench", "--index", idx_best, "--queries", 200)
        print(f"    IVF-PQ on {best}: recall@10 {ivfpq.get('recall@10')} ({ivfpq.get('factory')}, nprobe "
              f"{ivfpq.get('nprobe')}, re-rank {ivfpq.get('rerank')}×k)", flush=True)

    result = {
        "dataset": name, "beir": str(beir), "split": split, "queries": len(qrels), "train_split": has_train,
        "model": {"hidden": args.hidden, "layers": args.layers, "heads": max(1, args.hidden // 32),
                  "tied_embeddings": args.tied,
                  "parameters": n_params, "tokenizer": "LLaMA-2 + 16 LLaRA tokens (32016)", "init": "random, seed 0"},
        "budget": {"pretext_steps": budget, "side_by_side": args.jobs, "batch_size": args.batch_size, "lr": lr,
                   "bow_weight": args.bow_weight, "ebar_target": args.ebar_target,
                   "finetune_steps": ft_steps if has_train else None, "seeds": seeds},
        "rows": {k: v for k, v in rows.items() if not k.startswith("_")}, "training": rows.get("_training", {}),
        "best_dense": best, "noise": noise, "seeds": seed_rows, "fusion_study": fusion, "chunking": chunking,
        "ivfpq_bench": ivfpq, "commands": run.log, "seconds": round(time.perf_counter() - t_start, 1),
        "command": command, "machine": machine(),
    }
    if not args.no_record:
        record(f"adapt_{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_').lower()}", result)
    print(table(result))
    return result


def table(r: dict) -> str:
    names = {"a": "(a) random init", "b": "(b) causal-LM loss alone (`train --full --loss causal`)",
             "c": "(c) LLaRA pretext (`train --full`)", "d": "(d) (c) + `finetune --full` on the train split",
             "bm25": "BM25", "hybrid": f"hybrid (BM25 + {r['best_dense']})"}
    lines = [f"| {r['dataset']} ({r['split']}, {r['queries']} queries) | nDCG@10 | Recall@100 |", "|---|---|---|"]
    for key in ("a", "b", "c", "d", "bm25", "hybrid"):
        if key in r["rows"]:
            lines.append(f"| {names[key]} | {r['rows'][key]['ndcg@10']:.4f} | {r['rows'][key]['recall@100']:.4f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
