"""Command line: typer commands over `Engine`, rich output for people, `--json` for scripts.

Every failure a user can cause ends as one line on stderr starting with "error:" and a non-zero exit code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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

ForceOpt = typer.Option(False, "--force", help="Switch to an adapter or model even when its retrain verdict was "
                        "'worse'")


IndexOpt = typer.Option(None, "--index", help="Index folder [default: $LLARA_SEARCH_INDEX or ./indexes/default]")
DbUrlOpt = typer.Option(None, "--db-url", help="SQLAlchemy URL of the metadata database [default: <index>/meta.sqlite]")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object (for scripts)")
VectorDbOpt = typer.Option(None, "--vector-db", help="Where a new index keeps its vectors: faiss (default), a Milvus "
                           "Lite file (./vectors.milvus.db) or a Milvus server (http://host:19530; credentials from "
                           "MILVUS_TOKEN); recorded with the index [default: $LLARA_SEARCH_VECTOR_DB or faiss]")
DtypeOpt = typer.Option("auto", "--dtype", envvar="LLARA_SEARCH_DTYPE", metavar="DTYPE",
                        help="Precision the model is loaded and run in: auto (bfloat16 on CUDA, float32 on the CPU) "
                             "| float32 | bfloat16 (half the memory) | float16")
RerankOpt = typer.Option(None, "--rerank", help="Re-rank the first stage's top candidates with this cross-encoder "
                         "(e.g. BAAI/bge-reranker-v2-m3) or RankLLaMA adapter; HF id or local folder")
RerankDepthOpt = typer.Option(None, "--rerank-depth", help="First-stage candidates the reranker scores [100, at "
                              "least k]")
RerankBaseOpt = typer.Option(None, "--rerank-base", help="Base model of a reranker LoRA adapter, when not the one "
                             "its adapter_config.json names (e.g. a local Llama-2-7b folder)")
RerankNormalizeOpt = typer.Option(False, "--rerank-normalize", help="Report the reranker's sigmoid (0-1) instead "
                                  "of its logit, as FlagReranker's normalize=True (same order)")


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


_EXPECTED = {"llara_search.engine": "EngineError", "llara_search.store.db": "StoreError",
             "llara_search.layout": "IndexLockedError", "llara_search.search": "EmptyIndexError",
             "llara_search.index.generations": "IndexFileError", "llara_search.client": "LlaraSearchError",
             "llara_search.index.backend": "VectorDBError"}


def _expected_errors() -> tuple[type, ...]:
    """The wrong-use error classes of the modules imported so far: one never imported cannot have raised, and
    importing the engine just to name its error would cost the instant query path a second."""
    return tuple(getattr(sys.modules[m], name) for m, name in _EXPECTED.items() if m in sys.modules)


def _guard(fn):
    """Turn every expected failure into one clear line (no traceback) and a non-zero exit."""
    from functools import wraps

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from .notices import listening

        try:
            with listening(_json_notice if kwargs.get("as_json") else _print_notice):
                return fn(*args, **kwargs)
        except MemoryError as exc:  # the memory check's refusal (InsufficientMemoryError), or a real one
            _fail(str(exc).splitlines()[0] if str(exc) else "out of memory")
        except RuntimeError as exc:
            if isinstance(exc, _expected_errors()):
                _fail(str(exc))
            trainer = sys.modules.get("llara_search.train.trainer")  # not imported (torch!) unless training ran
            if trainer is not None and isinstance(exc, trainer.TrainingInterrupted):
                _fail(str(exc), 130)
            raise
        except KeyboardInterrupt:
            _fail("interrupted; committed batches are kept and a re-run continues where this one stopped", 130)
        except (OSError, ValueError, FloatingPointError) as exc:
            _fail(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    return wrapper


def _open(index, db_url, *, create=False, model=None, show_progress=False, vector_db=None, dtype=None):
    from .engine import Engine

    return Engine.open(index, db_url=db_url, model=model, create=create, show_progress=show_progress,
                       vector_db=vector_db, dtype=dtype)


def _index_type_ok(index_type) -> None:
    from .index.backend import ALL_INDEX_TYPES, FAISS_INDEX_TYPES

    if index_type is not None and index_type not in ALL_INDEX_TYPES:
        extra = ", ".join(t for t in ALL_INDEX_TYPES if t not in FAISS_INDEX_TYPES)
        _fail(f"--index-type must be one of {', '.join(FAISS_INDEX_TYPES)} (Milvus also takes {extra}), not "
              f"{index_type!r}", 2)


def _print_notice(event: str, message: str, fields: dict) -> None:
    """What is about to happen (a download, a long encode), on stderr for people."""
    err.print(Text(message, style="cyan"))


def _json_notice(event: str, message: str, fields: dict) -> None:
    """The same under --json: one JSON line on stderr, as it happens (stdout keeps the one result object)."""
    sys.stderr.write(json.dumps({"event": event, "message": message, **fields}, default=str) + "\n")
    sys.stderr.flush()


def _dtype(value: str | None) -> str | None:
    """--dtype checked before anything else runs; None for auto (the engine's default)."""
    from .encoder.memory import normalize_dtype

    try:
        name = normalize_dtype(value)
    except ValueError as exc:
        _fail(f"--dtype: {exc}", 2)
    return None if name == "auto" else name


def _check_new_index(index, db_url, model, adapter, dtype):
    """The memory check of a first ingest, made before the index folder or its database is created: a model that
    cannot fit leaves nothing behind. An existing index is checked by the engine before it records anything."""
    from .distributed import launched
    from .engine import check_encoder_memory
    from .layout import IndexPaths, default_index_dir

    paths = IndexPaths(Path(index) if index else default_index_dir(), db_url)
    if paths.exists() or launched()[0] > 0:  # torchrun workers check their own device when they load
        return None
    return check_encoder_memory(model, adapter=str(adapter) if adapter else None, dtype=dtype)


def _new_index_folder(index, db_url) -> Path | None:
    """The folder a first ingest is about to create (its database inside it), None when it exists already."""
    from .layout import default_index_dir

    root = Path(index) if index else default_index_dir()
    return None if db_url is not None or root.exists() else root


def _remove_if_unused(root: Path) -> None:
    """A first ingest that failed before it committed a chunk (the model would not load, say) leaves no folder
    behind: the next `ingest` starts as fresh as this one did. Once chunks are committed the folder holds work
    that a re-run continues, and stays; so does a folder another ingest started meanwhile (it holds the lock)."""
    from .layout import IndexLockedError, IndexPaths, WriteLock

    paths = IndexPaths(root)
    if not root.is_dir():
        return
    try:
        with WriteLock(paths.lock):
            if not _has_chunks(paths):
                shutil.rmtree(root, ignore_errors=True)
    except IndexLockedError:
        return


def _has_chunks(paths) -> bool:
    from .store import Store

    try:
        store = Store(paths.db_url, create=False)
    except Exception:  # noqa: BLE001 - no readable database: nothing was committed either
        return False
    try:
        return len(store.chunk_ids()) > 0
    finally:
        store.close()


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
    index_type: Optional[str] = typer.Option(None, "--index-type", help="auto | flat | ivfpq; Milvus: auto | flat | "
                                             "ivf_flat | hnsw | ivfpq | diskann [auto]"),
    index_factory: Optional[str] = typer.Option(None, "--index-factory", help="Expert: a FAISS factory string "
                                                "({nlist} is filled in)"),
    vector_db: Optional[str] = VectorDbOpt,
    no_delete: bool = typer.Option(False, "--no-delete", help="Keep documents whose files are gone"),
    hidden: bool = typer.Option(False, "--hidden", help="Also read hidden files and folders"),
    max_file_mb: float = typer.Option(20.0, "--max-file-mb", help="Larger files are reported and skipped"),
    wait: bool = typer.Option(False, "--wait", help="Wait for another ingest holding the index instead of failing"),
    force: bool = ForceOpt,
    dtype: str = DtypeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Parse, chunk, encode and store files; only new and changed files are encoded."""
    from .ingest.pipeline import IngestOptions

    dtype = _dtype(dtype)
    _index_type_ok(index_type)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        _fail(f"no such file or folder: {missing[0]}", 2)
    opts = IngestOptions(include=include, exclude=exclude, hidden=hidden, delete_missing=not no_delete,
                         max_file_mb=max_file_mb, index_type=index_type, index_factory=index_factory,
                         batch_size=batch_size)
    memory = _check_new_index(index, db_url, model, adapter, dtype)
    new_folder = _new_index_folder(index, db_url)

    def run(pool, device):
        engine = _open(index, db_url, create=True, model=model, vector_db=vector_db, dtype=dtype)
        engine.pool, engine.device = pool, device
        if adapter is not None and engine.info.get("adapter") != str(adapter.resolve()):
            _check_switch(adapter, force)
        with (nullcontext() if as_json or not err.is_terminal else _IngestProgress()) as progress:
            return engine.ingest(paths, model=model, adapter=str(adapter) if adapter else None,
                                 chunk_tokens=chunk_tokens, options=opts, wait=wait, progress=progress)

    try:
        report = _with_encode_pool(run)
    except BaseException:
        if new_folder is not None:
            _remove_if_unused(new_folder)
        raise
    if report.memory is None and memory is not None:
        report.memory = memory.to_dict()
    ok_files = report.files_new + report.files_changed + report.files_unchanged
    if as_json:
        _print_json(report.to_dict())
    else:
        _ingest_table(report)
    if report.files_failed and ok_files == 0:
        raise typer.Exit(1)


def _with_encode_pool(body):
    """`body(pool, device)` on rank 0; under torchrun the other processes encode shares of its batches meanwhile
    (llara_search/distributed.py) and exit quietly when it is done. Single process: `body(None, None)`."""
    from .distributed import launched

    if launched()[1] == 1:
        return body(None, None)
    from .distributed import EncodePool, init, local_device, serve_encodes

    rank, world, local_rank = init()
    if rank > 0:
        serve_encodes(rank, world, local_rank)
        raise typer.Exit(0)
    pool = EncodePool(world)
    try:
        return body(pool, local_device(local_rank))
    finally:
        pool.stop()


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
            self.bar.update(self.encode, completed=done, total=max(total, done) if total else None,
                            rate=f"{rate:.1f} chunks/s")

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
    for f in r.files_failed[:50]:
        out.print(Text(f"failed: {f['path']}: {f['error']}", style="yellow"))
    for w in r.index_warnings:
        out.print(Text(f"warning: {w}", style="yellow"))
    if len(r.files_failed) > 50:
        out.print(f"… and {len(r.files_failed) - 50} more failures (see --json)")
    warnings = getattr(r, "warnings", [])
    for w in warnings[:50]:
        out.print(Text(f"warning: {w['path']}: {w['warning']}", style="cyan"))
    if len(warnings) > 50:
        out.print(f"… and {len(warnings) - 50} more warnings (see --json)")


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
    dtype: str = DtypeOpt,
    rerank: Optional[str] = RerankOpt,
    rerank_depth: Optional[int] = RerankDepthOpt,
    rerank_base: Optional[str] = RerankBaseOpt,
    rerank_normalize: bool = RerankNormalizeOpt,
    token: Optional[str] = typer.Option(None, "--token", envvar="LLARA_SEARCH_TOKEN", show_default=False,
                                        help="Token of a running `serve` for this index [default: "
                                             "$LLARA_SEARCH_TOKEN]"),
    all_copies: bool = typer.Option(False, "--all-copies", help="Show every copy of a passage that other files "
                                    "repeat (the same manual as html, pdf, man page) instead of naming them under "
                                    "the best one (also_in)"),
    local: bool = typer.Option(False, "--local", help="Search in this process even when a `serve` for this index "
                               "runs on this machine"),
    as_json: bool = JsonOpt,
) -> None:
    """Search the index: the query is encoded with the EBAR prompt by the index's own model. When a `serve` for the
    same index runs on this machine, it is asked instead (no model to load; same results)."""
    import time

    _check_rerank_options(rerank, rerank_depth=rerank_depth, rerank_base=rerank_base)
    dtype = _dtype(dtype)
    outcome, extra = None, {}
    # a reranker or a dtype is named by this command, not by the server: the search runs here (`serve --rerank`
    # re-ranks its own; the server's /info says its query dtype)
    forward = {"collapse": False} if all_copies else {}
    answered = None if local or rerank or dtype else _query_server(index, db_url, token, text, k=k, mode=mode,
                                                                   where=where, **forward)
    if answered is not None:
        results, took = answered
    else:
        engine = _open(index, db_url, dtype=dtype)
        reranker, depth = None, k
        if rerank:
            from .rerank import DEFAULT_DEPTH

            depth = engine.rerank_depth(k, max(DEFAULT_DEPTH, k) if rerank_depth is None else rerank_depth)
            reranker = engine.reranker(rerank, base=rerank_base, normalize=rerank_normalize)  # loaded untimed
        if mode != "bm25":
            engine.encoder  # load the model outside the timed search  # noqa: B018
            extra["dtype"] = str(engine.encoder.dtype).removeprefix("torch.")
        t = time.perf_counter()
        results = engine.search(text, k=depth, mode=mode, where=where, collapse=not all_copies)
        outcome = engine.rerank([text], [results], k, reranker)[0] if reranker is not None else None
        if outcome is not None:
            results = outcome.results
        took = (time.perf_counter() - t) * 1000
    if as_json:
        _print_json({"query": text, "mode": mode, "took_ms": round(took, 2), **extra,
                     **({"rerank": outcome.to_dict()} if outcome else {}),
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
        if r.first_stage_rank is not None:
            head.append(f"(first stage #{r.first_stage_rank}, {r.first_stage_score:.4f})  ", style="dim")
        head.append(_display_path(r.path) + where_in, style="green")
        out.print(head)
        if r.heading:
            out.print(Text(f"     {r.heading}", style="magenta"))
        if getattr(r, "also_in", None):  # near-copies of this passage in other files (other formats)
            out.print(Text("     also in: " + ", ".join(_display_path(p) for p in r.also_in), style="dim"))
        out.print(_snippet(r.text, terms))
    how = f"{mode}, re-ranked by {outcome.model} from {outcome.candidates}" if outcome else mode
    out.print(f"[dim]{len(results)} results in {took:.0f} ms ({how})[/]", highlight=False)


def _check_rerank_options(rerank: str | None, **given) -> None:
    """A re-ranking option without --rerank is a mistake worth one line, not something to ignore."""
    extra = [name for name, value in given.items() if value not in (None, False)]
    if extra and not rerank:
        _fail(f"--{extra[0].replace('_', '-')} needs --rerank MODEL", 2)


def _query_server(index, db_url, token, text: str, **search):
    """(results, took_ms) from the `serve` of this index on this machine, or None when there is none to ask (none
    running, a stale record, it went away, or it wants a token this process lacks), and the engine answers."""
    import time

    from .client import (AuthenticationError, Client, LlaraSearchError, RequestError, ServerUnavailable,
                         check_search_args)
    from .layout import default_index_dir
    from .server_record import find_server

    check_search_args([text], search["k"], search["mode"])  # the engine's errors, before deciding who answers
    rec = find_server(index or default_index_dir(), db_url)
    if rec is None:
        return None
    if rec.auth and not token:
        err.print(f"[dim]note: the server at {rec.url} for this index wants a token (--token or "
                  "$LLARA_SEARCH_TOKEN); searching in this process instead[/]", highlight=False)
        return None
    t = time.perf_counter()
    try:
        with Client(rec.url, token) as client:
            results = client.search(text, **search)
    except ServerUnavailable:
        return None
    except AuthenticationError as exc:
        raise AuthenticationError(f"{exc}, or pass --local to search without it") from None
    except RequestError as exc:
        if exc.status != 422:
            raise  # the engine's own refusal, in its words: the same line the local search prints
        return None  # a request the server's limits refuse (e.g. a very long query): the engine decides
    except LlaraSearchError as exc:  # the server failed (5xx): answer as if there were none
        err.print(f"[dim]note: {exc}; searching in this process instead[/]", highlight=False)
        return None
    return results, (time.perf_counter() - t) * 1000


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
    from .engine import TEXT_ONLY
    from .eval import BeirError, evaluate, load_beir
    from .ingest.pipeline import IngestOptions
    from .layout import default_index_dir
    from .search import MODES

    dtype = _dtype(dtype)
    if mode not in MODES:
        _fail(f"--mode must be one of {', '.join(MODES)}, not {mode!r}", 2)
    _index_type_ok(index_type)
    _check_rerank_options(rerank, rerank_depth=rerank_depth, rerank_base=rerank_base)
    try:
        data = load_beir(beir_dir, split)
    except BeirError as exc:
        _fail(str(exc), 2)
    exists = index is not None and (index / "meta.sqlite").is_file()
    if model is None and not exists:
        model = TEXT_ONLY if mode == "bm25" else (os.environ.get("LLARA_SEARCH_MODEL") or None)
    if index is None:
        index = default_index_dir().parent / "eval" / f"{data.name}-{_model_slug(model)}"
    _check_new_index(index, db_url, model, None, dtype)
    engine = _open(index, db_url, create=True, model=model, vector_db=vector_db, dtype=dtype)
    reranker = engine.reranker(rerank, base=rerank_base) if rerank else None  # a bad reranker fails before ingesting
    opts = IngestOptions(index_type=index_type, batch_size=batch_size)
    try:
        with (nullcontext() if as_json or not err.is_terminal else _IngestProgress()) as progress:
            report = engine.ingest_records(data.corpus(), f"beir:{data.name}", model=model, chunk_tokens=chunk_tokens,
                                           options=opts, progress=progress,
                                           expected=_count_lines(data.root / "corpus.jsonl"))
        result = evaluate(engine, data, mode=mode, k=k, run_file=run_file, reranker=reranker,
                          rerank_depth=rerank_depth)
    except BeirError as exc:
        _fail(str(exc))
    result.update(split=split, index=str(engine.paths.root), documents=report.documents,
                  chunks=report.chunks_total, documents_ingested=report.files_new + report.files_changed,
                  chunks_encoded=report.chunks_encoded, memory=report.memory, estimate=report.estimate,
                  index_warnings=report.index_warnings)
    if as_json:
        _print_json(result)
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
    out.print(f"[dim]run file: {result['run_file']} · index: {result['index']} · {result['documents']} documents, "
              f"{result['chunks']} chunks ({result['chunks_encoded']} encoded now)[/]")
    if rr:
        out.print(f"[dim]re-ranked run file: {rr['run_file']}[/]")
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

    from .engine import TEXT_ONLY, model_identity

    if model == TEXT_ONLY:
        return "bm25"
    name = model_identity(model) if model else "default"
    tail = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(name).name or name).strip("-")
    return f"{tail}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


# ---------------------------------------------------------------------------------------------------- training
LoraR = typer.Option(64, "--lora-r", min=1, help="LoRA rank")
LoraAlpha = typer.Option(16, "--lora-alpha", min=1, help="LoRA alpha")
LoraDropout = typer.Option(0.1, "--lora-dropout", min=0.0, max=0.9, help="LoRA dropout")
FullOpt = typer.Option(False, "--full", help="Train every weight and write a whole model (use it with --model); "
                       "for small or new models, which learn little through LoRA")
HeldOutOpt = typer.Option(0.1, "--heldout-share", min=0.0, max=0.9, help="Share of the documents kept out of "
                          "training to judge the new model on (0: no check)")
QueriesOpt = typer.Option(None, "--queries", help="Your own judged queries for the check: JSONL {query, pos: "
                          "[relevant passage texts]}")
KeepBestOpt = typer.Option(False, "--keep-best", help="Keep the checkpoint that scored best on the held-out check "
                           "(scored at every --save-every), not the last one")
LrOpt = typer.Option(None, "--lr", help="Peak learning rate [LoRA: 1e-4; --full: by model size, 1e-5 at 7B, up "
                     "to 2e-3 for a few million parameters]")


def _check_switch(folder, force: bool) -> None:
    """A model whose recorded retrain verdict is worse does not replace the current one without --force."""
    from .train.verdict import SwitchRefused, check_switch

    try:
        check_switch(folder, force)
    except SwitchRefused as exc:
        _fail(str(exc), 1)


def _train_config(output, base, task, **kw):
    from .train.trainer import TrainConfig, default_bow_weight, default_lr

    if kw.get("lr") is None:
        kw["lr"] = default_lr(base, kw.get("full", False))
    if "bow_weight" in kw and kw["bow_weight"] is None:
        kw["bow_weight"] = default_bow_weight(base, kw.get("full", False))
    return TrainConfig(output=Path(output), base=base, task=task, **kw)


def _train_dtype(value: str | None) -> str | None:
    dtype = _dtype(value)
    if dtype == "float16":
        _fail("--dtype float16 cannot train: its gradients underflow without loss scaling, which llara-search does "
              "not do; use bfloat16 (same memory) or float32", 2)
    return dtype


def _check_training(cfg) -> None:
    """The training memory check, before any output or side index is written (the trainer checks again)."""
    from .train.trainer import check_training_memory

    check_training_memory(cfg)


def _train_report(card: dict, output: Path, as_json: bool) -> None:
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only the first process reports
        return
    if as_json:
        _print_json({k: v for k, v in card.items() if k != "history"} | {"output": str(output)})
        return
    out.print(f"[bold]{card['task']}[/]: {card['steps']} steps, loss {card['loss_first']:.4f} → "
              f"{card['loss_last']:.4f}, {card['tokens_per_second']:.0f} tokens/s, {card['seconds']:.0f}s")
    out.print(f"adapter: {output} · card: {output / 'TRAINING.md'}")
    if card.get("verdict"):
        from .train.verdict import sentence

        out.print(Text(sentence(card["verdict"], output, bool(card.get("full")))))


@app.command()
@_guard
def train(
    output: Path = typer.Option(..., "--output", help="Folder for the adapter, checkpoints and training card"),
    index: Optional[Path] = typer.Option(None, "--index", help="Train on the chunks of this index"),
    corpus: List[Path] = typer.Option([], "--corpus", help="...or on these files/folders (repeatable)"),
    base: Optional[str] = typer.Option(None, "--base", help="Base model [default: the index's model, else "
                                       "$LLARA_SEARCH_MODEL or BAAI/LLARA-passage]"),
    lora_r: int = LoraR, lora_alpha: int = LoraAlpha, lora_dropout: float = LoraDropout,
    full: bool = FullOpt,
    loss: str = typer.Option("llara", "--loss", help="llara (EBAE + EBAR + next-token, the method) | causal "
                             "(next-token alone: the plain-LLM baseline, for comparisons)"),
    lr: Optional[float] = LrOpt,
    epochs: float = typer.Option(1.0, "--epochs", help="Passes over the pairs (ignored with --max-steps)"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    cutoff_len: int = typer.Option(128, "--cutoff-len", min=48, help="Tokens per training sequence (spec: 128)"),
    keep_stopwords: bool = typer.Option(False, "--keep-stopwords", help="Keep stopwords in the bag-of-words targets"),
    ebar_target: str = typer.Option("next", "--ebar-target", help="next (EBAR predicts the next chunk, as the "
                                    "released data) | following (the text after what the model reads: the rest of "
                                    "the chunk, then the next one; for corpora of one short chunk per document)"),
    bow_weight: Optional[float] = typer.Option(None, "--bow-weight", min=0.0, help="Weight of each bag-of-words "
                                               "loss (EBAE, EBAR) against the next-token loss [the released 0.1; "
                                               "3 with --full on a model under 1B parameters, as measured by "
                                               "benchmarks/adapt.py]"),
    save_every: int = typer.Option(100, "--save-every", min=0, help="Checkpoint every N steps (0: only at the end)"),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last checkpoint in --output"),
    merge: bool = typer.Option(False, "--merge", help="Also write a merged model to <output>/merged"),
    seed: int = typer.Option(42, "--seed"),
    heldout_share: float = HeldOutOpt, queries: Optional[Path] = QueriesOpt, keep_best: bool = KeepBestOpt,
    dtype: str = DtypeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Adapt the encoder to your corpus without labels (LLaRA's EBAE + EBAR pretext task), then judge it against
    the current model on held-out documents of the same corpus."""
    from .encoder import DEFAULT_MODEL, load_tokenizer
    from .engine import TEXT_ONLY
    from .train.data import TrainDataError, pairs_from_passages
    from .train.heldout import build_check, documents_from_corpus, documents_from_index

    dtype = _train_dtype(dtype)
    if (index is None) == (not corpus):
        _fail("give either --index DIR (train on its chunks) or --corpus PATH... (train on files)", 2)
    if loss not in ("llara", "causal"):
        _fail(f"--loss must be llara or causal, not {loss!r}", 2)
    if ebar_target not in ("following", "next"):
        _fail(f"--ebar-target must be following or next, not {ebar_target!r}", 2)
    current_adapter = current_model = None
    if index is not None:
        engine = _open(index, None)
        model = engine.info.get("model")
        base = base or (model if model and model != TEXT_ONLY else None)
        if base == model:  # judged against what the index encodes with today
            current_adapter = engine.info.get("adapter")
        docs = documents_from_index(engine)
        source = f"index {engine.paths.root}"
    else:
        missing = [str(p) for p in corpus if not p.exists()]
        if missing:
            _fail(f"no such file or folder: {missing[0]}", 2)
        base = base or os.environ.get("LLARA_SEARCH_MODEL") or DEFAULT_MODEL
        _check_training(_train_config(output, base, "pretext", lora_r=lora_r, batch_size=batch_size,
                                      cutoff_len=cutoff_len, dtype=dtype))  # before the tokenizer is fetched
        docs = documents_from_corpus(corpus, load_tokenizer(base))
        source = "corpus " + ", ".join(str(p) for p in corpus)
    if not base:
        _fail("this index has no model (text-only); name the model to adapt with --base", 2)
    try:
        train_docs, check = build_check(docs, share=heldout_share, seed=seed, queries_file=queries)
    except (TrainDataError, ValueError) as exc:
        _fail(str(exc), 2)
    pairs = pairs_from_passages([d.passages() for d in train_docs])
    if not pairs:
        _fail("no text to train on: the index or corpus has no chunks", 2)
    cfg = _train_config(output, base, "pretext", lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout,
                        lr=lr, epochs=epochs, max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum,
                        cutoff_len=cutoff_len, remove_stopwords=not keep_stopwords, save_every=save_every,
                        resume=resume, merge=merge, seed=seed, data_source=source, dtype=dtype, full=full, loss=loss,
                        ebar_target=ebar_target, bow_weight=bow_weight)
    _check_training(cfg)
    from .train.checked import run_checked

    card = run_checked(cfg, pairs, check, keep_best=keep_best, current_adapter=current_adapter,
                       current_model=current_model, show_progress=not as_json and err.is_terminal, quiet=as_json)
    _train_report(card, output, as_json)


@app.command()
@_guard
def finetune(
    train_data: Path = typer.Option(..., "--train", help="JSONL {query, pos: [...], neg: [...]} or a BEIR folder"),
    output: Path = typer.Option(..., "--output", help="Folder for the adapter, checkpoints and training card"),
    split: str = typer.Option("train", "--split", help="BEIR qrels split to train on"),
    index: Optional[Path] = typer.Option(None, "--index", help="Mine hard negatives from this index [BEIR default: "
                                         "a BM25 index of the corpus]"),
    base: Optional[str] = typer.Option(None, "--base", help="Base model [default: the index's model, else "
                                       "$LLARA_SEARCH_MODEL or BAAI/LLARA-passage]"),
    adapter: Optional[Path] = typer.Option(None, "--adapter", help="Continue from this adapter (e.g. `train`'s)"),
    lora_r: int = LoraR, lora_alpha: int = LoraAlpha, lora_dropout: float = LoraDropout,
    full: bool = FullOpt,
    lr: Optional[float] = LrOpt,
    epochs: float = typer.Option(1.0, "--epochs"),
    max_steps: Optional[int] = typer.Option(None, "--max-steps", min=1),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Queries per step and process"),
    grad_accum: int = typer.Option(1, "--grad-accum", min=1),
    group_size: int = typer.Option(16, "--group-size", min=1, help="1 positive + N-1 hard negatives per query"),
    temperature: float = typer.Option(0.01, "--temperature", min=1e-4),
    query_max_len: int = typer.Option(64, "--query-max-len", min=24),
    passage_max_len: int = typer.Option(160, "--passage-max-len", min=24),
    save_every: int = typer.Option(100, "--save-every", min=0),
    resume: bool = typer.Option(False, "--resume"),
    merge: bool = typer.Option(False, "--merge"),
    seed: int = typer.Option(42, "--seed"),
    heldout_share: float = HeldOutOpt, keep_best: bool = KeepBestOpt,
    dtype: str = DtypeOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Contrastive fine-tuning (InfoNCE, τ=0.01) on labelled queries, with hard negatives mined from an index."""
    from .encoder import DEFAULT_MODEL
    from .engine import TEXT_ONLY
    from .eval import BeirError
    from .train.data import TrainDataError, examples_from_beir, examples_from_jsonl

    dtype = _train_dtype(dtype)
    if not train_data.exists():
        _fail(f"no such file or folder: {train_data}", 2)
    engine = _open(index, None, dtype=dtype) if index is not None else None
    if engine is not None and not base:
        m = engine.info.get("model")
        base = m if m and m != TEXT_ONLY else None
    base = base or os.environ.get("LLARA_SEARCH_MODEL") or DEFAULT_MODEL
    current_adapter = str(adapter) if adapter else None
    if engine is not None and adapter is None and engine.info.get("model") == base:
        current_adapter = engine.info.get("adapter")
    shape = dict(batch_size=batch_size, group_size=group_size, query_max_len=query_max_len,
                 passage_max_len=passage_max_len, lora_r=lora_r, dtype=dtype)
    _check_training(_train_config(output, base, "contrastive", **shape))  # before hard negatives are mined
    try:
        if train_data.is_dir():
            if engine is None:  # BM25 hard negatives, as for the LLARA-beir checkpoint
                from .eval import load_beir
                from .layout import default_index_dir

                data = load_beir(train_data, split)
                engine = _open(default_index_dir().parent / "eval" / f"{data.name}-bm25", None, create=True,
                               model=TEXT_ONLY)
                engine.ingest_records(data.corpus(), f"beir:{data.name}", model=TEXT_ONLY)
            mode = "bm25" if engine.info.get("model") == TEXT_ONLY else "dense"

            def search(queries, k):
                return [list(dict.fromkeys(h.doc_key for h in hits if h.doc_key))
                        for hits in engine.search_many(queries, k=min(1000, 3 * k), mode=mode, collapse=False)]

            examples = examples_from_beir(train_data, split, search)
            source = f"BEIR {train_data} ({split}), negatives mined by {mode} from {engine.paths.root}"
        else:
            examples = examples_from_jsonl(train_data)
            source = f"JSONL {train_data}"
    except (TrainDataError, BeirError) as exc:
        _fail(str(exc), 2)
    cfg = _train_config(output, base, "contrastive", adapter=str(adapter) if adapter else None, lora_r=lora_r,
                        lora_alpha=lora_alpha, lora_dropout=lora_dropout, lr=lr, epochs=epochs, max_steps=max_steps,
                        batch_size=batch_size, grad_accum=grad_accum, group_size=group_size,
                        temperature=temperature, query_max_len=query_max_len, passage_max_len=passage_max_len,
                        save_every=save_every, resume=resume, merge=merge, seed=seed, data_source=source, dtype=dtype,
                        full=full)
    from .train.checked import run_checked, split_examples

    examples, check = split_examples(examples, heldout_share, seed)
    card = run_checked(cfg, examples, check, keep_best=keep_best, current_adapter=current_adapter,
                       current_model=None, show_progress=not as_json and err.is_terminal, quiet=as_json)
    _train_report(card, output, as_json)


@app.command()
@_guard
def reencode(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
             adapter: Optional[Path] = typer.Option(None, "--adapter", help="peft adapter folder (omit: the base "
                                                    "model alone)"),
             model: Optional[str] = typer.Option(None, "--model", help="Another whole model of the same tokenizer "
                                                 "and width, e.g. what `train --full` wrote [the index's own]"),
             force: bool = ForceOpt, dtype: str = DtypeOpt, as_json: bool = JsonOpt) -> None:
    """Re-encode every chunk with the index's model (or --model) and an adapter into a new generation; queries
    follow."""
    dtype = _dtype(dtype)
    _check_switch(adapter or model, force)

    def run(pool, device):
        engine = _open(index, db_url, dtype=dtype)  # rank 0 alone: the other processes only encode
        engine.pool, engine.device = pool, device
        with (nullcontext() if as_json or not err.is_terminal else _IngestProgress()) as progress:
            return engine, engine.reencode(str(adapter) if adapter else None, progress, model=model)

    engine, r = _with_encode_pool(run)
    if as_json:
        _print_json(r.to_dict() | {"fingerprint": engine.info.get("fingerprint")})
    else:
        out.print(f"re-encoded {r.chunks_encoded} chunks into generation {r.generation} ({r.index_type}) in "
                  f"{r.seconds:.1f}s; fingerprint {engine.info.get('fingerprint')}")
        for w in r.index_warnings:
            out.print(Text(f"warning: {w}", style="yellow"))


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
                "factory", "ntotal", "nprobe", "vector_db"):
        if key in s:
            t.add_row(key, str(s[key]))
    if s.get("passage_dtypes"):
        t.add_row("encoded in", ", ".join(s["passage_dtypes"]))
    for key, v in s["bytes_on_disk"].items():
        t.add_row(f"{key} on disk", f"{v / 2**20:.1f} MiB")
    if s.get("lexical"):
        lx = s["lexical"]
        t.add_row("lexical index", f"{lx['segments']} segments, {lx['chunks']} chunks, {lx['postings']} postings")
    out.print(t)
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


@app.command()
@_guard
def delete(paths: List[str] = typer.Argument(..., help="Files or folders whose documents to remove"),
           index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt, as_json: bool = JsonOpt) -> None:
    """Remove documents from the database, the lexical index and the vector index."""
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
            index_type: Optional[str] = typer.Option(None, "--index-type", help="auto | flat | ivfpq; Milvus: auto | "
                                                     "flat | ivf_flat | hnsw | ivfpq | diskann"),
            index_factory: Optional[str] = typer.Option(None, "--index-factory"),
            vector_db: Optional[str] = typer.Option(None, "--vector-db", help="Move the index's vectors to this "
                                                    "vector database (faiss, a Milvus Lite .db file, or "
                                                    "http://host:19530), rebuilt from the stored vectors"),
            as_json: bool = JsonOpt) -> None:
    """Retrain and rebuild the vector index from stored vectors (no re-encoding); `--vector-db` moves it."""
    _index_type_ok(index_type)
    r = _open(index, db_url).reindex(index_type, index_factory, vector_db=vector_db)
    if as_json:
        _print_json(r.to_dict())
    else:
        out.print(f"rebuilt as generation {r.generation} ({r.index_type}) over {r.chunks_total} chunks "
                  f"in {r.seconds:.1f}s")
        for w in r.index_warnings:
            out.print(Text(f"warning: {w}", style="yellow"))


@app.command()
@_guard
def compact(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
            wait: bool = typer.Option(False, "--wait", help="Wait for a running ingest to finish"),
            grace: float = typer.Option(60.0, "--grace-seconds", min=0,
                                        help="Keep what the previous generation uses until the newest one is this "
                                             "old (a search in flight may be on it); 0 when nothing is searching"),
            as_json: bool = JsonOpt) -> None:
    """Give back the disk space of removed and re-encoded chunks: rows, old index files, dead stored vectors."""
    r = _open(index, db_url).compact(grace_s=grace, wait=wait)
    if as_json:
        _print_json(r)
        return
    mb = r["bytes_freed"] / 2**20
    out.print(f"freed {mb:.1f} MiB: purged {r['chunk_rows_purged']} removed chunk rows, dropped "
              f"{r['vector_rows_dropped']} stored vector rows; generation {r['generation']}", highlight=False)
    if r["kept_previous_generation"]:
        out.print(f"kept what the previous generation uses: the newest is younger than {grace:g} s and a search may "
                  "still be on the one before; run compact again later", style="dim")


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
        if key != "warning":
            t.add_row(key, str(v))
    out.print(t)
    if r.get("warning"):
        out.print(Text(f"warning: {r['warning']}", style="yellow"))


@app.command()
@_guard
def doctor(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
           repair: bool = typer.Option(False, "--repair", help="Rebuild the lexical index and the vector index from "
                                       "what is stored; quarantine (never delete) what cannot be explained"),
           wait: bool = typer.Option(False, "--wait", help="With --repair: wait for a running ingest to finish"),
           as_json: bool = JsonOpt) -> None:
    """Check that database rows, the lexical index, stored vectors and the index generation agree; exit 1 if not."""
    r = _open(index, db_url).doctor(repair=repair, wait=wait)
    if as_json:
        _print_json(r)
    else:
        for f in r["problems"]:
            out.print(Text(f"problem [{f['check']}]: {f['detail']}", style="red"))
            out.print(Text(f"  --repair: {f['repair']}" if f["repair"] else "  needs you: see the message above",
                           style="dim"))
        for f in r["warnings"]:
            out.print(Text(f"warning [{f['check']}]: {f['detail']}", style="yellow"))
        for line in r["repaired"]:
            out.print(Text(f"repaired: {line}", style="green"))
        facts = ", ".join(f"{k} {v}" for k, v in r["checked"].items())
        out.print(f"{'[green]ok[/]' if r['ok'] else '[red]not ok[/]'}: generation {r['generation']}; {facts}",
                  highlight=False)
    if not r["ok"]:
        raise typer.Exit(1)


@app.command()
@_guard
def serve(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
          host: str = typer.Option("127.0.0.1", "--host"),
          port: int = typer.Option(8000, "--port", min=0, max=65535, help="0: any free port (printed on start)"),
          token: Optional[str] = typer.Option(None, "--token", envvar="LLARA_SEARCH_TOKEN",
                                              help="Bearer token required on every route but /healthz"),
          rerank: Optional[str] = RerankOpt,
          rerank_depth: Optional[int] = RerankDepthOpt,
          rerank_base: Optional[str] = RerankBaseOpt,
          rerank_normalize: bool = RerankNormalizeOpt,
          rerank_by_default: bool = typer.Option(True, "--rerank-by-default/--rerank-on-request",
                                                 help="With --rerank: re-rank every search unless it says "
                                                      "rerank=false, or only those that say rerank=true"),
          rerank_max_depth: Optional[int] = typer.Option(None, "--rerank-max-depth", min=1,
                                                         help="Most candidates one query may ask the reranker to "
                                                              "score [4 x --rerank-depth]"),
          rerank_budget_ms: Optional[float] = typer.Option(None, "--rerank-budget-ms", min=0,
                                                           help="Time the reranker may take per request; past it "
                                                                "the answer is the first stage's order, said so in "
                                                                "the response [2000; 0: no limit]"),
          editor_url: Optional[str] = typer.Option(None, "--editor-url", envvar="LLARA_SEARCH_EDITOR_URL",
                                                   help="The search page's 'open in editor' link, e.g. "
                                                        "'vscode://file/{path}:{line}' ({path}, {line}, {page})"),
          open_page: bool = typer.Option(False, "--open", help="Open the search page in the browser"),
          dtype: str = DtypeOpt) -> None:
    """Serve top-k search over HTTP (FastAPI; OpenAPI docs at /docs) and the search page for people at /."""
    from .serve import is_loopback, run_server
    from .serve.page import check_editor_url

    dtype = _dtype(dtype)
    _check_rerank_options(rerank, rerank_depth=rerank_depth, rerank_base=rerank_base,
                          rerank_normalize=rerank_normalize, rerank_max_depth=rerank_max_depth,
                          rerank_budget_ms=rerank_budget_ms)
    if not token and not is_loopback(host):
        _fail(f"refusing to bind {host} without a token: pass --token or set LLARA_SEARCH_TOKEN", 2)
    editor_url = check_editor_url(editor_url)
    engine = _open(index, db_url, dtype=dtype)
    policy = _rerank_policy(engine, rerank, rerank_depth, rerank_base, rerank_normalize, rerank_by_default,
                            rerank_max_depth, rerank_budget_ms)
    run_server(engine, host=host, port=port, token=token, rerank=policy, editor_url=editor_url,
               open_page=open_page)


def _rerank_policy(engine, model, depth, base, normalize, by_default=True, max_depth=None, budget_ms=None):
    """A long-running server's reranker: loaded now (a bad model fails at start, not at the first request)."""
    if not model:
        return None
    from .engine import EngineError
    from .rerank import DEFAULT_BUDGET_MS, DEFAULT_DEPTH, RerankError, RerankPolicy

    depth = DEFAULT_DEPTH if depth is None else depth
    reranker = engine.reranker(model, base=base, normalize=normalize)
    try:
        return RerankPolicy(reranker, by_default=by_default, depth=depth,
                            max_depth=max(4 * depth, 1) if max_depth is None else max_depth,
                            budget_ms=DEFAULT_BUDGET_MS if budget_ms is None else (budget_ms or None), model=model)
    except RerankError as exc:
        raise EngineError(str(exc)) from None


@app.command()
@_guard
def mcp(index: Optional[Path] = IndexOpt, db_url: Optional[str] = DbUrlOpt,
        transport: str = typer.Option("stdio", "--transport", help="stdio (for agent hosts) | streamable-http"),
        host: str = typer.Option("127.0.0.1", "--host", help="With --transport streamable-http"),
        port: int = typer.Option(8001, "--port", help="With --transport streamable-http"),
        rerank: Optional[str] = RerankOpt,
        rerank_depth: Optional[int] = RerankDepthOpt,
        rerank_base: Optional[str] = RerankBaseOpt,
        rerank_budget_ms: Optional[float] = typer.Option(None, "--rerank-budget-ms", min=0,
                                                         help="Time the reranker may take per call; past it the "
                                                              "first stage's order is returned [2000; 0: no limit]"),
        dtype: str = DtypeOpt) -> None:
    """Serve search as an MCP tool for agents (read-only): `search` and `index_info`."""
    from .serve import is_loopback
    from .serve.mcp import run_mcp

    import importlib.util

    dtype = _dtype(dtype)
    if importlib.util.find_spec("mcp") is None:
        _fail("the MCP server needs the `mcp` package: pip install 'llara-search[mcp]'", 2)
    if transport not in ("stdio", "streamable-http"):
        _fail(f"--transport must be stdio or streamable-http, not {transport!r}", 2)
    if transport != "stdio" and not is_loopback(host):
        _fail(f"refusing to bind {host}: the MCP server has no authentication; keep it on loopback", 2)
    _check_rerank_options(rerank, rerank_depth=rerank_depth, rerank_base=rerank_base,
                          rerank_budget_ms=rerank_budget_ms)
    engine = _open(index, db_url, dtype=dtype)
    policy = _rerank_policy(engine, rerank, rerank_depth, rerank_base, False, budget_ms=rerank_budget_ms)
    run_mcp(engine, transport, host, port, rerank=policy)


def main() -> None:
    app()
