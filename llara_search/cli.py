"""Command line: typer commands over `Engine`, rich output for people, `--json` for scripts.

Every failure a user can cause ends as one line on stderr starting with "error:" and a non-zero exit code.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from contextlib import nullcontext
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Semantic search over your documents with LLaRA dense retrieval.")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

IndexOpt = typer.Option(None, "--index", help="Index folder [default: $LLARA_SEARCH_INDEX or ./indexes/default]")
DbUrlOpt = typer.Option(None, "--db-url", help="SQLAlchemy URL of the metadata database [default: <index>/meta.sqlite]")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object (for scripts)")


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def _guard(fn):
    """Turn every expected failure into one clear line (no traceback) and a non-zero exit."""
    from functools import wraps

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from .engine import EngineError
        from .layout import IndexLockedError
        from .search import EmptyIndexError
        from .store.db import StoreError

        try:
            return fn(*args, **kwargs)
        except (EngineError, StoreError, IndexLockedError, EmptyIndexError) as exc:
            _fail(str(exc))
        except KeyboardInterrupt:
            _fail("interrupted; committed batches are kept and a re-run continues where this one stopped", 130)
        except (OSError, ValueError, FloatingPointError) as exc:
            _fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    return wrapper


def _open(index, db_url, *, create=False, model=None, show_progress=False):
    from .engine import Engine

    return Engine.open(index, db_url=db_url, model=model, create=create, show_progress=show_progress)


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


@app.callback()
def _root() -> None:
    """llara-search: ingest a folder, query it, adapt the encoder, serve top-k over HTTP."""
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)


# ---------------------------------------------------------------------------------------------------- ingest
@app.command()
@_guard
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
    index_type: Optional[str] = typer.Option(None, "--index-type", help="auto | flat | ivfpq [auto]"),
    index_factory: Optional[str] = typer.Option(None, "--index-factory", help="Expert: a FAISS factory string "
                                                "({nlist} is filled in)"),
    no_delete: bool = typer.Option(False, "--no-delete", help="Keep documents whose files are gone"),
    hidden: bool = typer.Option(False, "--hidden", help="Also read hidden files and folders"),
    max_file_mb: float = typer.Option(20.0, "--max-file-mb", help="Larger files are reported and skipped"),
    wait: bool = typer.Option(False, "--wait", help="Wait for another ingest holding the index instead of failing"),
    as_json: bool = JsonOpt,
) -> None:
    """Parse, chunk, encode and store files; only new and changed files are encoded."""
    from .index import INDEX_TYPES
    from .ingest.pipeline import IngestOptions

    if index_type is not None and index_type not in INDEX_TYPES:
        _fail(f"--index-type must be one of {', '.join(INDEX_TYPES)}, not {index_type!r}", 2)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        _fail(f"no such file or folder: {missing[0]}", 2)
    opts = IngestOptions(include=include, exclude=exclude, hidden=hidden, delete_missing=not no_delete,
                         max_file_mb=max_file_mb, index_type=index_type, index_factory=index_factory,
                         batch_size=batch_size)
    engine = _open(index, db_url, create=True, model=model)
    with (nullcontext() if as_json or not err.is_terminal else _IngestProgress()) as progress:
        report = engine.ingest(paths, model=model, adapter=str(adapter) if adapter else None,
                               chunk_tokens=chunk_tokens, options=opts, wait=wait, progress=progress)
    ok_files = report.files_new + report.files_changed + report.files_unchanged
    if as_json:
        _print_json(report.to_dict())
    else:
        _ingest_table(report)
    if report.files_failed and ok_files == 0:
        raise typer.Exit(1)


class _IngestProgress:
    """Rich progress on stderr: files parsed (with ETA) and chunks encoded (with rate)."""

    def __init__(self) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                            console=err, transient=True)
        self.parse = self.bar.add_task("files parsed", total=None, rate="")
        self.encode = self.bar.add_task("chunks encoded", total=None, rate="")

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage == "parse":
            self.bar.update(self.parse, completed=done, total=total or None)
        else:
            task = self.bar.tasks[self.encode]
            rate = done / task.elapsed if task.elapsed else 0.0
            self.bar.update(self.encode, completed=done, rate=f"{rate:.1f} chunks/s")

    def __enter__(self) -> "_IngestProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()


def _ingest_table(r) -> None:
    t = Table(title=f"ingest → generation {r.generation} ({r.index_type})", show_header=True)
    for col in ("files seen", "new", "changed", "unchanged", "removed", "skipped", "failed"):
        t.add_column(col, justify="right")
    t.add_row(*map(str, (r.files_seen, r.files_new, r.files_changed, r.files_unchanged, r.files_removed,
                         r.files_skipped, len(r.files_failed))))
    out.print(t)
    c = Table(show_header=True)
    for col in ("chunks added", "encoded", "removed", "total", "documents", "seconds"):
        c.add_column(col, justify="right")
    c.add_row(*map(str, (r.chunks_added, r.chunks_encoded, r.chunks_removed, r.chunks_total, r.documents,
                         f"{r.seconds:.1f}")))
    out.print(c)
    if r.stages:
        out.print("time per stage: " + ", ".join(f"{k} {v:.2f}s" for k, v in r.stages.items()), highlight=False)
    for f in r.files_failed[:50]:
        out.print(Text(f"failed: {f['path']}: {f['error']}", style="yellow"))
    if len(r.files_failed) > 50:
        out.print(f"… and {len(r.files_failed) - 50} more failures (see --json)")


# ---------------------------------------------------------------------------------------------------- query
@app.command()
@_guard
def query(
    text: str = typer.Argument(..., help="What you are looking for"),
    index: Optional[Path] = IndexOpt,
    db_url: Optional[str] = DbUrlOpt,
    k: int = typer.Option(10, "-k", "--k", help="Number of results (1-1000)"),
    mode: str = typer.Option("dense", "--mode", help="dense | bm25 | hybrid"),
    where: Optional[str] = typer.Option(None, "--where", help="Only documents whose path matches this glob, "
                                        "e.g. 'api/*' or '*.pdf'"),
    as_json: bool = JsonOpt,
) -> None:
    """Search the index: the query is encoded with the EBAR prompt by the index's own model."""
    import time

    engine = _open(index, db_url)
    if mode != "bm25":
        engine.encoder  # load the model outside the timed search  # noqa: B018
    t = time.perf_counter()
    results = engine.search(text, k=k, mode=mode, where=where)
    took = (time.perf_counter() - t) * 1000
    if as_json:
        _print_json({"query": text, "mode": mode, "took_ms": round(took, 2),
                     "results": [_result_json(r) for r in results]})
        return
    if not results:
        out.print("no results")
        return
    terms = [w for w in re.findall(r"\w+", text.lower()) if len(w) > 2]
    for r in results:
        where_in = _span(r)
        head = Text(f"{r.rank:>3}. ", style="bold")
        head.append(f"{r.score:.4f}  ", style="cyan")
        head.append(_display_path(r.path) + where_in, style="green")
        out.print(head)
        if r.heading:
            out.print(Text(f"     {r.heading}", style="magenta"))
        out.print(_snippet(r.text, terms))
    out.print(f"[dim]{len(results)} results in {took:.0f} ms ({mode})[/]")


