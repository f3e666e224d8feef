"""`Engine`: one facade over an index folder. The CLI, the HTTP server and the tests all go through it."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .encoder import DEFAULT_MODEL, fingerprint_for, load_tokenizer
from .index import VectorStore
from .index.backend import FAISS, VectorBackend, VectorDBError, is_faiss, normalize_vector_db, open_backend
from .ingest.chunking import DEFAULT_CHUNK_TOKENS, Chunker
from .ingest.pipeline import IngestOptions, Ingestor, IngestReport
from .ingest.words import WordTokenizer
from .collapse import collapse_depth, collapse_duplicates
from .layout import IndexPaths, WriteLock, default_index_dir, write_head
from .lexical import LexicalIndex
from .search import MODES, EmptyIndexError, SearchResult, Searcher, fuse
from .store import Document, Store
from .store.db import StoreError

if TYPE_CHECKING:
    from .encoder.memory import Estimate
    from .encoder.model import LlaraEncoder
    from .rerank import Reranker, RerankOutcome

log = logging.getLogger(__name__)

MAX_K = 1000
COMPACT_GRACE_S = 60.0  # far longer than any one search holds its generation
TEXT_ONLY = "none"  # `--model none`: a text-only index searched by BM25 alone (no encoder, no vectors)


def verdict_of(folder: str | None) -> dict | None:
    from .train.verdict import brief, load

    return brief(load(folder))


class EngineError(RuntimeError):
    """Wrong use (bad argument, wrong model, missing index): the message is one line saying what to do."""


def _adapter_id(adapter: str | os.PathLike) -> str:
    return str(Path(adapter).expanduser().resolve())


INDEX_ID_FILE = "index-id"


def _check_binding(paths: IndexPaths, store: Store, info: dict) -> None:
    """An index folder holds the vectors and FAISS files, the database the rows they are keyed by: one without the
    other is meaningless. With an external database (`--db-url`) both record one random index id, so a second
    folder pointed at a database that already serves a folder (or a folder pointed at another database) is
    refused instead of mixing chunk ids. A folder's own meta.sqlite cannot belong to another folder."""
    if paths.db_url_override is None:
        return
    in_db = info.get("index_id")
    f = paths.root / INDEX_ID_FILE
    in_folder = f.read_text().strip() if f.is_file() else None
    if in_db is None and (in_folder is None or not _holds_data(paths)):
        return  # not bound yet (or only the folder side was written when the first ingest was cut short)
    if in_db == in_folder:
        return
    from .store.db import _safe_url

    url = _safe_url(paths.db_url)
    if in_db:
        raise EngineError(f"database {url} belongs to another index folder (index id {in_db}), not to {paths.root} "
                          f"(index id {in_folder or 'none'}); give each index folder its own database, or point "
                          "--index at the folder that was built with it")
    raise EngineError(f"index folder {paths.root} was built with another database (index id {in_folder}), not "
                      f"{url}; point --db-url at that database, or use a new --index folder")


def _holds_data(paths: IndexPaths) -> bool:
    return any(f.stat().st_size for d in (paths.vectors, paths.generations) if d.is_dir() for f in d.iterdir())


def _bind(paths: IndexPaths, store: Store) -> None:
    """Record the index id on both sides before the first write: the folder first, so that an interruption
    between the two leaves a state `_check_binding` accepts and the next write completes."""
    if paths.db_url_override is None or store.get_info().get("index_id"):
        return
    import uuid

    f = paths.root / INDEX_ID_FILE
    if not f.is_file():
        tmp = f.with_suffix(".tmp")
        tmp.write_text(uuid.uuid4().hex + "\n")
        os.replace(tmp, f)
    with store.session() as s:
        store.set_info(s, index_id=f.read_text().strip())


def _random_id() -> str:
    import uuid

    return uuid.uuid4().hex


def _new_vector_db(paths: IndexPaths, uri: str) -> tuple[str, VectorBackend | None, str | None]:
    """The normalized `--vector-db` of an index being created or moved, with a connected backend for an index
    that does not exist yet (so that an unreachable Milvus is refused before a folder or database is made)."""
    try:
        want = normalize_vector_db(uri)
    except VectorDBError as exc:
        raise EngineError(str(exc)) from None
    if is_faiss(want) or paths.exists():
        return want, None, None
    new_id = _random_id()
    backend = open_backend(paths, {"index_id": new_id, "dim": 0}, want)
    try:
        backend.check_writable(None)
    except VectorDBError:
        backend.close()
        raise
    return want, backend, new_id


def check_encoder_memory(model: str | None, *, adapter: str | None = None, dtype: str | None = None,
                         device: str | None = None, max_length: int = 512) -> Estimate | None:
    """The memory check of the encoder an ingest would load (`model`, or $LLARA_SEARCH_MODEL, or the default),
    from its config alone: raises `InsufficientMemoryError` before any download, load or write when it cannot fit.
    None for a text-only index (no model; torch is not imported)."""
    name = model_identity(model or os.environ.get("LLARA_SEARCH_MODEL") or DEFAULT_MODEL)
    if name == TEXT_ONLY:
        return None
    from .encoder.memory import check_fits

    return check_fits(name, dtype, device or "auto", "encode", max_length=max_length, with_lm_head=adapter is not None)


def merge_dtypes(recorded: object, dtype: str) -> list[str]:
    """The dtypes that encoded an index's stored vectors, with `dtype` added (kept sorted: it is compared)."""
    return sorted(set(recorded if isinstance(recorded, list) else []) | {dtype})


