"""Run every benchmark at a size that fits 2 CPU cores in minutes, then rewrite benchmarks/RESULTS.md.

    python -m benchmarks            # all
    python -m benchmarks --report   # only rewrite RESULTS.md from benchmarks/.work/results.json
"""

from __future__ import annotations

import json
import sys

from . import (ahead, bm25, cli_query, dtype, encode, formats, gpu, hostile_serve, index, ingest, memory, milvus,
               page, parsing, rerank, scale, serve, soak, watch)
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
    bm = data.get("bm25")
    if bm:
        lines += _bm25_rows(bm)
    lines += scale.report_rows(data)
    lines += ahead.report_rows(data)
    lines += watch.report_rows(data)  # rows of the headline table
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
    cq = data.get("cli_query")
    if cq:
        cold = {"dense": "imports torch, loads the model", "bm25": "imports the engine: FAISS, SQLAlchemy; no model"}
        for mode, r in cq["modes"].items():
            load = f"; load average {cq['load_average'][0]}→{cq['load_average'][1]} on " \
                   f"{cq['machine'].split(' CPU')[0]} cores" if cq.get("load_average") else ""
            lines.append(f"| `llara-search query --mode {mode}` wall time with a `serve` of the same index up "
                         f"({cq['chunks']} chunks, {cq['model']}; same results: {cq['identical_results']}{load}) | "
                         f"{r['server_median_s']} s (median of {cq['repeats']}) | {r['local_median_s']} s cold "
                         f"in-process (`--local`: {cold[mode] if mode in cold else 'opens the engine'}) | "
                         f"**{r['speedup']}×** faster | "
                         f"`{cq['command']}` |")
    rc = data.get("rerank_cpu")
    if rc:
        load = rc.get("load_average_1min")
        busy = f", 2 cores at load average {load[0]}-{load[1]}" if load else ""
        lines.append(f"| re-ranking 100 candidates per query on CPU, {rc['model'].split(', ')[1].split(' (')[0]} "
                     f"cross-encoder ({rc['data'].split(': ')[1]}{busy}) | {rc['ours_pairs_per_s']} pairs/s, p50 "
                     f"{rc['ours_p50_ms']} ms/query | {rc['baseline_pairs_per_s']} pairs/s, p50 "
                     f"{rc['baseline_p50_ms']} ms (input order, batch 16) | **{rc['speedup']}×** (max abs diff "
                     f"{rc['max_abs_diff']:.1e}) | `{rc['command']}` |")
        rec = rc["depth_study"]["recall"]
        lines.append(f"| first-stage depth worth re-ranking (BM25 on SciFact, document recall of the top N) | "
                     + ", ".join(f"{n}: {v}" for n, v in rec.items()) + " | | default depth 100 | "
                     f"`{rc['command']}` |")
    rg = data.get("rerank_gpu_7b")
    if rg:
        lines.append(f"| RankLLaMA-7B shape re-ranking {rg['candidates_per_query']} candidates × "
                     f"{rg['max_pair_tokens']} tokens per query, bf16, {rg['machine'].split(',')[2].strip()} | p50 {rg['ours_p50_ms']} ms, p99 "
                     f"{rg['ours_p99_ms']} ms, {rg['tokens_per_s']} tokens/s | p50 {rg['baseline_p50_ms']} ms, p99 "
                     f"{rg['baseline_p99_ms']} ms (input order, batch 16) | **{rg['speedup']}×** | `{rg['command']}` |")
    else:
        lines.append("| RankLLaMA-7B shape re-ranking 100 candidates × 200 tokens per query, bf16, one GPU | not "
                     "measured (no GPU lent yet) | straightforward loop (input order, batch 16) | not measured | "
                     "`python -m benchmarks.rerank_gpu` |")
    for key, r in sorted(data.items()):
        if key.startswith("index_"):
            cores = r["machine"].split(" CPU")[0]
            lines.append(f"| ANN + exact re-rank, {r['n']}×{r['dim']} ({r['factory']}), {cores} cores, "
                         f"{r['data'].split('(')[-1].rstrip(')')} data | p50 {r['p50_ms']} ms, "
                         f"recall@10 {r['recall@10']}, {r['bytes_per_vector']} B/vector | exact flat p50 "
                         f"{r['flat_p50_ms']} ms, {r['flat_bytes_per_vector']} B/vector | **{r['speedup_vs_flat']}×** "
                         f"faster | `{r['command']}` |")
    for key, r in sorted(data.items()):
        if key.startswith("milvus_lite_vs_faiss_"):
            f, m = r["faiss"], r["milvus_lite"]
            kind = r["data"].split("(")[-1].rstrip(")")
            lines.append(f"| Milvus Lite vs FAISS, the same {r['n']}×{r['dim']} vectors ({kind}), "
                         f"{r['machine'].split(' CPU')[0]} cores | Lite {m['index']}: ingest {m['ingest_s']} s, p50 "
                         f"{m['p50_ms']} ms, recall@10 {m['recall@10']} | FAISS {f['index']}: ingest "
                         f"{f['ingest_s']} s, p50 {f['p50_ms']} ms, recall@10 {f['recall@10']} | Lite "
                         f"**{r['lite_latency_ratio']}×** the "
                         f"latency, {r['lite_ingest_ratio']}× the ingest time (Lite is not a Milvus cluster) | "
                         f"`{r['command']}` |")
    sm = data.get("soak_milvus_lite")
    if sm:
        pts = sm["named_points"]
        ok_points = sum(p["killed"] and p["same_as_uninterrupted"] and p["doctor_ok"] for p in pts["points"].values())
        lines.append(f"| kill -9 at every crash point with vectors in Milvus Lite, then resume ({pts['data']}, "
                     f"{pts['chunks']} chunks) | {ok_points}/{len(pts['points'])} points: doctor ok, state equals an "
                     f"uninterrupted ingest | uninterrupted ingest into a fresh index | | `{sm['command']}` |")
    j = data.get("milvus_jax_top10")
    if j:
        lines.append(f"| `ingest --vector-db jax.milvus.db` then dense queries, {j['data']} | the same top-10 up "
                     f"to tied scores for **{j['identical_top10_up_to_tied_scores']}/{j['queries']}** queries (same "
                     f"ten chunks {j.get('same_top10_set', '?')}/{j['queries']}, same order "
                     f"{j['identical_top10']}/{j['queries']}; scores within {j.get('max_abs_score_diff', '?')}); "
                     f"CLI {j['cli_identical_top10']}/{j['cli_queries']} | FAISS exact index over the same stored "
                     f"vectors | | `{j['command']}` |")
    lines += _dtype_rows(data)
    pa = data.get("parsing")
    if pa:
        for f in pa["folders"]:
            lines.append(f"| parsing {f['folder'].split('data/')[-1]} ({f['documents']} documents: "
                         f"{', '.join(f'{k} {v}' for k, v in f['formats'].items())}; {f['chunks']} chunks) | "
                         f"**{len(f['files_failed'])} failed files**, {f['chunks_with_control_chars']} chunks with "
                         f"control characters, {100 * f['directive_share']:.2f}% chunks with a directive line, "
                         f"{f['man_chunks_without_section_heading']}/{f['man_chunks']} man chunks without a section "
                         f"heading | | | `{pa['command']}` |")
        pdf = pa["pdf"]
        lines.append(f"| PDF text extraction, {len(pdf['files'])} PDFs (one font with >256 widths) | pypdfium2: "
                     f"{pdf['pypdfium2']['files_read']} read, {pdf['pypdfium2']['seconds']} s | pypdf: "
                     f"{pdf['pypdf']['files_read']} read, {pdf['pypdf']['seconds']} s | **{pdf['speedup_pdfium_vs_pypdf']}×** "
                     f"faster | `{pa['command']}` |")
        c = pa.get("collapse")
        if c:
            lines.append(f"| BM25 query with near-copies collapsed ({c['queries']} queries, k={c['k']}) | p50 "
                         f"{c['p50_ms_collapse']} ms, {c['results_naming_copies']} copies named in also_in | p50 "
                         f"{c['p50_ms_no_collapse']} ms without collapsing | **{c['ratio']}×** the time | "
                         f"`{pa['command']}` |")
    lines += _formats_rows(data)
    lines += page_rows(data)
    lines += adapt_report(data)
    lines += hostile_serve.report_lines(data)
    lines += verdict_report(data)
    lines += gpu.report_rows(data)
    lines += ["", "## Details", ""]
    for key, r in sorted(data.items()):
        lines += [f"### {key}", "", "```json", json.dumps(r, indent=2), "```", ""]
    lines += ["Machines differ by row: each row's details name the machine it ran on (the GPU and 1M-vector rows "
              "ran on a lent 16-core H100 machine; `python -m benchmarks.gpu` needs CUDA).", ""]
    return "\n".join(lines)


