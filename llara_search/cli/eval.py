"""`eval`: ingest a BEIR corpus, run its judged queries and report the retrieval metrics."""

from __future__ import annotations

import os
import re
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from .. import terminal as term
from .common import (DbUrlOpt, DtypeOpt, IngestProgress, JsonOpt, RerankBaseOpt, RerankOpt, VectorDbOpt,
                     check_index_type, check_new_index, check_rerank_options, err, fail, guard, open_engine, out,
                     parse_dtype, print_json)


@guard
def eval_(
    beir_dir: Path = typer.Argument(..., help="BEIR dataset folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv"),
    split: str = typer.Option("test", "--split", help="Which qrels/<split>.tsv to evaluate"),
    index: Optional[Path] = typer.Option(None, "--index", help="Index to build or reuse [default: "
                                         "./indexes/eval/<dataset>-<model>]"),
    db_url: Optional[str] = DbUrlOpt,
    model: Optional[str] = typer.Option(None, "--model", help="HF id or local folder; `none` = text-only BM25 index "
                                        "[default: none for --mode bm25, else $LLARA_SEARCH_MODEL or "
                                        "BAAI/LLARA-passage]"),
    mode: str = typer.Option("dense", "--mode", help="dense | bm25 | hybrid"),
    index_type: Optional[str] = typer.Option(None, "--index-type", help="auto | flat | ivfpq [auto]"),
    vector_db: Optional[str] = VectorDbOpt,
    chunk_tokens: Optional[int] = typer.Option(None, "--chunk-tokens", min=8, help="Token budget of a chunk [256]"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Most texts per encoder batch"),
    k: int = typer.Option(100, "-k", "--k", min=1, max=1000, help="Documents retrieved per query"),
    run_file: Optional[Path] = typer.Option(None, "--run-file", help="Where to write the TREC run "
                                            "[default: <index>/runs/<dataset>-<split>-<mode>.trec]"),
    dtype: str = DtypeOpt,
    rerank: Optional[str] = RerankOpt,
    rerank_depth: Optional[int] = typer.Option(None, "--rerank-depth", min=1, max=1000,
                                               help="First-stage chunks the reranker scores per query [100]; "
                                                    "documents below it follow in first-stage order"),
    rerank_base: Optional[str] = RerankBaseOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Ingest a BEIR corpus (reused when unchanged), run its judged queries, report nDCG@10, Recall@100, MRR@10, MAP@100."""
    from ..identity import TEXT_ONLY
    from ..eval import BeirError, evaluate, load_beir
    from ..ingest.report import IngestOptions
    from ..layout import default_index_dir
    from ..search import MODES

    dtype = parse_dtype(dtype)
    if mode not in MODES:
        fail(f"--mode must be one of {', '.join(MODES)}, not {mode!r}", 2)
    check_index_type(index_type)
    check_rerank_options(rerank, rerank_depth=rerank_depth, rerank_base=rerank_base)
    try:
        data = load_beir(beir_dir, split)
    except BeirError as exc:
        fail(str(exc), 2)
    exists = index is not None and (index / "meta.sqlite").is_file()
    if model is None and not exists:
        model = TEXT_ONLY if mode == "bm25" else (os.environ.get("LLARA_SEARCH_MODEL") or None)
    if index is None:
        index = default_index_dir().parent / "eval" / f"{data.name}-{_model_slug(model)}"
    check_new_index(index, db_url, model, None, dtype)
    engine = open_engine(index, db_url, create=True, model=model, vector_db=vector_db, dtype=dtype)
    reranker = engine.reranker(rerank, base=rerank_base) if rerank else None  # a bad reranker fails before ingesting
    opts = IngestOptions(index_type=index_type, batch_size=batch_size)
    try:
        with (nullcontext() if as_json or not err.is_terminal else IngestProgress()) as progress:
            report = engine.ingest_records(data.corpus(), f"beir:{data.name}", model=model, chunk_tokens=chunk_tokens,
                                           options=opts, progress=progress,
                                           expected=_count_lines(data.root / "corpus.jsonl"))
        result = evaluate(engine, data, mode=mode, k=k, run_file=run_file, reranker=reranker,
                          rerank_depth=rerank_depth)
    except BeirError as exc:
        fail(str(exc))
    result.update(split=split, index=str(engine.paths.root), documents=report.documents,
                  chunks=report.chunks_total, documents_ingested=report.files_new + report.files_changed,
                  chunks_encoded=report.chunks_encoded, memory=report.memory, estimate=report.estimate,
                  index_warnings=report.index_warnings)
    if as_json:
        print_json(result)
        return
    t = Table(title=f"{data.name} ({split}, {result['queries']} queries) · {mode}")
    rr = result.get("rerank")
    if rr:
        t.add_column("stage")
    for col in ("nDCG@10", "Recall@100", "MRR@10", "MAP@100", "ms/query"):
        t.add_column(col, justify="right")
    metrics = ("ndcg@10", "recall@100", "mrr@10", "map@100")
    t.add_row(*([f"first stage ({mode})"] if rr else []), *(f"{result[m]:.4f}" for m in metrics),
              f"{result['ms_per_query']:.1f}")
    if rr:
        t.add_row(f"re-ranked top {rr['depth']} ({Path(rr['model']).name})", *(f"{rr[m]:.4f}" for m in metrics),
                  f"+{rr['ms_per_query']:.1f}")
        t.add_row("change", *(f"{rr['delta'][m]:+.4f}" for m in metrics), "")
    out.print(t)
    out.print(f"[dim]run file: {term.markup(result['run_file'])} · index: {term.markup(result['index'])} · "
              f"{result['documents']} documents, "
              f"{result['chunks']} chunks ({result['chunks_encoded']} encoded now)[/]")
    if rr:
        out.print(f"[dim]re-ranked run file: {term.markup(rr['run_file'])}[/]")
    for w in result["index_warnings"]:
        out.print(Text(f"warning: {w}", style="yellow"))


def _count_lines(path: Path) -> int:
    """Records in a JSONL file (for the encode forecast): counted in 1 MiB blocks, about a second per GB."""
    n = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            n += block.count(b"\n")
    return n


def _model_slug(model: str | None) -> str:
    import hashlib

    from ..identity import TEXT_ONLY, model_identity

    if model == TEXT_ONLY:
        return "bm25"
    name = model_identity(model) if model else "default"
    tail = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).name or name).strip("-")
    return f"{tail}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
