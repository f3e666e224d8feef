"""`Engine`: one facade over an index folder. The CLI, the HTTP server and the tests all go through it."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from .encoder import DEFAULT_MODEL, fingerprint_for, load_tokenizer
from .index import VectorStore
from .index.generations import needs_retrain
from .ingest.chunking import DEFAULT_CHUNK_TOKENS, Chunker
from .ingest.pipeline import IngestOptions, Ingestor, IngestReport
from .ingest.words import WordTokenizer
from .layout import IndexPaths, WriteLock, default_index_dir
from .search import MODES, EmptyIndexError, SearchResult, Searcher, fuse
from .store import Document, Store
from .store.db import StoreError

if TYPE_CHECKING:
    from .encoder.model import LlaraEncoder

MAX_K = 1000
COMPACT_GRACE_S = 60.0  # far longer than any one search holds its generation
TEXT_ONLY = "none"  # `--model none`: a text-only index searched by BM25 alone (no encoder, no vectors)


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
        self.pool = None  # an EncodePool under torchrun: passages are encoded by every process (distributed.py)
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()

    # ------------------------------------------------------------------------------------------------ opening
    @classmethod
    def open(cls, index_dir: str | os.PathLike | None = None, *, db_url: str | None = None,
             model: str | None = None, create: bool = False, device: str | None = None, dtype: str | None = None,
             show_progress: bool = False) -> "Engine":
        """Open an index folder (and its database). `create=True` makes a new one; otherwise it must exist."""
        paths = IndexPaths(Path(index_dir) if index_dir else default_index_dir(), db_url)
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
        return engine

    @property
    def info(self) -> dict:
        return self.store.get_info()

    def close(self) -> None:
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
            self._searcher = Searcher(self.paths, self.store, int(dim) or None)
        return self._searcher

    # ------------------------------------------------------------------------------------------------ search
    def search(self, query: str, k: int = 10, mode: str = "dense", where: str | None = None) -> list[SearchResult]:
        return self.search_many([query], k=k, mode=mode, where=where)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, mode: str = "dense",
                    where: str | None = None, query_vectors: np.ndarray | None = None) -> list[list[SearchResult]]:
        """Search several queries with one batched encode (or with `query_vectors` already encoded)."""
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
        depth = max(k, 100) if mode == "hybrid" else k
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
                hits = searcher.bm25(q, k, where, pinned=pinned)
            else:
                hits = fuse(dense[qi], searcher.bm25(q, depth, where, pinned=pinned), k, **fusion)
            out.append(searcher.results(hits))
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
                              index_type=index_type or "auto", index_factory=index_factory)
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
                updates["index_type"] = index_type
            if index_factory and index_factory != info.get("index_factory"):
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

    def _ingestor(self, chunker: Chunker | None, fingerprint: str, options: IngestOptions,
                  progress: Callable | None) -> Ingestor:
        if self.info.get("model") == TEXT_ONLY:
            return Ingestor(self.paths, self.store, None, chunker, None, fingerprint, options, progress)
        info = self.info
        vectors = VectorStore(self.paths.vectors, int(info["dim"]), writer=True)
        spec = self._spec(info["model"], info.get("adapter"))
        return Ingestor(self.paths, self.store, vectors, chunker,
                        lambda texts: self._encode_passages(self.encoder, spec, texts, options.batch_size),
                        fingerprint, options, progress)

    def ingest(self, paths: Sequence[str | os.PathLike], *, model: str | None = None, adapter: str | None = None,
               chunk_tokens: int | None = None, options: IngestOptions | None = None, wait: bool = False,
               progress: Callable[[str, int, int], None] | None = None) -> IngestReport:
        """Sync files/folders into the index: new and changed files encoded, missing ones removed."""
        roots = [Path(p) for p in paths]
        missing = [str(p) for p in roots if not p.exists()]
        if missing:
            raise EngineError(f"no such file or folder: {missing[0]}")
        options = options or IngestOptions()
        with WriteLock(self.paths.lock, wait=wait):
            info = self.info
            reencoded = 0
            if adapter is not None and info.get("model") and _adapter_id(adapter) != info.get("adapter"):
                reencoded = self._reencode(_adapter_id(adapter), progress).chunks_encoded  # new adapter: all chunks
            _, chunker, fp = self._prepare_write(model, adapter, chunk_tokens, options.index_type,
                                                 options.index_factory)
            report = self._ingestor(chunker, fp, options, progress).run_files(roots)
            report.chunks_encoded += reencoded
            self._calibrate_fusion()
            return report

    def reencode(self, adapter: str | os.PathLike | None,
                 progress: Callable[[str, int, int], None] | None = None, *,
                 model: str | os.PathLike | None = None) -> IngestReport:
        """Re-encode every chunk with the index's base model (or `model`, e.g. the whole model `train --full`
        wrote) and `adapter` (None: the model alone) into a new generation. Queries follow: the generation carries
        the new fingerprint and the engine reloads for it."""
        with WriteLock(self.paths.lock):
            report = self._reencode(_adapter_id(adapter) if adapter else None, progress,
                                    model_identity(str(model)) if model else None)
            self._calibrate_fusion()
            return report

    def _reencode(self, adapter_id: str | None, progress, new_model: str | None = None) -> IngestReport:
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
        fp = fingerprint_for(model, adapter_id, int(info.get("max_length", 512)))
        with self.store.session() as s:
            self.store.set_info(s, pending_reencode={"adapter": adapter_id, "fingerprint": fp, "model": new_model})
        from .encoder.model import LlaraEncoder

        spec = self._spec(model, adapter_id)
        enc = LlaraEncoder.from_pretrained(**spec, device=self.device, show_progress=self.show_progress)
        self._prepare_write(None, None, None, None, None, allow_pending=True, need_chunker=False)
        vectors = VectorStore(self.paths.vectors, int(info["dim"]), writer=True)
        ing = Ingestor(self.paths, self.store, vectors, None, lambda t: self._encode_passages(enc, spec, t), fp,
                       IngestOptions(), progress)
        t = time.perf_counter()
        ing.reencode_all()
        ing.commit_generation(rebuild=True, force=True,
                              info_updates={"adapter": adapter_id, "fingerprint": fp, "pending_reencode": None,
                                            "model": model})
        with self._load_lock:
            self._encoder = enc
        ing.report.seconds = time.perf_counter() - t
        counts = self.store.counts(ing.report.generation or 0)
        ing.report.documents, ing.report.chunks_total = counts["documents"], counts["chunks_total"]
        return ing.report

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
                       progress: Callable[[str, int, int], None] | None = None) -> IngestReport:
        """Ingest `(doc_key, title, text)` records (BEIR corpora) under the document prefix `source:`."""
        options = options or IngestOptions()
        with WriteLock(self.paths.lock):
            _, chunker, fp = self._prepare_write(model, None, chunk_tokens, options.index_type, options.index_factory)
            report = self._ingestor(chunker, fp, options, progress).run_records(records, source)
            self._calibrate_fusion()
            return report

    def delete(self, paths: Sequence[str | os.PathLike]) -> IngestReport:
        """Remove documents (files, or everything under folders) from the index explicitly."""
        from sqlalchemy import select

        with WriteLock(self.paths.lock):
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

    def reindex(self, index_type: str | None = None, index_factory: str | None = None) -> IngestReport:
        """Retrain and rebuild the FAISS index from the stored vectors (no re-encoding) as a new generation."""
        if self.info.get("model") == TEXT_ONLY:
            raise EngineError(f"index {self.paths.root} is text-only (--model none): it has no vector index to rebuild")
        with WriteLock(self.paths.lock):
            _, chunker, fp = self._prepare_write(None, None, None, index_type, index_factory, need_chunker=False)
            ing = self._ingestor(chunker, fp, IngestOptions(index_type=index_type, index_factory=index_factory), None)
            t = time.perf_counter()
            ing.commit_generation(rebuild=True, force=True)
            ing.report.seconds = time.perf_counter() - t
            counts = self.store.counts(ing.report.generation or 0)
            ing.report.documents, ing.report.chunks_total = counts["documents"], counts["chunks_total"]
            return ing.report

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
            _, chunker, fp = self._prepare_write(None, None, None, None, None, allow_pending=False,
                                                 need_chunker=False)
            ing = self._ingestor(chunker, fp, IngestOptions(), None)
            purged, dropped = ing.cleanup(gen.id, horizon, compact=True)
            self.store.optimize()
            after = self._disk_sizes()
        return {"index": str(self.paths.root), "generation": gen.id,
                "kept_previous_generation": horizon < gen.id, "chunk_rows_purged": purged,
                "vector_rows_dropped": dropped, "bytes_before": before, "bytes_after": after,
                "bytes_freed": sum(before.values()) - sum(after.values()),
                "seconds": round(time.perf_counter() - t, 3)}

    def _disk_sizes(self) -> dict[str, int]:
        sizes = {"database": 0, "vectors": 0, "index": 0}
        for name in ("meta.sqlite", "meta.sqlite-wal"):
            p = self.paths.root / name
            sizes["database"] += p.stat().st_size if p.exists() else 0
        if dim := self.info.get("dim"):  # 0 for text-only indexes
            sizes["vectors"] = VectorStore(self.paths.vectors, int(dim)).disk_bytes()
        if self.paths.generations.is_dir():
            sizes["index"] = sum(f.stat().st_size for f in self.paths.generations.glob("gen-*.faiss"))
        return sizes

    # ------------------------------------------------------------------------------------------------ facts
    def status(self) -> dict:
        info = self.info
        gen = self.store.current_generation()
        counts = self.store.counts(gen.id if gen else 0)
        out = {
            "index": str(self.paths.root), "model": info.get("model"), "adapter": info.get("adapter"),
            "fingerprint": info.get("fingerprint"), "dim": info.get("dim"), **counts,
            "generation": gen.id if gen else None, "index_type": gen.index_type if gen else None,
            "factory": gen.factory if gen else None, "ntotal": gen.ntotal if gen else 0,
            "nprobe": gen.nprobe if gen else None, "rerank": gen.rerank if gen else None,
            "trained_on": gen.trained_on if gen else None,
            "ann_tuning": info.get("ann_tuning") if gen and gen.index_type != "flat" else None,
            "fusion": info.get("fusion"),
        }
        out["bytes_on_disk"] = self._disk_sizes()
        out["reindex_hint"] = needs_retrain(gen, counts["chunks_total"], int(info.get("dim") or 1),
                                            info.get("index_type", "auto")) if gen and gen.index_file else None
        return out

    def doctor(self, repair: bool = False, wait: bool = False) -> dict:
        """Check that database rows, FTS rows, stored vectors and the index generation agree; `repair` rebuilds the
        derived parts and quarantines what it cannot explain, then checks again."""
        from .doctor import Doctor

        doc = Doctor(self.paths, self.store)
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