def _dtype_rows(data: dict) -> list[str]:
    """Rows of issue #21: the memory check against measured peaks, and rankings across dtypes."""
    rows = []
    m = data.get("memory_check")
    if m:
        parts = "; ".join(f"{c['model']}, {c['what']} {c['dtype']}: {c['measured_mib']} MiB measured / "
                          f"{c['estimated_mib']} MiB estimated" for c in m["cases"])
        rows.append(f"| memory check: peak anonymous memory of load + one full batch (or LoRA steps) vs the estimate from "
                    f"config.json ({m['model']}) | {parts} | the estimate | worst measured/estimated "
                    f"**{m['worst_measured_over_estimated']}** | `{m['command']}` |")
    d = data.get("dtype_rankings")
    if d:
        p = d["pairs"]

        def cell(name: str) -> str:
            a, b = p[name]["vs_fp32_fp32"], p[name]["vs_bf16_bf16"]
            return (f"top-10 overlap {a['top10_overlap']} vs fp32×fp32, {b['top10_overlap']} vs bf16×bf16; mean "
                    f"\\|Δscore\\| {a['mean_abs_score_diff']}")

        gap = sum(r["rank1_minus_rank10_score_gap"] for r in d["per_seed"]) / len(d["per_seed"])
        rows.append(f"| querying across dtypes ({d['model']}; {d['data']}) | bf16 queries × fp32 passages: "
                    f"{cell('query bfloat16 x passages float32')}; fp32 queries × bf16 passages: "
                    f"{cell('query float32 x passages bfloat16')} | bf16 queries × bf16 passages: "
                    f"{cell('query bfloat16 x passages bfloat16')}; rank-1 − rank-10 score gap {gap:.3g} | "
                    f"bf16 encodes at **{d['bf16_encode_speed_vs_fp32']}×** fp32's speed on this CPU | "
                    f"`{d['command']}` |")
    return rows


