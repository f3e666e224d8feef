"""What every command shares: the common options, the two consoles (results on stdout, messages on stderr), the
`--json` output, opening the engine, and `guard`, which turns every failure a user can cause into one line on
stderr starting with "error:" and a non-zero exit code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from .. import terminal as term

from ..errors import (EmptyIndexError, EngineError, IndexFileError, IndexLockedError, StoreError, VectorDBError,
                      first_line)

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
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
ForceOpt = typer.Option(False, "--force", help="Switch to an adapter or model even when its retrain verdict was "
                        "'worse'")
RerankNormalizeOpt = typer.Option(False, "--rerank-normalize", help="Report the reranker's sigmoid (0-1) instead "
                                  "of its logit, as FlagReranker's normalize=True (same order)")

_EXPECTED = (EngineError, StoreError, IndexLockedError, EmptyIndexError, IndexFileError, VectorDBError)


def fail(message: str, code: int = 1) -> None:
    err.print(f"[bold red]error:[/] {term.markup(message)}", highlight=False, markup=True)
    raise typer.Exit(code)


def expected_errors() -> tuple[type, ...]:
    """The wrong-use error classes: llara_search/errors.py's, and the client's once it was imported (one never
    imported cannot have raised; importing it just to name its error would cost the instant query path)."""
    client = sys.modules.get("llara_search.client")
    return _EXPECTED + ((client.LlaraSearchError,) if client is not None else ())


def guard(fn):
    """Turn every expected failure into one clear line (no traceback) and a non-zero exit."""
    from functools import wraps

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from ..notices import listening

        try:
            with listening(_json_notice if kwargs.get("as_json") else _print_notice):
                return fn(*args, **kwargs)
        except MemoryError as exc:  # the memory check's refusal (InsufficientMemoryError), or a real one
            fail(first_line(exc, default="out of memory"))
        except RuntimeError as exc:
            if isinstance(exc, expected_errors()):
                fail(str(exc))
            trainer = sys.modules.get("llara_search.train.trainer")  # not imported (torch!) unless training ran
            if trainer is not None and isinstance(exc, trainer.TrainingInterrupted):
                fail(str(exc), 130)
            raise
        except KeyboardInterrupt:
            fail("interrupted; committed batches are kept and a re-run continues where this one stopped", 130)
        except (OSError, ValueError, FloatingPointError) as exc:
            fail(f"{type(exc).__name__}: {first_line(exc, default='')}")

    return wrapper


def open_engine(index, db_url, *, create=False, model=None, show_progress=False, vector_db=None, dtype=None):
    from ..engine import Engine

    return Engine.open(index, db_url=db_url, model=model, create=create, show_progress=show_progress,
                       vector_db=vector_db, dtype=dtype)


def check_index_type(index_type) -> None:
    from ..index.backend import ALL_INDEX_TYPES, FAISS_INDEX_TYPES

    if index_type is not None and index_type not in ALL_INDEX_TYPES:
        extra = ", ".join(t for t in ALL_INDEX_TYPES if t not in FAISS_INDEX_TYPES)
        fail(f"--index-type must be one of {', '.join(FAISS_INDEX_TYPES)} (Milvus also takes {extra}), not "
             f"{index_type!r}", 2)


def _print_notice(event: str, message: str, fields: dict) -> None:
    """What is about to happen (a download, a long encode), on stderr for people."""
    err.print(term.text(message, "cyan"))


def _json_notice(event: str, message: str, fields: dict) -> None:
    """The same under --json: one JSON line on stderr, as it happens (stdout keeps the one result object)."""
    sys.stderr.write(json.dumps({"event": event, "message": message, **fields}, default=str) + "\n")
    sys.stderr.flush()


def parse_dtype(value: str | None) -> str | None:
    """--dtype checked before anything else runs; None for auto (the engine's default)."""
    from ..encoder.memory import normalize_dtype

    try:
        name = normalize_dtype(value)
    except ValueError as exc:
        fail(f"--dtype: {exc}", 2)
    return None if name == "auto" else name


def check_new_index(index, db_url, model, adapter, dtype):
    """The memory check of a first ingest, made before the index folder or its database is created: a model that
    cannot fit leaves nothing behind. An existing index is checked by the engine before it records anything."""
    from ..distributed import launched
    from ..identity import check_encoder_memory
    from ..layout import IndexPaths, default_index_dir

    paths = IndexPaths(Path(index) if index else default_index_dir(), db_url)
    if paths.exists() or launched()[0] > 0:  # torchrun workers check their own device when they load
        return None
    return check_encoder_memory(model, adapter=str(adapter) if adapter else None, dtype=dtype)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")


def with_encode_pool(body):
    """`body(pool, device)` on rank 0; under torchrun the other processes encode shares of its batches meanwhile
    (llara_search/distributed.py) and exit quietly when it is done. Single process: `body(None, None)`."""
    from ..distributed import launched

    if launched()[1] == 1:
        return body(None, None)
    from ..distributed import EncodePool, init, local_device, serve_encodes

    rank, world, local_rank = init()
    if rank > 0:
        serve_encodes(rank, world, local_rank)
        raise typer.Exit(0)
    pool = EncodePool(world)
    try:
        return body(pool, local_device(local_rank))
    finally:
        pool.stop()


class IngestProgress:
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

    def __enter__(self) -> "IngestProgress":
        self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        self.bar.stop()


def check_rerank_options(rerank: str | None, **given) -> None:
    """A re-ranking option without --rerank is a mistake worth one line, not something to ignore."""
    extra = [name for name, value in given.items() if value not in (None, False)]
    if extra and not rerank:
        fail(f"--{extra[0].replace('_', '-')} needs --rerank MODEL", 2)


def check_switch(folder, force: bool) -> None:
    """A model whose recorded retrain verdict is worse does not replace the current one without --force."""
    from ..verdict_record import SwitchRefused, check_switch as check

    try:
        check(folder, force)
    except SwitchRefused as exc:
        fail(str(exc), 1)
