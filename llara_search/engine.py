"""`Engine`: one facade over an index folder. The CLI, the HTTP server and the tests all go through it.

The engine opens an index (its folder, database and vector database), holds what is loaded once (the encoder, the
searcher, the vector backend, the rerankers) and hands each operation to the module that owns it: retrieval.py
(search, re-ranking, embedding), writing.py (ingest, delete, re-encode), maintenance.py (reindex, compact, doctor,
status, bench). Those modules take the engine as their first argument; nothing below imports this module.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import maintenance, retrieval, writing
from .binding import check_binding, new_vector_db
from .encoder.seats import EncoderSeats
from .errors import EmptyIndexError, EngineError, StoreError, first_line
from .identity import (TEXT_ONLY, check_encoder_memory, merge_dtypes, model_identity,  # noqa: F401 - re-exported
                       reencode_args)
from .index.backend import FAISS, VectorBackend, is_faiss, open_backend
from .layout import IndexPaths, default_index_dir
from .maintenance import COMPACT_GRACE_S, verdict_of  # noqa: F401 - re-exported
from .results import SearchResult  # noqa: F401 - re-exported
from .retrieval import MAX_K  # noqa: F401 - re-exported
from .search import Searcher
from .store import Store

if TYPE_CHECKING:
    from .encoder.model import LlaraEncoder
    from .rerank import Reranker


class Engine:
    """An open index. Its operations are the functions of retrieval.py, writing.py and maintenance.py, bound here
    as methods (their docstrings and signatures are the reference)."""

    def __init__(self, paths: IndexPaths, store: Store, *, device: str | None = None, dtype: str | None = None,
                 show_progress: bool = False):
        self.paths = paths
        self.store = store
        self.device = device
        self.dtype = dtype
        self.show_progress = show_progress
        # what is loaded once and kept; retrieval.py, writing.py and maintenance.py, which own the operations, use
        # and replace these parts directly (a re-encode swaps the encoder, a move to Milvus the backend)
        self._encoder: LlaraEncoder | None = None
        self._searcher: Searcher | None = None
        self._backend: VectorBackend | None = None
        self._vector_db: str | None = None  # --vector-db of an index being created, recorded with its model
        self._new_index_id: str | None = None
        self._fresh_folder: Path | None = None  # the folder `open(create=True)` made: a failed first ingest removes it
        self.pool = None  # an EncodePool under torchrun: passages are encoded by every process (distributed.py)
        self._load_lock = threading.Lock()
        self.seats = EncoderSeats()  # one forward at a time per seat: bulk work, and a server's quick queries
        self._rerankers: dict[tuple, Reranker] = {}  # loaded once per process and kept (the server keeps it warm)
        self._rerank_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------------ opening
    @classmethod
    def open(cls, index_dir: str | os.PathLike | None = None, *, db_url: str | None = None,
             model: str | None = None, create: bool = False, device: str | None = None, dtype: str | None = None,
             show_progress: bool = False, vector_db: str | None = None) -> "Engine":
        """Open an index folder (and its database). `create=True` makes a new one; otherwise it must exist.
        `vector_db`: where a new index keeps its vectors (`faiss`, a Milvus Lite `.db` path or a Milvus server
        URI); an existing index must name the one it was created with."""
        paths = IndexPaths(Path(index_dir) if index_dir else default_index_dir(), db_url)
        pending = new_vector_db(paths, vector_db) if vector_db is not None else None
        if not create:
            if not paths.root.is_dir():
                raise EngineError(f"no index at {paths.root}; build one with `llara-search ingest PATH --index "
                                  f"{paths.root}`")
            if db_url is None and not (paths.root / "meta.sqlite").is_file():
                raise EngineError(f"{paths.root} is not a llara-search index (no meta.sqlite); point --index at an "
                                  "index folder or build one with `llara-search ingest`")
        fresh = create and db_url is None and not paths.root.exists()
        if create:
            paths.root.mkdir(parents=True, exist_ok=True)
        try:
            store = Store(paths.db_url, create=create)
        except StoreError as exc:
            if fresh:
                writing.remove_if_unused(paths.root)
            raise EngineError(str(exc)) from None
        engine = cls(paths, store, device=device, dtype=dtype, show_progress=show_progress)
        engine._fresh_folder = paths.root if fresh else None
        info = store.get_info()
        try:
            check_binding(paths, store, info)
        except EngineError:
            store.close()
            raise
        if model is not None and info.get("model") and model_identity(model) != info["model"]:
            raise EngineError(
                f"index {paths.root} was built with model {info['model']}, not {model_identity(model)}; use a new "
                "--index for the other model, or rebuild this one (delete the folder and ingest again)"
            )
        if pending is not None:
            want, backend, new_id = pending
            recorded = info.get("vector_db") or (FAISS if info.get("model") else None)
            if recorded is not None and recorded != want:
                store.close()
                if backend is not None:
                    backend.close()
                where = "FAISS files" if is_faiss(recorded) else recorded
                raise EngineError(f"index {paths.root} keeps its vectors in {where}, not {want}; to move them run "
                                  f"`llara-search reindex --index {paths.root} --vector-db {want}`, or use a new "
                                  "--index")
            if recorded is None:
                engine._vector_db, engine._new_index_id = want, new_id
                engine._backend = backend
            elif backend is not None:
                backend.close()
        return engine

    @property
    def info(self) -> dict:
        return self.store.get_info()

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
        self.store.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------ parts
    @property
    def encoder(self) -> LlaraEncoder:
        """The index's own model and adapter, loaded on first use and checked against the recorded fingerprint."""
        with self._load_lock:
            if self._encoder is None:
                info = self.info
                if not info.get("model"):
                    raise EngineError(f"index {self.paths.root} has no model recorded yet; ingest something first")
                if info["model"] == TEXT_ONLY:
                    raise EngineError(f"index {self.paths.root} is text-only (built with --model none): it has no "
                                      "encoder; use --mode bm25, or build an index with a model")
                from .encoder.model import LlaraEncoder

                try:
                    enc = LlaraEncoder.from_pretrained(**self.encoder_spec(info["model"], info.get("adapter")),
                                                       device=self.device, show_progress=self.show_progress)
                except OSError as exc:
                    if self.store.current_generation() is None:  # a first ingest: nothing was built with it yet
                        raise EngineError(first_line(exc)) from None
                    raise EngineError(f"index {self.paths.root} was built with model {info['model']}, which cannot "
                                      f"be loaded now: {first_line(exc)}") from None
                if info.get("fingerprint") and enc.fingerprint != info["fingerprint"]:
                    raise EngineError(
                        f"the model at {info['model']} no longer matches index {self.paths.root} (fingerprint "
                        f"{enc.fingerprint} != {info['fingerprint']}): its weights changed; rebuild the index"
                    )
                self._encoder = enc
            return self._encoder

    def encoder_spec(self, model: str, adapter: str | None) -> dict:
        """How to load an encoder of this index (what distributed workers are told to load too)."""
        return dict(name_or_path=model, adapter=adapter, dtype=self.dtype, max_length=int(self.info.get("max_length",
                                                                                                          512)))

    def encode_passages(self, encoder: LlaraEncoder, spec: dict, texts: list[str],
                         batch_size: int | None = None) -> np.ndarray:
        if self.pool is None:
            return encoder.encode_passages(texts, batch_size)
        self.pool.load(encoder, spec)
        return self.pool.encode_passages(texts, batch_size)

    def use_encoder(self, encoder: LlaraEncoder) -> None:
        """Share an already loaded encoder (tests, the server) after checking it is the index's own."""
        fp = self.info.get("fingerprint")
        if fp and encoder.fingerprint != fp:
            raise EngineError(f"encoder fingerprint {encoder.fingerprint} does not match the index's {fp}")
        self._encoder = encoder

    @property
    def searcher(self) -> Searcher:
        if self._searcher is None:
            dim = self.info.get("dim")
            if dim is None:
                raise EngineError(f"index {self.paths.root} is empty; run `llara-search ingest` first")
            self._searcher = Searcher(self.paths, self.store, int(dim) or None, self.backend if dim else None)
        return self._searcher

    @property
    def backend(self) -> VectorBackend:
        """Where the index keeps its vectors (FAISS files, Milvus Lite or a Milvus server)."""
        if self._backend is None:
            self._backend = open_backend(self.paths, self.info)
        return self._backend

    # ------------------------------------------------------------------------------------------------ search
    search = retrieval.search
    search_many = retrieval.search_many
    reranker = retrieval.get_reranker
    rerank_depth = staticmethod(retrieval.checked_rerank_depth)
    rerank = retrieval.rerank_candidates
    encode_queries = retrieval.encode_queries
    embed = retrieval.embed
    fusion_settings = retrieval.fusion_settings

    # ------------------------------------------------------------------------------------------------ writing
    ingest = writing.ingest
    ingest_records = writing.ingest_records
    delete = writing.delete
    reencode = writing.reencode
    check_memory = writing.check_memory

    # ------------------------------------------------------------------------------------------------ maintenance
    reindex = maintenance.reindex
    compact = maintenance.compact
    status = maintenance.status
    doctor = maintenance.doctor
    bench = maintenance.bench


__all__ = ["COMPACT_GRACE_S", "MAX_K", "TEXT_ONLY", "EmptyIndexError", "Engine", "EngineError", "SearchResult",
           "check_encoder_memory", "merge_dtypes", "model_identity", "reencode_args", "verdict_of"]