def _bm25_rows(bm: dict) -> list[str]:
    rows, b = [], bm["bm25s"]
    for backend, mine in bm["ours"].items():
        db = "SQLite" if backend == "sqlite" else "PostgreSQL"
        for name in ("short", "long"):
            m, base = mine[name], b[name]
            what = "SciFact claims" if name == "short" else "long queries (100-300 words, SciFact halves)"
            rows.append(f"| BM25 ranking step, {what}, {db}, one query at a time | p50 {m['rank_p50_ms']} ms (whole "
                        f"`Engine.search` with texts: p50 {m['search_p50_ms']}, p99 {m['search_p99_ms']} ms), nDCG@10 "
                        f"{m['ndcg@10']} | bm25s `retrieve` p50 {m['bm25s_retrieve_p50_ms']} ms (tokenize + retrieve "
                        f"{m['bm25s_tokenize_retrieve_p50_ms']} ms; its scoring arrays alone {m['bm25s_core_p50_ms']} "
                        f"ms), nDCG@10 {base['ndcg@10']} | "
                        f"**{m['rank_vs_bm25s_retrieve']}×** "
                        f"bm25s's time, nDCG@10 {m['ndcg@10_minus_bm25s']:+.4f} | `{bm['command']}` |")
    lx = bm["ours"]["sqlite"]["lexical"]
    rows.append(f"| lexical index size, SciFact ({lx['chunks']} chunks, {lx['postings']} postings) | "
                f"{lx['disk_bytes'] / 2**20:.1f} MiB on disk, {lx['memory_bytes'] / 2**20:.1f} MiB mapped | bm25s: "
                f"{b['disk_bytes'] / 2**20:.1f} MiB on disk, {b['memory_bytes'] / 2**20:.1f} MiB in memory | | "
                f"`{bm['command']}` |")
    sc = bm.get("scale")
    if sc:
        a = sc["add_one_file"]
        rows.append(f"| add one file to a {sc['chunks']:,}-chunk text-only index (10 times) | lexical index: median "
                    f"{a['lexical_median_ms']} ms, max {a['lexical_max_ms']} ms (whole ingest median "
                    f"{a['median_s']} s); the largest merge (all {sc['full_merge_chunks']:,} chunks into one segment) "
                    f"{sc['full_merge_s']} s | rebuilding the lexical index {sc['lexical_rebuild_s']} s; bm25s "
                    f"re-index {sc['bm25s_index_s']} s | "
                    f"**{round(1000 * sc['lexical_rebuild_s'] / max(a['lexical_median_ms'], 1e-3))}×** less work | "
                    f"`{bm['command']}` |")
        s, lg = sc["short"], sc["long"]
        rows.append(f"| BM25 at {sc['chunks']:,} chunks, SciFact claims / long queries, SQLite | ranking p50 "
                    f"{s['rank_p50_ms']} / {lg['rank_p50_ms']} ms; search with texts {s['search_p50_ms']} / "
                    f"{lg['search_p50_ms']} ms | bm25s retrieve {s['bm25s_retrieve_p50_ms']} / "
                    f"{lg['bm25s_retrieve_p50_ms']} ms (scoring arrays alone {s['bm25s_core_p50_ms']} / "
                    f"{lg['bm25s_core_p50_ms']} ms) | **{s['rank_vs_bm25s_retrieve']}× / "
                    f"{lg['rank_vs_bm25s_retrieve']}×** bm25s's time | `{bm['command']}` |")
    return rows
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
                f"(b) and (c) each" + (" (trained side by side, the cores split)" if b.get("side_by_side", 1) > 1 else "")
                + f", lr {b['lr']:.2g}, bag-of-words weight {b['bow_weight']:g}"
                + (f", {b['finetune_steps']} fine-tuning steps for (d)"
                                                          if b.get("finetune_steps") else "") +
                f"; {r['seconds'] / 60:.0f} min on {r['machine'].split(',')[0]}. Command: `{r['command']}`", "",
                table(r), ""]
        noise = r.get("noise", {})
        for name, label in (("c_vs_b", "(c) − (b)"), ("d_vs_c", "(d) − (c)"),
                            ("hybrid_vs_best_dense", "hybrid − best dense"), ("hybrid_vs_bm25", "hybrid − BM25")):
            if name in noise:
                out.append(f"- {label}: " + "; ".join(
                    f"{metric} {n['diff']:+.4f} [{n['ci95'][0]:+.4f}, {n['ci95'][1]:+.4f}]"
                    + ("" if n["significant"] else " (noise)") for metric, n in
                    ((m, noise[name][m]) for m in ("ndcg@10", "recall@100") if m in noise[name]))
                    + " — 95% intervals, paired bootstrap over queries")
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


