"""`status`, `reindex`, `compact`, `bench` and `doctor`: looking after an index."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table
from rich.text import Text

from .. import terminal as term
from .common import DbUrlOpt, IndexOpt, JsonOpt, check_index_type, guard, open_engine, out, print_json


@guard
def status(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
           files: bool = typer.Option(False, "--files", help="List the files the last ingests skipped or could not "
                                      "read, with the reason"),
           as_json: bool = JsonOpt) -> None:
    """Model fingerprint, counts, index type and generation, sizes on disk; skipped and failed files."""
    engine = open_engine(index, db_url)
    s = engine.status()
    if files:
        s["files"] = engine.store.file_notes()
    if as_json:
        print_json(s)
        return
    t = Table(show_header=False, title=term.text(f"index {s['index']}"))
    for key in ("model", "adapter", "fingerprint", "dim", "documents", "chunks_total", "generation", "index_type",
                "factory", "ntotal", "nprobe", "vector_db"):
        if key in s:
            t.add_row(key, term.text(s[key]))
    if s.get("passage_dtypes"):
        t.add_row("encoded in", ", ".join(s["passage_dtypes"]))
    for key, v in s["bytes_on_disk"].items():
        t.add_row(f"{key} on disk", f"{v / 2**20:.1f} MiB")
    if s.get("lexical"):
        lx = s["lexical"]
        t.add_row("lexical index", f"{lx['segments']} segments, {lx['chunks']} chunks, {lx['postings']} postings")
    if s.get("files_skipped_by_kind") or s.get("files_failed"):
        kinds = ", ".join(f"{k} {n}" for k, n in s["files_skipped_by_kind"].items())
        t.add_row("files left out", f"{s['files_failed']} failed; skipped: {kinds or 'none'} (status --files)")
    out.print(t)
    if s.get("watch"):
        from ..watch.state import describe_state

        out.print(term.text(describe_state(s["watch"])), highlight=False)
    if files:
        from ..report_view import file_notes

        for line in file_notes(s["files"]) or [Text("no file was skipped or failed")]:
            out.print(line)
    if s["reindex_hint"]:
        out.print(f"[yellow]hint:[/] {s['reindex_hint']}; run `llara-search reindex`")
    tuning = s.get("ann_tuning") or {}
    if tuning.get("recall@10") is not None:
        out.print(f"vector index tuned at build time: recall@10 {tuning['recall@10']:.3f} (target "
                  f"{tuning['target']:.2f}), nprobe {tuning['nprobe']}, exact re-rank of {tuning['rerank']}×k",
                  highlight=False)
    if tuning.get("warning"):
        out.print(Text(f"warning: {tuning['warning']}", style="yellow"))
    fusion = s.get("fusion") or {}
    if fusion.get("dense_mrr@10") is not None:
        out.print(f"hybrid: dense weight {fusion['dense_weight']:.2f} ({fusion['method']}); on {fusion['probes']} "
                  f"span probes of its chunks dense found MRR@10 {fusion['dense_mrr@10']:.2f}, BM25 "
                  f"{fusion['bm25_mrr@10']:.2f}", highlight=False)


@guard
def reindex(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
            index_type: Optional[str] = typer.Option(None, "--index-type", help="auto | flat | ivfpq; Milvus: auto | "
                                                     "flat | ivf_flat | hnsw | ivfpq | diskann"),
            index_factory: Optional[str] = typer.Option(None, "--index-factory"),
            vector_db: Optional[str] = typer.Option(None, "--vector-db", help="Move the index's vectors to this "
                                                    "vector database (faiss, a Milvus Lite .db file, or "
                                                    "http://host:19530), rebuilt from the stored vectors"),
            as_json: bool = JsonOpt) -> None:
    """Retrain and rebuild the vector index from stored vectors (no re-encoding); `--vector-db` moves it."""
    check_index_type(index_type)
    r = open_engine(index, db_url).reindex(index_type, index_factory, vector_db=vector_db)
    if as_json:
        print_json(r.to_dict())
    else:
        out.print(f"rebuilt as generation {r.generation} ({r.index_type}) over {r.chunks_total} chunks "
                  f"in {r.seconds:.1f}s")
        for w in r.index_warnings:
            out.print(Text(f"warning: {w}", style="yellow"))


@guard
def compact(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
            wait: bool = typer.Option(False, "--wait", help="Wait for a running ingest to finish"),
            grace: float = typer.Option(60.0, "--grace-seconds", min=0,
                                        help="Keep what the previous generation uses until the newest one is this "
                                             "old (a search in flight may be on it); 0 when nothing is searching"),
            as_json: bool = JsonOpt) -> None:
    """Give back the disk space of removed and re-encoded chunks: rows, old index files, dead stored vectors."""
    r = open_engine(index, db_url).compact(grace_s=grace, wait=wait)
    if as_json:
        print_json(r)
        return
    mb = r["bytes_freed"] / 2**20
    out.print(f"freed {mb:.1f} MiB: purged {r['chunk_rows_purged']} removed chunk rows, dropped "
              f"{r['vector_rows_dropped']} stored vector rows; generation {r['generation']}", highlight=False)
    if r["kept_previous_generation"]:
        out.print(f"kept what the previous generation uses: the newest is younger than {grace:g} s and a search may "
                  "still be on the one before; run compact again later", style="dim")


@guard
def bench(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
          queries: int = typer.Option(200, "--queries", min=1, help="Number of benchmark queries"),
          as_json: bool = JsonOpt) -> None:
    """recall@10 of ANN + re-rank against exact search over the stored vectors; latency; RAM per vector."""
    r = open_engine(index, db_url).bench(queries)
    if as_json:
        print_json(r)
        return
    t = Table(show_header=False, title="bench")
    for key, v in r.items():
        if key != "warning":
            t.add_row(key, str(v))
    out.print(t)
    if r.get("warning"):
        out.print(Text(f"warning: {r['warning']}", style="yellow"))


@guard
def doctor(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
           repair: bool = typer.Option(False, "--repair", help="Rebuild the lexical index and the vector index from "
                                       "what is stored; quarantine (never delete) what cannot be explained"),
           wait: bool = typer.Option(False, "--wait", help="With --repair: wait for a running ingest to finish"),
           as_json: bool = JsonOpt) -> None:
    """Check that database rows, the lexical index, stored vectors and the index generation agree; exit 1 if not."""
    r = open_engine(index, db_url).doctor(repair=repair, wait=wait)
    if as_json:
        print_json(r)
    else:
        for f in r["problems"]:
            out.print(term.text(f"problem [{f['check']}]: {f['detail']}", "red"))
            out.print(term.text(f"  --repair: {f['repair']}" if f["repair"] else "  needs you: see the message above",
                                "dim"))
        for f in r["warnings"]:
            out.print(term.text(f"warning [{f['check']}]: {f['detail']}", "yellow"))
        for line in r["repaired"]:
            out.print(term.text(f"repaired: {line}", "green"))
        facts = ", ".join(f"{k} {v}" for k, v in r["checked"].items())
        out.print(f"{'[green]ok[/]' if r['ok'] else '[red]not ok[/]'}: generation {r['generation']}; {facts}",
                  highlight=False)
    if not r["ok"]:
        raise typer.Exit(1)
