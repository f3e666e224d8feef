"""`ingest`, `watch` and `delete`: the commands that change which documents an index holds."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .. import report_view
from .. import terminal as term

from .common import (DbUrlOpt, DtypeOpt, ForceOpt, IndexOpt, IngestProgress, JsonOpt, VectorDbOpt, check_index_type,
                     check_new_index, check_switch, err, fail, guard, open_engine, out, parse_dtype, print_json,
                     with_encode_pool)


@guard
def ingest(
    paths: List[Path] = typer.Argument(..., help="Files or folders to ingest"),
    index: Optional[Path] = IndexOpt,
    db_url: Optional[str] = DbUrlOpt,
    model: Optional[str] = typer.Option(None, "--model", help="HF id or local folder [default: $LLARA_SEARCH_MODEL "
                                        "or BAAI/LLARA-passage]; recorded in the index when it is created"),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="peft LoRA folder merged into the model"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Most texts per encoder batch"),
    chunk_tokens: Optional[int] = typer.Option(None, "--chunk-tokens", min=8, help="Token budget of a chunk [256]"),
    include: List[str] = typer.Option([], "--include", help="Only files matching this glob (repeatable)"),
    exclude: List[str] = typer.Option([], "--exclude", help="Skip files matching this glob (repeatable)"),
    index_type: Optional[str] = typer.Option(None, "--index-type", help="auto | flat | ivfpq; Milvus: auto | flat | "
                                             "ivf_flat | hnsw | ivfpq | diskann [auto]"),
    index_factory: Optional[str] = typer.Option(None, "--index-factory", help="Expert: a FAISS factory string "
                                                "({nlist} is filled in)"),
    vector_db: Optional[str] = VectorDbOpt,
    no_delete: bool = typer.Option(False, "--no-delete", help="Keep documents whose files are gone"),
    hidden: bool = typer.Option(False, "--hidden", help="Also read hidden files and folders"),
    follow_symlinks: bool = typer.Option(False, "--follow-symlinks", help="Also read symlinks that lead out of the "
                                         "folders given (skipped and listed otherwise)"),
    max_file_mb: float = typer.Option(20.0, "--max-file-mb", help="Larger files are reported and skipped"),
    wait: bool = typer.Option(False, "--wait", help="Wait for another ingest holding the index instead of failing"),
    force: bool = ForceOpt,
    dtype: str = DtypeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Parse, chunk, encode and store files; only new and changed files are encoded."""
    dtype, opts = _checked(paths, dtype, include=include, exclude=exclude, hidden=hidden,
                           follow_symlinks=follow_symlinks, delete_missing=not no_delete, max_file_mb=max_file_mb,
                           index_type=index_type, index_factory=index_factory, batch_size=batch_size)
    memory = check_new_index(index, db_url, model, adapter, dtype)

    def run(pool, device):
        engine = open_engine(index, db_url, create=True, model=model, vector_db=vector_db, dtype=dtype)
        engine.pool, engine.device = pool, device
        if adapter is not None and engine.info.get("adapter") != str(adapter.resolve()):
            check_switch(adapter, force)
        with (nullcontext() if as_json or not err.is_terminal else IngestProgress()) as progress:
            return engine.ingest(paths, model=model, adapter=str(adapter) if adapter else None,
                                 chunk_tokens=chunk_tokens, options=opts, wait=wait, progress=progress)

    report = with_encode_pool(run)  # a first ingest that fails removes the folder it made (writing.first_write)
    if report.memory is None and memory is not None:
        report.memory = memory.to_dict()
    if as_json:
        print_json(report.to_dict())
    else:
        _ingest_table(report)
    if report.files_failed:  # what succeeded is committed; a script learns that some files could not be read
        raise typer.Exit(INGEST_FILES_FAILED)


INGEST_FILES_FAILED = 3  # `ingest` exit status when some files could not be read (the rest is committed)


