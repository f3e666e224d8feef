"""Run every benchmark at a size that fits 2 CPU cores in minutes, then rewrite benchmarks/RESULTS.md.

    python -m benchmarks            # all
    python -m benchmarks --report   # only rewrite RESULTS.md from benchmarks/.work/results.json
"""

from __future__ import annotations

import json
import sys

from . import bm25, encode, index, ingest, serve, soak
from .common import RESULTS_JSON, ROOT, machine


def report() -> str:
    data = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    lines = ["# Benchmark results", "",
             "Each figure is a ratio against a baseline measured in the same run, on the machine named. "
             "`python -m benchmarks` re-runs everything and rewrites this file.", "",
             f"Machine of the last run: {machine()}", "", "## Headline", "",
             "| what | ours | baseline (same run) | ratio | command |", "|---|---|---|---|---|"]
    e = data.get("encode")
    if e:
        lines.append(f"| encoder throughput ({e['data']}, {e['texts']} texts) | {e['ours_texts_per_s']} texts/s | "
                     f"{e['baseline_texts_per_s']} texts/s (model-card loop, batch 16, input order) | "
                     f"**{e['speedup']}×** (max abs diff {e['max_abs_diff']:.1e}) | `{e['command']}` |")
    g = data.get("ingest")
    if g:
        lines.append(f"| re-ingest of an unchanged folder ({g['files']} files, {g['chunks']} chunks) | "
                     f"{g['reingest_s']} s, {g['reingest_encoded']} encoded | {g['first_s']} s first ingest | "
                     f"**{100 * g['reingest_ratio']:.2f}%** | `{g['command']}` |")
    for key in ("bm25_scifact", "bm25_scifact_postgresql"):
        b = data.get(key)
        if not b:
            continue
        engine = "PostgreSQL full text, BM25 in SQL" if key.endswith("postgresql") else "FTS5"
        lines.append(f"| BM25 ({engine}) on {b['dataset']} | nDCG@10 {b['ndcg@10']}, p50 {b['p50_ms']} ms/query | "
                     f"nDCG@10 {b['baseline_ndcg@10']}, p50 {b['baseline_p50_ms']} ms (Python BM25 k1=0.9 b=0.4 "
                     f"over whole documents); published BM25 {b['published_bm25_ndcg@10']} | **{b['speedup']}×** "
                     f"faster, nDCG@10 {b['ndcg@10'] - b['baseline_ndcg@10']:+.3f} | `{b['command']}` |")
    gp = data.get("gpu_7b")
    if gp:
        e7, t7 = gp["encoder"], gp["training"]
        lines.append(f"| encoder, LLaMA-2-7B architecture, bf16, {gp['machine'].split(',')[2].strip()} | "
                     f"{e7['tokens_per_s']} tokens/s = **{100 * e7['mfu']:.0f}%** of the measured "
                     f"{gp['matmul_bf16_tflops']} TFLOP/s matmul rate | model-card loop {e7['model_card_s']} s vs "
                     f"ours {e7['ours_s']} s ({e7['texts']} SciFact texts) | **{e7['speedup']}×** | "
                     f"`{gp['command']}` |")
        lines.append(f"| LoRA pretext training step, 7B architecture, batch {t7['batch']} × {t7['cutoff_len']} "
                     f"tokens | {t7['tokens_per_s']} tokens/s, {t7['step_s']} s/step, {t7['peak_gpu_gib']} GiB | "
                     f"6·params·tokens/s against the matmul rate | **{100 * t7['mfu_6n']:.0f}%** | "
                     f"`{gp['command']}` |")
    sv = data.get("serve")
    if sv:
        ls, ld = sv["latency_split"], sv["server"]
        note = f" ({sv['note']})" if sv.get("note") else ""
        lines.append(f"| query latency split at {sv['chunks']} chunks ({sv['index_type']}, tiny model){note} | "
                     f"p50 encode "
                     f"{ls['encode']['p50_ms']} / ANN {ls['ann']['p50_ms']} / re-rank {ls['rerank']['p50_ms']} / "
                     f"database {ls['database']['p50_ms']} ms; total p50 {ls['total']['p50_ms']}, p99 "
                     f"{ls['total']['p99_ms']} ms | | | `{sv['command']}` |")
        lines.append(f"| HTTP /search, {ld['loaded']['requests']} requests at {ld['loaded']['concurrency']} "
                     f"concurrent clients | {ld['loaded']['requests_per_s']} req/s, p50 {ld['loaded']['p50_ms']} ms, "
                     f"p99 {ld['loaded']['p99_ms']} ms, **{ld['loaded']['errors']} errors** | one client: "
                     f"{ld['sequential']['requests_per_s']} req/s | **{ld['throughput_ratio']}×** throughput | "
                     f"`{sv['command']}` |")
    sk = data.get("soak")
    if sk:
        pts, rk, ld = sk["named_points"], sk["random_kills"], sk["load_while_ingesting"]
        ok_points = sum(p["killed"] and p["same_as_uninterrupted"] and p["doctor_ok"] for p in pts["points"].values())
        lines.append(f"| kill -9 at every crash point, then resume ({pts['data']}, {pts['chunks']} chunks) | "
                     f"{ok_points}/{len(pts['points'])} points: doctor ok, state equals an uninterrupted ingest | "
                     f"uninterrupted ingest into a fresh index | | `{sk['command']}` |")
        lines.append(f"| kill -9 at {rk['killed']} random moments, then re-run ({rk['data']}) | documents "
                     f"{rk['documents'][0]}, chunks {rk['chunks_total'][0]}, same chunk texts: {rk['same_chunk_texts']}, "
                     f"doctor ok: {rk['doctor_ok']}; the final run encoded {rk['final_run_encoded']} of "
                     f"{rk['chunks_total'][0]} | fresh ingest: documents {rk['documents'][1]}, chunks "
                     f"{rk['chunks_total'][1]} | | `{sk['command']}` |")
        lines.append(f"| HTTP /search (dense, BM25, hybrid) while ingests commit {ld['generations_committed_during_load']} "
                     f"new generations | {ld['requests']} requests at {ld['concurrency']} clients, **{ld['errors']} "
                     f"errors**, {ld['requests_per_s']} req/s, p50 {ld['p50_ms']} ms, p99 {ld['p99_ms']} ms | | | "
                     f"`{sk['command']}` |")
    for key, r in sorted(data.items()):
        if key.startswith("index_"):
            cores = r["machine"].split(" CPU")[0]
            lines.append(f"| ANN + exact re-rank, {r['n']}×{r['dim']} ({r['factory']}), {cores} cores, "
                         f"{r['data'].split('(')[-1].rstrip(')')} data | p50 {r['p50_ms']} ms, "
                         f"recall@10 {r['recall@10']}, {r['bytes_per_vector']} B/vector | exact flat p50 "
                         f"{r['flat_p50_ms']} ms, {r['flat_bytes_per_vector']} B/vector | **{r['speedup_vs_flat']}×** "
                         f"faster | `{r['command']}` |")
    lines += adapt_report(data)
    lines += ["", "## Details", ""]
    for key, r in sorted(data.items()):
        lines += [f"### {key}", "", "```json", json.dumps(r, indent=2), "```", ""]
    lines += ["Machines differ by row: each row's details name the machine it ran on (the GPU and 1M-vector rows "
              "ran on a lent 16-core H100 machine; `python -m benchmarks.gpu` needs CUDA).", ""]
    return "\n".join(lines)