def _result_json(r) -> dict:
    d = r.to_dict()
    d.pop("doc_key", None)
    return d


def _display_path(path: str) -> str:
    try:
        rel = os.path.relpath(path)
        return rel if not rel.startswith("../../..") else path
    except ValueError:
        return path


def _span(r) -> str:
    if r.page is not None:
        return f" (page {r.page})"
    if r.start_line is not None:
        return f":{r.start_line}-{r.end_line}"
    return ""


def _snippet(text: str, terms: list[str], width: int = 300) -> Text:
    flat = " ".join(text.split())
    low = flat.lower()
    first = min([low.find(t) for t in terms if low.find(t) >= 0] or [0])
    start = max(0, first - width // 3)
    piece = ("…" if start else "") + flat[start:start + width] + ("…" if start + width < len(flat) else "")
    t = Text("     " + piece)
    for term in terms:
        t.highlight_words([term], style="bold yellow", case_sensitive=False)
    return t


# ---------------------------------------------------------------------------------------------------- eval
@app.command("eval")
@_guard
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
    chunk_tokens: Optional[int] = typer.Option(None, "--chunk-tokens", min=8, help="Token budget of a chunk [256]"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="Most texts per encoder batch"),
    k: int = typer.Option(100, "-k", "--k", min=1, max=1000, help="Documents retrieved per query"),
    run_file: Optional[Path] = typer.Option(None, "--run-file", help="Where to write the TREC run "
                                            "[default: <index>/runs/<dataset>-<split>-<mode>.trec]"),
    as_json: bool = JsonOpt,
) -> None:
    """Ingest a BEIR corpus (reused when unchanged), run its judged queries, report nDCG@10, Recall@100, MRR@10, MAP@100."""
    from .engine import TEXT_ONLY
    from .eval import BeirError, evaluate, load_beir
    from .index import INDEX_TYPES
    from .ingest.pipeline import IngestOptions
    from .layout import default_index_dir
    from .search import MODES

    if mode not in MODES:
        _fail(f"--mode must be one of {', '.join(MODES)}, not {mode!r}", 2)
    if index_type is not None and index_type not in INDEX_TYPES:
        _fail(f"--index-type must be one of {', '.join(INDEX_TYPES)}, not {index_type!r}", 2)
    try:
        data = load_beir(beir_dir, split)
    except BeirError as exc:
        _fail(str(exc), 2)
    exists = index is not None and (index / "meta.sqlite").is_file()
    if model is None and not exists:
        model = TEXT_ONLY if mode == "bm25" else (os.environ.get("LLARA_SEARCH_MODEL") or None)
    if index is None:
        index = default_index_dir().parent / "eval" / f"{data.name}-{_model_slug(model)}"
    engine = _open(index, db_url, create=True, model=model)
    opts = IngestOptions(index_type=index_type, batch_size=batch_size)
    try:
        with (nullcontext() if as_json or not err.is_terminal else _IngestProgress()) as progress:
            report = engine.ingest_records(data.corpus(), f"beir:{data.name}", model=model, chunk_tokens=chunk_tokens,
                                           options=opts, progress=progress)
        result = evaluate(engine, data, mode=mode, k=k, run_file=run_file)
    except BeirError as exc:
        _fail(str(exc))
    result.update(split=split, index=str(engine.paths.root), documents=report.documents,
                  chunks=report.chunks_total, documents_ingested=report.files_new + report.files_changed,
                  chunks_encoded=report.chunks_encoded)
    if as_json:
        _print_json(result)
        return
    t = Table(title=f"{data.name} ({split}, {result['queries']} queries) · {mode}")
    for col in ("nDCG@10", "Recall@100", "MRR@10", "MAP@100", "ms/query"):
        t.add_column(col, justify="right")
    t.add_row(*(f"{result[m]:.4f}" for m in ("ndcg@10", "recall@100", "mrr@10", "map@100")),
              f"{result['ms_per_query']:.1f}")
    out.print(t)
    out.print(f"[dim]run file: {result['run_file']} · index: {result['index']} · {result['documents']} documents, "
              f"{result['chunks']} chunks ({result['chunks_encoded']} encoded now)[/]")