def page_rows(data: dict) -> list[str]:
    pg = data.get("page")
    if not pg:
        return []
    out = []
    for mode, m in pg["modes"].items():
        sent = f"; {m['searches_sent_per_query']} searches sent per typed query" \
            if "searches_sent_per_query" in m else ""
        bare = f"; the browser's bare `fetch` of the same: p50 {m['browser_bare_fetch']['p50_ms']} ms" \
            if "browser_bare_fetch" in m else ""
        if "page_own_work" in m:  # Resource Timing: the server's part of the page's fetch, and what is left
            sent += (f"; the server's part as the browser saw it p50 {m['page_server_part']['p50_ms']} ms, the "
                     f"page's own work (sending, reading, drawing, paint) p50 {m['page_own_work']['p50_ms']} / p95 "
                     f"{m['page_own_work']['p95_ms']} ms")
        out.append(f"| search page in Chromium, {mode}: last keystroke to results painted ({pg['data']}) | "
                   f"p50 {m['page_key_to_paint']['p50_ms']} / p95 {m['page_key_to_paint']['p95_ms']} ms, of which "
                   f"after the page's 200 ms pause p50 {m['page_after_debounce']['p50_ms']} / p95 "
                   f"{m['page_after_debounce']['p95_ms']} ms (its fetch of `/search` p50 {m['page_fetch']['p50_ms']}, "
                   f"drawing and paint p50 {m['page_render_paint']['p50_ms']} ms{sent}) | the same queries' "
                   f"`/search` from Python: p50 {m['python_search']['p50_ms']} / p95 {m['python_search']['p95_ms']} "
                   f"ms{bare} | **{m['ratio_p50']}×** (after the pause, p50) | `{pg['command']}` |")
    return out