def _checked(paths: List[Path], dtype: str, **options):
    """What `ingest` and `watch` refuse before opening anything (a dtype or index type they do not know, a path
    that is not there), and their options for the ingest."""
    from ..ingest.report import IngestOptions

    dtype = parse_dtype(dtype)
    check_index_type(options.get("index_type"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        fail(f"no such file or folder: {missing[0]}", 2)
    return dtype, IngestOptions(**options)


@guard
def watch(
    paths: List[Path] = typer.Argument(..., help="Files or folders to keep in sync"),
    index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
    model: Optional[str] = typer.Option(None, "--model", help="As for ingest (recorded when the index is created)"),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="As for ingest (a new index only)"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Most texts per encoder batch"),
    chunk_tokens: Optional[int] = typer.Option(None, "--chunk-tokens", min=8, help="Token budget of a chunk [256]"),
    include: List[str] = typer.Option([], "--include", help="Only files matching this glob (repeatable)"),
    exclude: List[str] = typer.Option([], "--exclude", help="Skip files matching this glob (repeatable)"),
    index_type: Optional[str] = typer.Option(None, "--index-type", help="As for ingest"),
    index_factory: Optional[str] = typer.Option(None, "--index-factory", help="As for ingest"),
    vector_db: Optional[str] = VectorDbOpt,
    no_delete: bool = typer.Option(False, "--no-delete", help="Keep documents whose files are gone"),
    hidden: bool = typer.Option(False, "--hidden", help="Also read hidden files and folders"),
    follow_symlinks: bool = typer.Option(False, "--follow-symlinks", help="As for ingest"),
    max_file_mb: float = typer.Option(20.0, "--max-file-mb", help="Larger files are reported and skipped"),
    debounce: float = typer.Option(0.5, "--debounce", min=0, help="Seconds a file must stop changing before it is "
                                   "taken; a burst is taken once the folder is quiet this long"),
    poll: Optional[float] = typer.Option(None, "--poll", min=0.1, help="Poll every SECONDS instead of change events "
                                         "(network drives, Docker volumes); chosen on its own where events are not "
                                         "delivered"),
    exit_after: Optional[float] = typer.Option(None, "--exit-after", min=0, help="Stop after SECONDS (scripts)"),
    dtype: str = DtypeOpt, as_json: bool = typer.Option(False, "--json", help="One JSON object per line and event"),
) -> None:
    """Keep the index in sync with folders: catch up, then one generation per settled batch of changes."""
    from ..watch import WatchSettings
    from ..watch.command import run_watch

    dtype, opts = _checked(paths, dtype, include=include, exclude=exclude, hidden=hidden,
                           follow_symlinks=follow_symlinks, delete_missing=not no_delete, max_file_mb=max_file_mb,
                           index_type=index_type, index_factory=index_factory, batch_size=batch_size)
    engine = open_engine(index, db_url, create=True, model=model, vector_db=vector_db, dtype=dtype)
    run_watch(engine, paths, opts, WatchSettings(debounce=debounce, poll=poll), model=model,
              adapter=str(adapter) if adapter else None, chunk_tokens=chunk_tokens, as_json=as_json,
              exit_after=exit_after, console=out)


def _ingest_table(r) -> None:
    t = Table(title=f"ingest → generation {r.generation} ({r.index_type})", show_header=True)
    for col in ("files seen", "new", "changed", "unchanged", "removed", "skipped", "failed"):
        t.add_column(col, justify="right")
    t.add_row(*map(str, (r.files_seen, r.files_new, r.files_changed, r.files_unchanged, r.files_removed,
                         r.files_skipped, len(r.files_failed))))
    out.print(t)
    if r.files_reparsed:
        out.print(f"{r.files_reparsed} unchanged files were read again by newer parsers (counted as changed); only "
                  "passages whose text changed were encoded", highlight=False)
    c = Table(show_header=True)
    for col in ("chunks added", "encoded", "removed", "total", "documents", "seconds"):
        c.add_column(col, justify="right")
    c.add_row(*map(str, (r.chunks_added, r.chunks_encoded, r.chunks_removed, r.chunks_total, r.documents,
                         f"{r.seconds:.1f}")))
    out.print(c)
    if r.stages:
        out.print("time per stage: " + ", ".join(f"{k} {v:.2f}s" for k, v in r.stages.items()), highlight=False)
    if getattr(r, "formats", None):
        out.print("documents per format: " + ", ".join(f"{k} {v}" for k, v in r.formats.items()), highlight=False)
    for line in report_view.skipped_and_failed(r):
        out.print(line)
    for w in r.index_warnings:
        out.print(term.text(f"warning: {w}", "yellow"))
    warnings = getattr(r, "warnings", [])
    for w in warnings[:50]:
        out.print(term.text(f"warning: {w['path']}: {w['warning']}", "cyan"))
    if len(warnings) > 50:
        out.print(f"… and {len(warnings) - 50} more warnings (see --json)")


@guard
def delete(paths: List[str] = typer.Argument(..., help="Files or folders whose documents to remove"),
           index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt, as_json: bool = JsonOpt) -> None:
    """Remove documents from the database, the lexical index and the vector index."""
    r = open_engine(index, db_url).delete(paths)
    if as_json:
        print_json(r.to_dict())
    else:
        out.print(f"removed {r.files_removed} documents ({r.chunks_removed} chunks); generation {r.generation}")
    if r.files_removed == 0:
        err.print("[yellow]warning:[/] no indexed document matched")