def adapt_report(data: dict) -> list[str]:
    """The dense-quality tables of benchmarks/adapt.py: a small Llama trained by the product's own commands."""
    from .adapt import table

    out = []
    for key, r in sorted(data.items()):
        if not key.startswith("adapt_"):
            continue
        m, b = r["model"], r["budget"]
        out += ["", f"## Dense quality: a small Llama trained here ({r['dataset']})", "",
                f"Random init, {m['parameters'] / 1e6:.1f}M parameters ({m['layers']} layers × {m['hidden']}, "
                f"LLaMA-2 tokenizer + LLaRA tokens), {b['pretext_steps']} pretext steps of {b['batch_size']} for "
                f"(b) and (c) each, lr {b['lr']:.2g}" + (f", {b['finetune_steps']} fine-tuning steps for (d)"
                                                          if b.get("finetune_steps") else "") +
                f"; {r['seconds'] / 60:.0f} min on {r['machine'].split(',')[0]}. Command: `{r['command']}`", "",
                table(r), ""]
        noise = r.get("noise", {})
        for name, label in (("c_vs_b", "(c) − (b)"), ("d_vs_c", "(d) − (c)"),
                            ("hybrid_vs_best_dense", "hybrid − best dense"), ("hybrid_vs_bm25", "hybrid − BM25")):
            if name in noise:
                n = noise[name]["ndcg@10"]
                out.append(f"- {label}: nDCG@10 {n['diff']:+.4f}, 95% interval [{n['ci95'][0]:+.4f}, "
                           f"{n['ci95'][1]:+.4f}] (paired bootstrap over queries)"
                           + ("" if n["significant"] else " — not distinguishable from noise"))
        if r.get("seeds"):
            out.append("- training seeds " + ", ".join(map(str, b["seeds"])) + ": " + "; ".join(
                f"({k}) nDCG@10 {', '.join(f'{v:.4f}' for v in s['ndcg@10'])} (spread {s['spread']:.4f})"
                for k, s in r["seeds"].items()))
        if r.get("chunking"):
            out.append("- chunk budget (best model, dense): " + "; ".join(
                f"{size} tokens: nDCG@10 {c['ndcg@10']:.4f}, Recall@100 {c['recall@100']:.4f} ({c['chunks']} chunks)"
                for size, c in r["chunking"].items()))
        iv = r.get("ivfpq_bench")
        if iv:
            out.append(f"- IVF-PQ forced on the best model's vectors (`reindex --index-type ivfpq`, `bench`): "
                       f"recall@10 {iv['recall@10']} against exact ({iv['factory']}, nprobe {iv['nprobe']}, re-rank "
                       f"{iv['rerank']}×k, target {iv.get('target_recall')})")
    return out


def main() -> None:
    if "--report" not in sys.argv:
        encode.main([])
        ingest.main([])
        bm25.main([])
        serve.main(["--chunks", "100000", "--requests", "2000", "--concurrency", "32"])
        index.main(["--n", "20000", "--dim", "512"])
        soak.main([])
    (ROOT / "benchmarks" / "RESULTS.md").write_text(report())
    print(f"wrote {ROOT / 'benchmarks' / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