def _formats_rows(data: dict) -> list[str]:
    """Issue #30's formats: per real folder and format, files, chunks, raw markup and headings; the libraries."""
    fo = data.get("formats")
    if not fo:
        return []
    out = []
    for f in fo["folders"]:
        per = "; ".join(f"{k} {v['files']} files, {v['chunks']} chunks, " + (
            f"**{v['chunks_with_markup_copied_from_source']}** with roff markup from the source "
            f"({100 * v['raw_share']:.1f}% show roff as escaped examples)" if "chunks_with_markup_copied_from_source" in v
            else f"**{100 * v['raw_share']:.2f}%** with raw markup") + f", {100 * v['headed_share']:.1f}% headed"
            for k, v in f["formats"].items() if k not in ("text", "markdown", "html"))
        out.append(f"| formats: {f['folder']} ({f['files_seen']} files, {f['documents']} indexed, "
                   f"{f['files_skipped']} skipped, {f['files_failed']} failed) | {per} | | | `{fo['command']}` |")
    a = fo.get("asciidoc_library", {})
    lib = a.get("asciidoc_py")
    if isinstance(lib, dict):
        out.append(f"| AsciiDoc reader vs asciidoc-py (render to HTML, read back), {a['files']} files | ours: "
                   f"{a['ours']['files_per_s']} files/s, {100 * a['ours']['raw_share']:.2f}% blocks with raw markup, "
                   f"{a['ours']['failed']} failed | asciidoc-py: {lib['files_per_s']} files/s, "
                   f"{100 * lib['raw_share']:.2f}% blocks with raw markup, {lib['failed']} failed | "
                   f"**{a['speedup_ours_vs_asciidoc_py']}×** faster | `{fo['command']}` |")
    t = fo.get("latex_library", {})
    lib = t.get("pylatexenc")
    if isinstance(lib, dict):
        out.append(f"| LaTeX reader vs pylatexenc LatexNodes2Text, {t['files']} files | ours: {t['ours']['failed']} "
                   f"failed, {t['ours']['blocks_with_raw_markup']}/{t['ours']['blocks']} blocks with raw commands | "
                   f"pylatexenc: {lib['failed']} failed ({', '.join(lib['errors']) or 'none'}), "
                   f"{lib['blocks_with_raw_markup']}/{lib['blocks']} blocks with raw commands, "
                   f"{lib['cit_ref_placeholders']} <cit.>/<ref> placeholders | | `{fo['command']}` |")
    return out


def verdict_report(data: dict) -> list[str]:
    """benchmarks/verdict.py: does `train`'s held-out check agree with the dataset's own judged queries?"""
    from .verdict import table

    r = data.get("verdict_agreement")
    if not r or not r.get("rows"):
        return []
    return ["", "## The retrain verdict against real judgments", "",
            f"A {r['model']} Llama (random init) trained {r['steps']} pretext steps of 4 by `train --full` on each "
            f"dataset; the verdict (held-out share {r['share']}) next to `eval` of both models on the dataset's own "
            f"judged queries, 95% paired bootstrap intervals; {r['seconds'] / 60:.0f} min on "
            f"{r['machine'].split(',')[0]}. Command: `{r['command']}`", "", table(r), ""]


def main() -> None:
    if "--report" not in sys.argv:
        encode.main([])
        ingest.main([])
        ahead.main([])
        bm25.main([])
        scale.main(["--passages", "100000"])
        serve.main(["--chunks", "100000", "--requests", "2000", "--concurrency", "32"])
        index.main(["--n", "20000", "--dim", "512"])
        soak.main([])
        memory.main([])
        dtype.main([])
        cli_query.main([])
        rerank.main([])
        parsing.main([])
        formats.main([])
        page.main([])
        hostile_serve.main([])
        watch.main([])
    (ROOT / "benchmarks" / "RESULTS.md").write_text(report())
    print(f"wrote {ROOT / 'benchmarks' / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