def _model_slug(model: str | None) -> str:
    import hashlib

    from .engine import TEXT_ONLY, model_identity

    if model == TEXT_ONLY:
        return "bm25"
    name = model_identity(model) if model else "default"
    tail = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).name or name).strip("-")
    return f"{tail}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


# ---------------------------------------------------------------------------------------------------- status etc.
@app.command()
@_guard
def status(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt, as_json: bool = JsonOpt) -> None:
    """Model fingerprint, counts, index type and generation, sizes on disk."""
    s = _open(index, db_url).status()
    if as_json:
        _print_json(s)
        return
    t = Table(show_header=False, title=f"index {s['index']}")
    for key in ("model", "adapter", "fingerprint", "dim", "documents", "chunks_total", "generation", "index_type",
                "factory", "ntotal", "nprobe"):
        t.add_row(key, str(s[key]))
    for key, v in s["bytes_on_disk"].items():
        t.add_row(f"{key} on disk", f"{v / 2**20:.1f} MiB")
    out.print(t)
    if s["reindex_hint"]:
        out.print(f"[yellow]hint:[/] {s['reindex_hint']}; run `llara-search reindex`")


@app.command()
@_guard
def delete(paths: List[str] = typer.Argument(..., help="Files or folders whose documents to remove"),
           index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt, as_json: bool = JsonOpt) -> None:
    """Remove documents from the database, the FTS table and the vector index."""
    r = _open(index, db_url).delete(paths)
    if as_json:
        _print_json(r.to_dict())
    else:
        out.print(f"removed {r.files_removed} documents ({r.chunks_removed} chunks); generation {r.generation}")
    if r.files_removed == 0:
        err.print("[yellow]warning:[/] no indexed document matched")


@app.command()
@_guard
def reindex(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
            index_type: Optional[str] = typer.Option(None, "--index-type", help="auto | flat | ivfpq"),
            index_factory: Optional[str] = typer.Option(None, "--index-factory"),
            as_json: bool = JsonOpt) -> None:
    """Retrain and rebuild the vector index from stored vectors (no re-encoding)."""
    from .index import INDEX_TYPES

    if index_type is not None and index_type not in INDEX_TYPES:
        _fail(f"--index-type must be one of {', '.join(INDEX_TYPES)}, not {index_type!r}", 2)
    r = _open(index, db_url).reindex(index_type, index_factory)
    if as_json:
        _print_json(r.to_dict())
    else:
        out.print(f"rebuilt as generation {r.generation} ({r.index_type}) over {r.chunks_total} chunks "
                  f"in {r.seconds:.1f}s")


@app.command()
@_guard
def bench(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
          queries: int = typer.Option(200, "--queries", min=1, help="Number of benchmark queries"),
          as_json: bool = JsonOpt) -> None:
    """recall@10 of ANN + re-rank against exact search over the stored vectors; latency; RAM per vector."""
    r = _open(index, db_url).bench(queries)
    if as_json:
        _print_json(r)
        return
    t = Table(show_header=False, title="bench")
    for key, v in r.items():
        t.add_row(key, str(v))
    out.print(t)


@app.command()
@_guard
def serve(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
          host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port"),
          token: Optional[str] = typer.Option(None, "--token", envvar="LLARA_SEARCH_TOKEN",
                                              help="Bearer token required on every route but /healthz")) -> None:
    """Serve top-k search over HTTP (FastAPI; OpenAPI docs at /docs)."""
    from .serve import is_loopback, run_server

    if not token and not is_loopback(host):
        _fail(f"refusing to bind {host} without a token: pass --token or set LLARA_SEARCH_TOKEN", 2)
    engine = _open(index, db_url)
    run_server(engine, host=host, port=port, token=token)


def main() -> None:
    app()