def _collapsed(searcher: Searcher, hits: list[tuple[int, float]], k: int) -> list[SearchResult]:
    """The top k of `hits` without near-copies. Copies are rare, so the texts of the first k alone are read and
    compared; the deeper hits (fetched for the copies' places) are read only when some of the k were copies."""
    results = searcher.results(hits[:k])
    kept = collapse_duplicates(results, k)
    if len(kept) < k and len(hits) > k:
        kept = collapse_duplicates(results + searcher.results(hits[k:]), k)
    return kept


def reencode_args(pending: dict) -> str:
    """The options that finish an interrupted re-encode (`pending_reencode` as recorded)."""
    return (f" --model {pending['model']}" if pending.get("model") else "") + \
        (f" --adapter {pending['adapter']}" if pending.get("adapter") else "")


def model_identity(name_or_path: str) -> str:
    """Local folders are recorded by absolute path, hub ids as given."""
    if name_or_path == TEXT_ONLY:
        return TEXT_ONLY
    p = Path(name_or_path).expanduser()
    return str(p.resolve()) if p.exists() else name_or_path


def _dtype_name(encoder) -> str:
    return str(encoder.dtype).removeprefix("torch.")


class Engine:
    def __init__(self, paths: IndexPaths, store: Store, *, device: str | None = None, dtype: str | None = None,
                 show_progress: bool = False):
        self.paths = paths
        self.store = store
        self.device = device
        self.dtype = dtype
        self.show_progress = show_progress
        self._encoder: LlaraEncoder | None = None
        self._searcher: Searcher | None = None
        self._backend: VectorBackend | None = None
        self._vector_db: str | None = None  # --vector-db of an index being created, recorded with its model
        self._new_index_id: str | None = None
        self.pool = None  # an EncodePool under torchrun: passages are encoded by every process (distributed.py)
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()
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
        pending = _new_vector_db(paths, vector_db) if vector_db is not None else None
        if not create:
            if not paths.root.is_dir():
                raise EngineError(f"no index at {paths.root}; build one with `llara-search ingest PATH --index "
                                  f"{paths.root}`")
            if db_url is None and not (paths.root / "meta.sqlite").is_file():
                raise EngineError(f"{paths.root} is not a llara-search index (no meta.sqlite); point --index at an "
                                  "index folder or build one with `llara-search ingest`")
        else:
            paths.root.mkdir(parents=True, exist_ok=True)
        try:
            store = Store(paths.db_url, create=create)
        except StoreError as exc:
            raise EngineError(str(exc)) from None
        engine = cls(paths, store, device=device, dtype=dtype, show_progress=show_progress)
        info = store.get_info()
        try:
            _check_binding(paths, store, info)
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
                    enc = LlaraEncoder.from_pretrained(**self._spec(info["model"], info.get("adapter")),
                                                       device=self.device, show_progress=self.show_progress)
                except OSError as exc:
                    if self.store.current_generation() is None:  # a first ingest: nothing was built with it yet
                        raise EngineError(str(exc).splitlines()[0]) from None
                    raise EngineError(f"index {self.paths.root} was built with model {info['model']}, which cannot "
                                      f"be loaded now: {str(exc).splitlines()[0]}") from None
                if info.get("fingerprint") and enc.fingerprint != info["fingerprint"]:
                    raise EngineError(
                        f"the model at {info['model']} no longer matches index {self.paths.root} (fingerprint "
                        f"{enc.fingerprint} != {info['fingerprint']}): its weights changed; rebuild the index"
                    )
                self._encoder = enc
            return self._encoder

    def _spec(self, model: str, adapter: str | None) -> dict:
        """How to load an encoder of this index (what distributed workers are told to load too)."""
        return dict(name_or_path=model, adapter=adapter, dtype=self.dtype, max_length=int(self.info.get("max_length",
                                                                                                          512)))

    def _encode_passages(self, encoder: LlaraEncoder, spec: dict, texts: list[str],
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

    def _check_vectors(self, rebuild: bool = False) -> None:
        """Before a writer changes anything: the vector database is reachable and, unless everything is rebuilt from
        the stored vectors, still holds what the committed generation names (else one line, nothing changed)."""
        info = self.info
        if info.get("model") == TEXT_ONLY or (is_faiss(info.get("vector_db")) and info.get("model")):
            return
        if not info.get("model") and is_faiss(self._vector_db):
            return
        gen = self.store.current_generation()
        self.backend.check_writable(None if rebuild else gen)

    # ------------------------------------------------------------------------------------------------ search
    def search(self, query: str, k: int = 10, mode: str = "dense", where: str | None = None, *,
               rerank: str | Reranker | None = None, rerank_depth: int | None = None,
               collapse: bool = True) -> list[SearchResult]:
        return self.search_many([query], k=k, mode=mode, where=where, rerank=rerank, rerank_depth=rerank_depth,
                                collapse=collapse)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, mode: str = "dense",
                    where: str | None = None, query_vectors: np.ndarray | None = None, *,
                    rerank: str | Reranker | None = None, rerank_depth: int | None = None,
                    collapse: bool = True) -> list[list[SearchResult]]:
        """Search several queries with one batched encode (or with `query_vectors` already encoded).

        `collapse`: near-copies of a better result (the same manual as pdf, man page and info) are left out and
        named in its `also_in` (llara_search/collapse.py); evaluation and negative mining turn it off.

        `rerank`: a reranker (or its model name, loaded once and kept) re-scores the first stage's top
        `rerank_depth` candidates (collapsed first, so no copy takes a candidate's place) and the top-k by its score
        are returned, each with its first-stage rank and score; a reranker failure raises `EngineError` (the server
        answers in first-stage order instead: `rerank()`)."""
        if rerank is not None:
            from .rerank import DEFAULT_DEPTH

            depth = self.rerank_depth(k, max(DEFAULT_DEPTH, k) if rerank_depth is None else rerank_depth)
            reranker = self.reranker(rerank) if isinstance(rerank, str) else rerank
            first = self.search_many(queries, k=depth, mode=mode, where=where, query_vectors=query_vectors,
                                     collapse=collapse)
            return [o.results for o in self.rerank(queries, first, k, reranker)]
        if mode not in MODES:
            raise EngineError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        if not 1 <= int(k) <= MAX_K:
            raise EngineError(f"k must be between 1 and {MAX_K}, not {k}")
        queries = list(queries)
        if any(not isinstance(q, str) or not q.strip() for q in queries):
            raise EngineError("every query must be a non-empty string")
        if not queries:
            return []
        searcher = self.searcher
        pinned = searcher.refresh(need_ann=mode != "bm25")  # one generation for the whole call: never a mix
        gen = pinned[0]
        if gen.ntotal == 0:
            raise EngineError(f"index {self.paths.root} is empty (0 chunks); ingest documents first")
        if mode != "bm25" and searcher.vectors is None:
            raise EngineError(f"index {self.paths.root} is text-only (built with --model none); use --mode bm25")
        fetch = min(MAX_K, collapse_depth(k)) if collapse else k
        depth = max(fetch, 100) if mode == "hybrid" else fetch
        fusion = self.fusion_settings() if mode == "hybrid" else {}
        dense: list[list[tuple[int, float]]] = [[] for _ in queries]
        if mode in ("dense", "hybrid"):
            if query_vectors is None and self._encoder is not None and gen.fingerprint \
                    and self._encoder.fingerprint != gen.fingerprint:
                with self._load_lock:
                    self._encoder = None  # a re-encode committed a new model/adapter: load the index's new one
            qv = query_vectors if query_vectors is not None else self.encode_queries(queries)
            dense = searcher.dense(qv, depth, where, pinned=pinned)
        out = []
        for qi, q in enumerate(queries):
            if mode == "dense":
                hits = dense[qi]
            elif mode == "bm25":
                hits = searcher.bm25(q, fetch, where, pinned=pinned)
            else:
                hits = fuse(dense[qi], searcher.bm25(q, depth, where, pinned=pinned), fetch, **fusion)
            out.append(_collapsed(searcher, hits, k) if collapse else searcher.results(hits))
        return out

    # ------------------------------------------------------------------------------------------------ re-ranking
    def reranker(self, model: str, *, base: str | None = None, normalize: bool = False,
                 max_length: int | None = None, family: str = "auto") -> Reranker:
        """A second-stage reranker (cross-encoder or RankLLaMA; hub id or local folder), loaded on first use and
        kept for the life of the engine: loading a 7B reranker per query would cost more than the search."""
        key = (model_identity(model), base and model_identity(base), bool(normalize), max_length, family)
        with self._rerank_lock:
            if key not in self._rerankers:
                from .rerank import RerankError, load_reranker

                try:
                    self._rerankers[key] = load_reranker(model, base=base, family=family, device=self.device,
                                                         dtype=self.dtype, normalize=normalize, max_length=max_length)
                except RerankError as exc:
                    raise EngineError(str(exc)) from None
                except OSError as exc:
                    raise EngineError(f"cannot load reranker {model}: {str(exc).splitlines()[0]}") from None
            return self._rerankers[key]

    @staticmethod
    def rerank_depth(k: int, depth: int) -> int:
        """`depth` checked against k (one clear line when it cannot fill the answer)."""
        from .rerank import RerankError, check_depth

        if not 1 <= int(k) <= MAX_K:
            raise EngineError(f"k must be between 1 and {MAX_K}, not {k}")
        try:
            return check_depth(depth, k)
        except RerankError as exc:
            raise EngineError(str(exc)) from None

    def rerank(self, queries: Sequence[str], candidates: Sequence[Sequence[SearchResult]], k: int,
               reranker: Reranker, *, deadline: float | None = None, fallback: bool = False) -> list[RerankOutcome]:
        """Re-score each query's first-stage `candidates` (all queries' pairs in one length-sorted pass) and keep
        the top-k by the reranker's score.

        `deadline` (a `time.monotonic()` value) bounds the wait for the reranker and the scoring. With
        `fallback=True` a failure (time budget, NaN scores, out of memory) answers each query with its first-stage
        top-k and the reason, instead of raising: a server never loses its first-stage answer to the reranker."""
        from .rerank import RerankError, RerankOutcome, RerankTimeout, reorder

        queries, candidates = list(queries), [list(c) for c in candidates]
        flat_q = [q for q, hits in zip(queries, candidates) for _ in hits]
        flat = [h for hits in candidates for h in hits]
        t = time.perf_counter()
        try:
            scores = reranker.score_pairs(flat_q, [h.text for h in flat], [h.heading for h in flat],
                                          deadline=deadline)
        except Exception as exc:  # noqa: BLE001 - with fallback, no reranker failure may cost the first stage's answer
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            what = first_line if isinstance(exc, RerankError) else \
                f"reranker {reranker.name} failed: {type(exc).__name__}: {first_line}"
            if not fallback:
                if not isinstance(exc, RuntimeError):  # not a RerankError nor a torch failure (CUDA out of memory)
                    raise
                raise EngineError(what) from None
            reason = f"{what}; answered in first-stage order"
            if isinstance(exc, RerankTimeout):
                reason += " (raise --rerank-budget-ms or lower --rerank-depth)"
            log.warning("re-ranking skipped: %s", reason, exc_info=not isinstance(exc, RerankError))
            ms = (time.perf_counter() - t) * 1000
            return [RerankOutcome(hits[:k], False, reranker.name, len(hits), 0, ms, reason) for hits in candidates]
        ms = (time.perf_counter() - t) * 1000
        out, pos = [], 0
        for hits in candidates:
            part = scores[pos:pos + len(hits)]
            pos += len(hits)
            out.append(RerankOutcome(reorder(hits, part, k), True, reranker.name, len(hits), len(hits), ms))
        return out

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self.embed(queries, "query")

    def embed(self, texts: Sequence[str], kind: str = "passage") -> np.ndarray:
        """Vectors of texts with the index's encoder; one forward at a time (torch is not re-entrant-friendly)."""
        if kind not in ("passage", "query"):
            raise EngineError(f"kind must be 'passage' or 'query', not {kind!r}")
        encoder = self.encoder
        with self._encode_lock:
            return encoder.encode(list(texts), kind)

    # ------------------------------------------------------------------------------------------------ writing
    def _prepare_write(self, model: str | None, adapter: str | None, chunk_tokens: int | None,
                       index_type: str | None, index_factory: str | None, allow_pending: bool = False,
                       need_chunker: bool = True) -> tuple[dict, Chunker | None, str]:
        """Record the model on first use, apply option changes, and give the chunker of the index's tokenizer
        (`need_chunker=False`: delete, reindex and re-encode never chunk, so they skip loading the tokenizer)."""
        _bind(self.paths, self.store)
        info = self.info
        if not info.get("model"):
            name = model_identity(model or os.environ.get("LLARA_SEARCH_MODEL") or DEFAULT_MODEL)
            adapter_id = str(Path(adapter).resolve()) if adapter else None
            if name == TEXT_ONLY:
                if adapter_id:
                    raise EngineError("--adapter needs a model; a text-only index (--model none) has no encoder")
                tokenizer = WordTokenizer()
                record = dict(model=TEXT_ONLY, adapter=None, fingerprint="text-only", dim=0, max_length=100_000,
                              index_type="none", index_factory=None)
            else:
                try:
                    tokenizer = load_tokenizer(name, adapter_id)
                    fp = fingerprint_for(name, adapter_id, 512)
                except OSError as exc:
                    raise EngineError(str(exc).splitlines()[0]) from None
                from transformers import AutoConfig

                from .encoder.checkpoint import resolve_model_dir

                dim = int(AutoConfig.from_pretrained(resolve_model_dir(name), local_files_only=True).hidden_size)
                record = dict(model=name, adapter=adapter_id, fingerprint=fp, dim=dim, max_length=512,
                              index_type=index_type or "auto", index_factory=index_factory,
                              **self._vector_db_record(dim))
                if not is_faiss(record["vector_db"]) and index_factory:
                    raise EngineError("--index-factory is a FAISS setting; a Milvus index is chosen with --index-type")
                self.backend.check_index_type(index_type)
            if name == TEXT_ONLY and not is_faiss(self._vector_db):
                raise EngineError("a text-only index (--model none) has no vectors; leave out --vector-db")
            with self.store.session() as s:
                self.store.set_info(s, chunk_tokens=int(chunk_tokens or DEFAULT_CHUNK_TOKENS), **record)
            info = self.info
        else:
            if info.get("pending_reencode") and not allow_pending:
                raise EngineError(f"a re-encode of {self.paths.root} was interrupted; finish it first with "
                                  f"`llara-search reencode --index {self.paths.root}"
                                  f"{reencode_args(info['pending_reencode'])}`")
            text_only = info["model"] == TEXT_ONLY
            if text_only and (index_type or index_factory):
                raise EngineError(f"index {self.paths.root} is text-only (--model none): it has no vector index")
            updates = {}
            if index_type and index_type != info.get("index_type"):
                self.backend.check_index_type(index_type)
                updates["index_type"] = index_type
            if index_factory and index_factory != info.get("index_factory"):
                if not is_faiss(info.get("vector_db")):
                    raise EngineError("--index-factory is a FAISS setting; a Milvus index is chosen with --index-type")
                updates["index_factory"] = index_factory
            if chunk_tokens and int(chunk_tokens) != int(info.get("chunk_tokens", DEFAULT_CHUNK_TOKENS)):
                updates["chunk_tokens"] = int(chunk_tokens)
            if updates:
                with self.store.session() as s:
                    self.store.set_info(s, **updates)
                info = self.info
            if not need_chunker:
                return info, None, info["fingerprint"]
            if text_only:
                tokenizer = WordTokenizer()
            else:
                tokenizer = self._encoder.tokenizer if self._encoder else load_tokenizer(info["model"],
                                                                                        info.get("adapter"))
        chunker = Chunker(tokenizer, int(info.get("chunk_tokens", DEFAULT_CHUNK_TOKENS)), int(info["max_length"]))
        return info, chunker, info["fingerprint"]

    def _vector_db_record(self, dim: int) -> dict:
        """What a new index records about its vector backend: `vector_db`, and an index id that names (and owns)
        its Milvus collections."""
        want = self._vector_db
        if want is None and os.environ.get("LLARA_SEARCH_VECTOR_DB"):
            want = _new_vector_db(self.paths, os.environ["LLARA_SEARCH_VECTOR_DB"])[0]
        want = want or FAISS
        if is_faiss(want):
            return {"vector_db": FAISS}
        index_id = self.info.get("index_id") or self._new_index_id or _random_id()
        if self._backend is None or getattr(self._backend, "uri", None) != want:
            self._backend = open_backend(self.paths, {"index_id": index_id, "dim": dim}, want)
        self._backend.index_id, self._backend.dim = index_id, dim
        self._backend.check_writable(None)
        return {"vector_db": want, "index_id": index_id}

    def _ingestor(self, chunker: Chunker | None, fingerprint: str, options: IngestOptions,
                  progress: Callable | None) -> Ingestor:
        if self.info.get("model") == TEXT_ONLY:
            return Ingestor(self.paths, self.store, None, chunker, None, fingerprint, options, progress)
        info = self.info
        vectors = VectorStore(self.paths.vectors, int(info["dim"]), writer=True)
        spec = self._spec(info["model"], info.get("adapter"))
        ing = Ingestor(self.paths, self.store, vectors, chunker,
                       lambda texts: self._encode_passages(self.encoder, spec, texts, options.batch_size),
                       fingerprint, options, progress, backend=self.backend)

        def load():
            enc = self.encoder
            ing.info_on_commit["passage_dtypes"] = merge_dtypes(info.get("passage_dtypes"), _dtype_name(enc))
            return enc

        ing.load_encoder = load
        return ing

    def check_memory(self, model: str | None = None, adapter: str | None = None,
                     for_adapter: bool = False) -> Estimate | None:
        """The memory check of this index's encoder (or, before the first ingest, of `model`; with `for_adapter`,
        of the index's model with `adapter` instead of its own) in this engine's dtype and device; raises
        `InsufficientMemoryError` when it cannot fit. None for a text-only index."""
        info = self.info
        recorded = info.get("model")
        if recorded and not for_adapter:
            adapter = info.get("adapter")
        return check_encoder_memory(recorded or model, adapter=adapter, dtype=self.dtype, device=self.device,
                                    max_length=int(info.get("max_length", 512)))

    @staticmethod
    def _with_memory(report: IngestReport, memory: Estimate | None) -> IngestReport:
        if memory is not None:
            report.memory = memory.to_dict()
        return report

    def ingest(self, paths: Sequence[str | os.PathLike], *, model: str | None = None, adapter: str | None = None,
               chunk_tokens: int | None = None, options: IngestOptions | None = None, wait: bool = False,
               progress: Callable[[str, int, int], None] | None = None) -> IngestReport:
        """Sync files/folders into the index: new and changed files encoded, missing ones removed."""
        roots = [Path(p) for p in paths]
        missing = [str(p) for p in roots if not p.exists()]
        if missing:
            raise EngineError(f"no such file or folder: {missing[0]}")
        options = options or IngestOptions()
        memory = self.check_memory(model, adapter) if not self.info.get("model") else None
        with WriteLock(self.paths.lock, wait=wait):
            self._check_vectors()
            info = self.info
            reencoded = 0
            if adapter is not None and info.get("model") and _adapter_id(adapter) != info.get("adapter"):
                reencoded = self._reencode(_adapter_id(adapter), progress).chunks_encoded  # new adapter: all chunks
            _, chunker, fp = self._prepare_write(model, adapter, chunk_tokens, options.index_type,
                                                 options.index_factory)
            report = self._ingestor(chunker, fp, options, progress).run_files(roots)
            report.chunks_encoded += reencoded
            self._calibrate_fusion()
            return self._with_memory(report, memory)

    def reencode(self, adapter: str | os.PathLike | None,
                 progress: Callable[[str, int, int], None] | None = None, *,
                 model: str | os.PathLike | None = None) -> IngestReport:
        """Re-encode every chunk with the index's base model (or `model`, e.g. the whole model `train --full`
        wrote) and `adapter` (None: the model alone) into a new generation. Queries follow: the generation carries
        the new fingerprint and the engine reloads for it."""
        adapter_id = _adapter_id(adapter) if adapter else None
        model_id = model_identity(str(model)) if model else None
        memory = None
        if self.info.get("model") not in (None, TEXT_ONLY):  # before the lock file is touched
            memory = self._reencode_memory(adapter_id, model_id)
        with WriteLock(self.paths.lock):
            self._check_vectors(rebuild=True)
            report = self._reencode(adapter_id, progress, memory, model_id)
            self._calibrate_fusion()
            return report

    def _reencode_memory(self, adapter_id: str | None, model_id: str | None) -> Estimate | None:
        """The memory check of a re-encode: the index's model with `adapter_id`, or another whole model."""
        if model_id is None:
            return self.check_memory(adapter=adapter_id, for_adapter=True)
        return check_encoder_memory(model_id, adapter=adapter_id, dtype=self.dtype, device=self.device,
                                    max_length=int(self.info.get("max_length", 512)))

    def _reencode(self, adapter_id: str | None, progress, memory: Estimate | None = None,
                  new_model: str | None = None) -> IngestReport:
        info = self.info
        if not info.get("model"):
            raise EngineError(f"index {self.paths.root} is empty; ingest with --adapter instead")
        if info["model"] == TEXT_ONLY:
            raise EngineError(f"index {self.paths.root} is text-only (--model none): there is nothing to re-encode")
        if adapter_id is not None and not (Path(adapter_id) / "adapter_config.json").is_file():
            whole = (Path(adapter_id) / "config.json").is_file()
            raise EngineError(f"{adapter_id} is not a peft adapter folder (no adapter_config.json)" +
                              ("; it is a whole model (`train --full`): use --model" if whole else
                               "; point --adapter at the output folder of `llara-search train` or `finetune`"))
        model = new_model or info["model"]
        if new_model is not None and new_model != info["model"]:
            self._check_same_space(new_model, info)
        memory = memory or self._reencode_memory(adapter_id, new_model)  # before anything is recorded
        fp = fingerprint_for(model, adapter_id, int(info.get("max_length", 512)))
        with self.store.session() as s:
            self.store.set_info(s, pending_reencode={"adapter": adapter_id, "fingerprint": fp, "model": new_model})
        from .encoder.model import LlaraEncoder

        spec = self._spec(model, adapter_id)
        enc = LlaraEncoder.from_pretrained(**spec, device=self.device, show_progress=self.show_progress)
        self._prepare_write(None, None, None, None, None, allow_pending=True, need_chunker=False)
        vectors = VectorStore(self.paths.vectors, int(info["dim"]), writer=True)
        ing = Ingestor(self.paths, self.store, vectors, None, lambda t: self._encode_passages(enc, spec, t), fp,
                       IngestOptions(), progress, backend=self.backend)
        ing.load_encoder = lambda: enc
        t = time.perf_counter()
        ing.reencode_all()
        ing.commit_generation(rebuild=True, force=True,
                              info_updates={"adapter": adapter_id, "fingerprint": fp, "pending_reencode": None,
                                            "passage_dtypes": [_dtype_name(enc)], "model": model})
        with self._load_lock:
            self._encoder = enc
        ing.report.seconds = time.perf_counter() - t
        counts = self.store.counts(ing.report.generation or 0)
        ing.report.documents, ing.report.chunks_total = counts["documents"], counts["chunks_total"]
        return self._with_memory(ing.report, memory)

    def _check_same_space(self, new_model: str, info: dict) -> None:
        """A model replacing the index's own must read the same tokens (chunks were cut by the old tokenizer's
        counts) and give vectors of the same width (the stored vectors' rows)."""
        from transformers import AutoConfig

        from .encoder.checkpoint import resolve_model_dir

        try:
            dim = int(AutoConfig.from_pretrained(resolve_model_dir(new_model), local_files_only=True).hidden_size)
            same_tokens = load_tokenizer(new_model).get_vocab() == load_tokenizer(info["model"]).get_vocab()
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load model {new_model}: {str(exc).splitlines()[0]}") from None
        if dim != int(info["dim"]):
            raise EngineError(f"model {new_model} gives {dim}-d vectors, index {self.paths.root} holds "
                              f"{info['dim']}-d ones; build a new index with `ingest --model {new_model} --index NEW`")
        if not same_tokens:
            raise EngineError(f"model {new_model} has another tokenizer than {info['model']}, which cut this index's "
                              f"chunks; build a new index with `ingest --model {new_model} --index NEW`")

    def _calibrate_fusion(self) -> None:
        """Weigh hybrid search's halves for this index (fusion.py) when its encoder or size changed since the last
        time; called under the write lock, after the generation is committed (the measurement searches it)."""
        from .fusion import calibrate, needs_calibration

        info = self.info
        if info.get("model") in (None, TEXT_ONLY):
            return
        gen = self.store.current_generation()
        if not needs_calibration(info.get("fusion"), gen, self.store.counts(gen.id)["chunks_total"] if gen else 0):
            return
        result = calibrate(self)
        with self.store.session() as s:
            self.store.set_info(s, fusion=result)

    def fusion_settings(self) -> dict:
        """How `hybrid` fuses: the index's calibrated dense weight when measured, else equal weights."""
        from .fusion import DEFAULT_DENSE_WEIGHT, FUSION_METHOD

        f = self.info.get("fusion") or {}
        return {"method": f.get("method", FUSION_METHOD), "dense_weight": f.get("dense_weight", DEFAULT_DENSE_WEIGHT)}

    def ingest_records(self, records, source: str, *, model: str | None = None, chunk_tokens: int | None = None,
                       options: IngestOptions | None = None,
                       progress: Callable[[str, int, int], None] | None = None,
                       expected: int | None = None) -> IngestReport:
        """Ingest `(doc_key, title, text)` records (BEIR corpora) under the document prefix `source:`
        (`expected`: how many records, when known, for the encode forecast)."""
        options = options or IngestOptions()
        memory = self.check_memory(model) if not self.info.get("model") else None
        with WriteLock(self.paths.lock):
            self._check_vectors()
            _, chunker, fp = self._prepare_write(model, None, chunk_tokens, options.index_type, options.index_factory)
            report = self._ingestor(chunker, fp, options, progress).run_records(records, source, expected)
            self._calibrate_fusion()
            return self._with_memory(report, memory)

    def delete(self, paths: Sequence[str | os.PathLike]) -> IngestReport:
        """Remove documents (files, or everything under folders) from the index explicitly."""
        from sqlalchemy import select

        with WriteLock(self.paths.lock):
            self._check_vectors()
            _, chunker, fp = self._prepare_write(None, None, None, None, None, need_chunker=False)
            ing = self._ingestor(chunker, fp, IngestOptions(), None)
            with self.store.sessions() as s:
                live = list(s.scalars(select(Document.path).where(Document.removed_gen.is_(None))))
            targets = []
            for p in paths:
                a = os.path.abspath(p)
                targets += [d for d in live if d == a or d.startswith(a.rstrip("/") + "/") or d == str(p)]
            ing.remove_documents(sorted(set(targets)))
            ing.commit_generation()
            counts = self.store.counts(ing.report.generation or 0)
            ing.report.documents, ing.report.chunks_total = counts["documents"], counts["chunks_total"]
            return ing.report

    def reindex(self, index_type: str | None = None, index_factory: str | None = None,
                vector_db: str | None = None) -> IngestReport:
        """Retrain and rebuild the vector index from the stored vectors (no re-encoding) as a new generation.
        `vector_db`: build it in another vector database (FAISS, Milvus Lite, a Milvus server) and move the index
        there; readers follow with the generation's commit, and the old one is left for readers still on it."""
        if self.info.get("model") == TEXT_ONLY:
            raise EngineError(f"index {self.paths.root} is text-only (--model none): it has no vector index to rebuild")
        target = _new_vector_db(self.paths, vector_db)[0] if vector_db is not None else None
        if target is not None and not self.info.get("model"):
            raise EmptyIndexError(f"index {self.paths.root} has no committed data yet; nothing to move")
        if target is not None and target == (self.info.get("vector_db") or FAISS):
            target = None
        with WriteLock(self.paths.lock):
            if target is None:
                self._check_vectors(rebuild=True)
                _, chunker, fp = self._prepare_write(None, None, None, index_type, index_factory, need_chunker=False)
                ing = self._ingestor(chunker, fp, IngestOptions(index_type=index_type, index_factory=index_factory),
                                     None)
                updates = None
            else:
                ing, updates = self._move_to(target, index_type, index_factory)
            t = time.perf_counter()
            ing.commit_generation(rebuild=True, force=True, info_updates=updates)
            if target is not None:
                old, self._backend, self._searcher = self._backend, ing.backend, None
                if old is not None and old is not ing.backend:
                    old.close()
            ing.report.seconds = time.perf_counter() - t
            counts = self.store.counts(ing.report.generation or 0)
            ing.report.documents, ing.report.chunks_total = counts["documents"], counts["chunks_total"]
            return ing.report

    def _move_to(self, target: str, index_type: str | None, index_factory: str | None) -> tuple[Ingestor, dict]:
        """An Ingestor that rebuilds the index in `target`, and the facts to record with the generation it commits."""
        _, _, fp = self._prepare_write(None, None, None, None, None, need_chunker=False)
        info = self.info
        index_id = info.get("index_id") or _random_id()
        backend = open_backend(self.paths, info | {"index_id": index_id}, target)
        if is_faiss(target) and index_type not in (None, "auto", "flat", "ivfpq"):
            index_type = None
        backend.check_index_type(index_type)
        if index_factory and not is_faiss(target):
            raise EngineError("--index-factory is a FAISS setting; a Milvus index is chosen with --index-type")
        backend.check_writable(None)
        updates = {"vector_db": target, "index_id": index_id, "index_type": index_type or "auto",
                   "index_factory": index_factory if is_faiss(target) else None}
        if not is_faiss(info.get("vector_db")):
            # `compact` drops the old collections once no reader can be on a generation that names them
            updates["retired_vector_db"] = info["vector_db"]
        vectors = VectorStore(self.paths.vectors, int(info["dim"]), writer=True)
        ing = Ingestor(self.paths, self.store, vectors, None, None, fp,
                       IngestOptions(index_type=index_type or "auto", index_factory=updates["index_factory"]), None,
                       backend=backend)
        return ing, updates

    def compact(self, grace_s: float = COMPACT_GRACE_S, wait: bool = False) -> dict:
        """Give back the disk space of removed chunks: their rows, old index files, and dead stored vectors (which a
        re-encode doubles). A search pins one generation only while it runs, so once the newest generation is
        `grace_s` old no search can still be on the one before, and what only that one used goes too."""
        from datetime import timezone

        from .store.models import utcnow

        with WriteLock(self.paths.lock, wait=wait):
            gen = self.store.current_generation()
            if gen is None:
                raise EmptyIndexError(f"index {self.paths.root} has no committed data yet; nothing to compact")
            before = self._disk_sizes()
            created = gen.created_at if gen.created_at.tzinfo else gen.created_at.replace(tzinfo=timezone.utc)
            age = (utcnow() - created).total_seconds()
            horizon = gen.id if age >= grace_s else gen.id - 1
            t = time.perf_counter()
            self._check_vectors()
            _, chunker, fp = self._prepare_write(None, None, None, None, None, allow_pending=False,
                                                 need_chunker=False)
            ing = self._ingestor(chunker, fp, IngestOptions(), None)
            purged, dropped = ing.cleanup(gen.id, horizon, compact=True)
            if ing.lexical.optimize(gen.id):  # one segment without the removed chunks' postings
                write_head(self.paths, gen.id)
                ing.lexical.cleanup(range(horizon, gen.id + 1))
            self.backend.compact()
            self._retire_vector_db(horizon == gen.id)
            self.store.optimize()
            after = self._disk_sizes()
        return {"index": str(self.paths.root), "generation": gen.id,
                "kept_previous_generation": horizon < gen.id, "chunk_rows_purged": purged,
                "vector_rows_dropped": dropped, "bytes_before": before, "bytes_after": after,
                "bytes_freed": sum(before.values()) - sum(after.values()),
                "seconds": round(time.perf_counter() - t, 3)}

    def _retire_vector_db(self, no_reader_left: bool) -> None:
        """After `reindex --vector-db` moved the index away from Milvus: drop its collections there once no reader
        can be on a generation that names them."""
        old = self.info.get("retired_vector_db")
        if not old or not no_reader_left:
            return
        retired = open_backend(self.paths, self.info, old)
        try:
            retired.cleanup(0, 0, {})
        finally:
            retired.close()
        with self.store.session() as s:
            self.store.set_info(s, retired_vector_db=None)

    def _disk_sizes(self) -> dict[str, int]:
        sizes = {"database": 0, "vectors": 0, "index": 0, "lexical": 0}
        for name in ("meta.sqlite", "meta.sqlite-wal"):
            p = self.paths.root / name
            sizes["database"] += p.stat().st_size if p.exists() else 0
        if dim := self.info.get("dim"):  # 0 for text-only indexes
            sizes["vectors"] = VectorStore(self.paths.vectors, int(dim)).disk_bytes()
        if self.paths.generations.is_dir():
            sizes["index"] = sum(f.stat().st_size for f in self.paths.generations.glob("gen-*.faiss"))
        if not is_faiss(self.info.get("vector_db")):
            sizes["index"] += self.backend.disk_bytes()  # a Milvus Lite folder; a server's disks are not ours to count
        if self.paths.lexical.is_dir():
            sizes["lexical"] = sum(f.stat().st_size for f in self.paths.lexical.iterdir())
        return sizes

    # ------------------------------------------------------------------------------------------------ facts
    def status(self) -> dict:
        info = self.info
        gen = self.store.current_generation()
        counts = self.store.counts(gen.id if gen else 0)
        out = {
            "index": str(self.paths.root), "model": info.get("model"), "adapter": info.get("adapter"),
            "fingerprint": info.get("fingerprint"), "dim": info.get("dim"),
            "passage_dtypes": info.get("passage_dtypes"),
            "query_dtype": _dtype_name(self._encoder) if self._encoder is not None else None, **counts,
            "generation": gen.id if gen else None, "index_type": gen.index_type if gen else None,
            "factory": gen.factory if gen else None, "ntotal": gen.ntotal if gen else 0,
            "nprobe": gen.nprobe if gen else None, "rerank": gen.rerank if gen else None,
            "trained_on": gen.trained_on if gen else None,
            "ann_tuning": info.get("ann_tuning") if gen and gen.index_type != "flat" else None,
            "fusion": info.get("fusion"),
            "verdict": verdict_of(info.get("adapter") or info.get("model")),  # the retrain's check, if it had one
        }
        out["bytes_on_disk"] = self._disk_sizes()
        out["lexical"] = LexicalIndex(self.paths.lexical).describe(gen.id) if gen else None
        if info.get("model") != TEXT_ONLY:
            out.update(self.backend.status())
        try:
            out["reindex_hint"] = self.backend.needs_retrain(gen, counts["chunks_total"], int(info.get("dim") or 1),
                                                             info.get("index_type", "auto")) \
                if gen and gen.index_file else None
        except VectorDBError as exc:  # status reports what the database knows even when Milvus is away
            out["reindex_hint"], out["vector_db_error"] = None, str(exc)
        return out

    def doctor(self, repair: bool = False, wait: bool = False) -> dict:
        """Check that database rows, FTS rows, stored vectors and the index generation agree; `repair` rebuilds the
        derived parts and quarantines what it cannot explain, then checks again."""
        from .doctor import Doctor

        doc = Doctor(self.paths, self.store, self.backend if self.info.get("model") not in (None, TEXT_ONLY)
                     else None)
        found = doc.diagnose()
        if not repair:
            return found.to_dict() | {"repaired": []}
        done = doc.repair(found, wait=wait)
        self._searcher = None  # a repair may have committed a new generation
        return doc.diagnose().to_dict() | {"repaired": done, "before": found.to_dict()}

    def bench(self, n_queries: int = 200, k: int = 10, seed: int = 0) -> dict:
        """recall@k of the ANN + re-rank path against exact search over the stored vectors, and its latency.

        Queries are stored vectors left out of their own answers (no model needed; points where the corpus's
        queries land), the same model the default nprobe was tuned with.
        """
        from .index.ann import leave_one_out_queries

        if self.info.get("model") == TEXT_ONLY:
            raise EngineError(f"index {self.paths.root} is text-only (--model none): there is no vector index to bench")
        searcher = self.searcher
        pinned = searcher.refresh()
        gen, ann = pinned
        ids = self.store.visible_chunk_ids(gen.id)
        if len(ids) < 2:
            raise EngineError(f"index {self.paths.root} has fewer than 2 chunks; nothing to benchmark")
        q, truth = leave_one_out_queries(ids, searcher.vectors.get, k, n_queries, seed)
        lat, hits = [], 0
        for qi in range(len(q)):
            t = time.perf_counter()
            got = searcher.dense(q[qi:qi + 1], k + 1, pinned=pinned)[0]
            lat.append((time.perf_counter() - t) * 1000)
            hits += len({i for i, _ in got} & set(truth[qi].tolist()))
        denom = sum(len(t) for t in truth) or 1
        from .index.ann import recall_target

        recall = round(hits / denom, 4)
        tuned = self.info.get("ann_tuning") or {}
        target = None if ann.exact else tuned.get("target", recall_target())
        out = {"index_type": gen.index_type, "factory": gen.factory, "ntotal": ann.ntotal, "queries": len(q),
               "nprobe": gen.nprobe, "rerank": gen.rerank,
               f"recall@{k}": recall, "p50_ms": round(float(np.percentile(lat, 50)), 3),
               "p99_ms": round(float(np.percentile(lat, 99)), 3),
               "bytes_per_vector": round(ann.memory_bytes() / max(1, ann.ntotal), 1),
               "target_recall": target, "tuned_recall": tuned.get(f"recall@{k}"), "warning": None}
        if target is not None and tuned.get("met") is False:
            out["warning"] = tuned["warning"]
        elif target is not None and recall < target - 0.02:  # beyond the sampling noise of 200 queries
            out["warning"] = (f"recall@{k} {recall:.3f} is below the {target:.2f} the index was tuned for; run "
                              "`llara-search reindex` to re-tune it, or use --index-type flat (exact)")
        return out
