"""Writing to an index: the first ingest records the model, tokenizer settings and vector database; every ingest,
delete and re-encode runs under the index's write lock and commits one new generation (ingest/pipeline.py does the
work, this module prepares it). A first ingest that fails before it commits a chunk removes the folder it created.
`engine` is the `Engine` whose store, backend and encoder are written with.
"""

from __future__ import annotations

import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from .binding import bind, new_vector_db, random_id
from .encoder import DEFAULT_MODEL, fingerprint_for, load_tokenizer
from .errors import EngineError, IndexLockedError, first_line
from .identity import (TEXT_ONLY, adapter_identity, check_encoder_memory, dtype_name, merge_dtypes, model_identity,
                       reencode_args)
from .index import VectorStore
from .index.backend import FAISS, is_faiss, open_backend
from .ingest.chunking import DEFAULT_CHUNK_TOKENS, Chunker
from .ingest.pipeline import IngestOptions, Ingestor, IngestReport
from .ingest.words import WordTokenizer
from .layout import IndexPaths, WriteLock
from .pathnames import to_stored
from .store import Store

if TYPE_CHECKING:
    from .encoder.memory import Estimate


def check_vectors(engine, rebuild: bool = False) -> None:
    """Before a writer changes anything: the vector database is reachable and, unless everything is rebuilt from
    the stored vectors, still holds what the committed generation names (else one line, nothing changed)."""
    info = engine.info
    if info.get("model") == TEXT_ONLY or (is_faiss(info.get("vector_db")) and info.get("model")):
        return
    if not info.get("model") and is_faiss(engine._vector_db):
        return
    gen = engine.store.current_generation()
    engine.backend.check_writable(None if rebuild else gen)


def prepare_write(engine, model: str | None, adapter: str | None, chunk_tokens: int | None,
                   index_type: str | None, index_factory: str | None, allow_pending: bool = False,
                   need_chunker: bool = True) -> tuple[dict, Chunker | None, str]:
    """Record the model on first use, apply option changes, and give the chunker of the index's tokenizer
    (`need_chunker=False`: delete, reindex and re-encode never chunk, so they skip loading the tokenizer)."""
    bind(engine.paths, engine.store)
    info = engine.info
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
                raise EngineError(first_line(exc)) from None
            from transformers import AutoConfig

            from .encoder.checkpoint import resolve_model_dir

            dim = int(AutoConfig.from_pretrained(resolve_model_dir(name), local_files_only=True).hidden_size)
            record = dict(model=name, adapter=adapter_id, fingerprint=fp, dim=dim, max_length=512,
                          index_type=index_type or "auto", index_factory=index_factory,
                          **vector_db_record(engine, dim))
            if not is_faiss(record["vector_db"]) and index_factory:
                raise EngineError("--index-factory is a FAISS setting; a Milvus index is chosen with --index-type")
            engine.backend.check_index_type(index_type)
        if name == TEXT_ONLY and not is_faiss(engine._vector_db):
            raise EngineError("a text-only index (--model none) has no vectors; leave out --vector-db")
        with engine.store.session() as s:
            engine.store.set_info(s, chunk_tokens=int(chunk_tokens or DEFAULT_CHUNK_TOKENS), **record)
        info = engine.info
    else:
        if info.get("pending_reencode") and not allow_pending:
            raise EngineError(f"a re-encode of {engine.paths.root} was interrupted; finish it first with "
                              f"`llara-search reencode --index {engine.paths.root}"
                              f"{reencode_args(info['pending_reencode'])}`")
        text_only = info["model"] == TEXT_ONLY
        if text_only and (index_type or index_factory):
            raise EngineError(f"index {engine.paths.root} is text-only (--model none): it has no vector index")
        updates = {}
        if index_type and index_type != info.get("index_type"):
            engine.backend.check_index_type(index_type)
            updates["index_type"] = index_type
        if index_factory and index_factory != info.get("index_factory"):
            if not is_faiss(info.get("vector_db")):
                raise EngineError("--index-factory is a FAISS setting; a Milvus index is chosen with --index-type")
            updates["index_factory"] = index_factory
        if chunk_tokens and int(chunk_tokens) != int(info.get("chunk_tokens", DEFAULT_CHUNK_TOKENS)):
            updates["chunk_tokens"] = int(chunk_tokens)
        if updates:
            with engine.store.session() as s:
                engine.store.set_info(s, **updates)
            info = engine.info
        if not need_chunker:
            return info, None, info["fingerprint"]
        if text_only:
            tokenizer = WordTokenizer()
        else:
            tokenizer = engine._encoder.tokenizer if engine._encoder else load_tokenizer(info["model"],
                                                                                          info.get("adapter"))
    chunker = Chunker(tokenizer, int(info.get("chunk_tokens", DEFAULT_CHUNK_TOKENS)), int(info["max_length"]))
    return info, chunker, info["fingerprint"]


def vector_db_record(engine, dim: int) -> dict:
    """What a new index records about its vector backend: `vector_db`, and an index id that names (and owns)
    its Milvus collections."""
    want = engine._vector_db
    if want is None and os.environ.get("LLARA_SEARCH_VECTOR_DB"):
        want = new_vector_db(engine.paths, os.environ["LLARA_SEARCH_VECTOR_DB"])[0]
    want = want or FAISS
    if is_faiss(want):
        return {"vector_db": FAISS}
    index_id = engine.info.get("index_id") or engine._new_index_id or random_id()
    if engine._backend is None or getattr(engine._backend, "uri", None) != want:
        engine._backend = open_backend(engine.paths, {"index_id": index_id, "dim": dim}, want)
    engine._backend.index_id, engine._backend.dim = index_id, dim
    engine._backend.check_writable(None)
    return {"vector_db": want, "index_id": index_id}


def ingestor(engine, chunker: Chunker | None, fingerprint: str, options: IngestOptions,
             progress: Callable | None) -> Ingestor:
    if engine.info.get("model") == TEXT_ONLY:
        return Ingestor(engine.paths, engine.store, None, chunker, None, fingerprint, options, progress)
    info = engine.info
    vectors = VectorStore(engine.paths.vectors, int(info["dim"]), writer=True)
    spec = engine.encoder_spec(info["model"], info.get("adapter"))
    ing = Ingestor(engine.paths, engine.store, vectors, chunker,
                   lambda texts: engine.encode_passages(engine.encoder, spec, texts, options.batch_size),
                   fingerprint, options, progress, backend=engine.backend)

    def load():
        enc = engine.encoder
        ing.info_on_commit["passage_dtypes"] = merge_dtypes(info.get("passage_dtypes"), dtype_name(enc))
        return enc

    ing.load_encoder = load
    return ing


def check_memory(engine, model: str | None = None, adapter: str | None = None,
                 for_adapter: bool = False) -> Estimate | None:
    """The memory check of this index's encoder (or, before the first ingest, of `model`; with `for_adapter`,
    of the index's model with `adapter` instead of its own) in this engine's dtype and device; raises
    `InsufficientMemoryError` when it cannot fit. None for a text-only index."""
    info = engine.info
    recorded = info.get("model")
    if recorded and not for_adapter:
        adapter = info.get("adapter")
    return check_encoder_memory(recorded or model, adapter=adapter, dtype=engine.dtype, device=engine.device,
                                max_length=int(info.get("max_length", 512)))


def with_memory(report: IngestReport, memory: Estimate | None) -> IngestReport:
    if memory is not None:
        report.memory = memory.to_dict()
    return report


def ingest(engine, paths: Sequence[str | os.PathLike], *, model: str | None = None, adapter: str | None = None,
           chunk_tokens: int | None = None, options: IngestOptions | None = None, wait: bool = False,
           progress: Callable[[str, int, int], None] | None = None) -> IngestReport:
    """Sync files/folders into the index: new and changed files encoded, missing ones removed."""
    with first_write(engine):
        roots = [Path(p) for p in paths]
        missing = [str(p) for p in roots if not p.exists()]
        if missing:
            raise EngineError(f"no such file or folder: {missing[0]}")
        options = options or IngestOptions()
        memory = check_memory(engine, model, adapter) if not engine.info.get("model") else None
        with WriteLock(engine.paths.lock, wait=wait):
            check_vectors(engine)
            info = engine.info
            reencoded = 0
            if adapter is not None and info.get("model") and adapter_identity(adapter) != info.get("adapter"):
                # a new adapter: every chunk is re-encoded first
                reencoded = run_reencode(engine, adapter_identity(adapter), progress).chunks_encoded
            _, chunker, fp = prepare_write(engine, model, adapter, chunk_tokens, options.index_type,
                                           options.index_factory)
            report = ingestor(engine, chunker, fp, options, progress).run_files(roots)
            report.chunks_encoded += reencoded
            calibrate_fusion(engine)
            return with_memory(report, memory)


def reencode(engine, adapter: str | os.PathLike | None,
             progress: Callable[[str, int, int], None] | None = None, *,
             model: str | os.PathLike | None = None) -> IngestReport:
    """Re-encode every chunk with the index's base model (or `model`, e.g. the whole model `train --full`
    wrote) and `adapter` (None: the model alone) into a new generation. Queries follow: the generation carries
    the new fingerprint and the engine reloads for it."""
    adapter_id = adapter_identity(adapter) if adapter else None
    model_id = model_identity(str(model)) if model else None
    memory = None
    if engine.info.get("model") not in (None, TEXT_ONLY):  # before the lock file is touched
        memory = reencode_memory(engine, adapter_id, model_id)
    with WriteLock(engine.paths.lock):
        check_vectors(engine, rebuild=True)
        report = run_reencode(engine, adapter_id, progress, memory, model_id)
        calibrate_fusion(engine)
        return report


def reencode_memory(engine, adapter_id: str | None, model_id: str | None) -> Estimate | None:
    """The memory check of a re-encode: the index's model with `adapter_id`, or another whole model."""
    if model_id is None:
        return check_memory(engine, adapter=adapter_id, for_adapter=True)
    return check_encoder_memory(model_id, adapter=adapter_id, dtype=engine.dtype, device=engine.device,
                                max_length=int(engine.info.get("max_length", 512)))


def run_reencode(engine, adapter_id: str | None, progress, memory: Estimate | None = None,
                 new_model: str | None = None) -> IngestReport:
    info = engine.info
    if not info.get("model"):
        raise EngineError(f"index {engine.paths.root} is empty; ingest with --adapter instead")
    if info["model"] == TEXT_ONLY:
        raise EngineError(f"index {engine.paths.root} is text-only (--model none): there is nothing to re-encode")
    if adapter_id is not None and not (Path(adapter_id) / "adapter_config.json").is_file():
        whole = (Path(adapter_id) / "config.json").is_file()
        raise EngineError(f"{adapter_id} is not a peft adapter folder (no adapter_config.json)" +
                          ("; it is a whole model (`train --full`): use --model" if whole else
                           "; point --adapter at the output folder of `llara-search train` or `finetune`"))
    model = new_model or info["model"]
    if new_model is not None and new_model != info["model"]:
        check_same_space(engine, new_model, info)
    memory = memory or reencode_memory(engine, adapter_id, new_model)  # before anything is recorded
    fp = fingerprint_for(model, adapter_id, int(info.get("max_length", 512)))
    with engine.store.session() as s:
        engine.store.set_info(s, pending_reencode={"adapter": adapter_id, "fingerprint": fp, "model": new_model})
    from .encoder.model import LlaraEncoder

    spec = engine.encoder_spec(model, adapter_id)
    enc = LlaraEncoder.from_pretrained(**spec, device=engine.device, show_progress=engine.show_progress)
    prepare_write(engine, None, None, None, None, None, allow_pending=True, need_chunker=False)
    vectors = VectorStore(engine.paths.vectors, int(info["dim"]), writer=True)
    ing = Ingestor(engine.paths, engine.store, vectors, None, lambda t: engine.encode_passages(enc, spec, t), fp,
                   IngestOptions(), progress, backend=engine.backend)
    ing.load_encoder = lambda: enc
    t = time.perf_counter()
    ing.reencode_all()
    ing.commit_generation(rebuild=True, force=True,
                          info_updates={"adapter": adapter_id, "fingerprint": fp, "pending_reencode": None,
                                        "passage_dtypes": [dtype_name(enc)], "model": model})
    with engine._load_lock:
        engine._encoder = enc
    ing.report.seconds = time.perf_counter() - t
    counts = engine.store.counts(ing.report.generation or 0)
    ing.report.documents, ing.report.chunks_total = counts["documents"], counts["chunks_total"]
    return with_memory(ing.report, memory)


def check_same_space(engine, new_model: str, info: dict) -> None:
    """A model replacing the index's own must read the same tokens (chunks were cut by the old tokenizer's
    counts) and give vectors of the same width (the stored vectors' rows)."""
    from transformers import AutoConfig

    from .encoder.checkpoint import resolve_model_dir

    try:
        dim = int(AutoConfig.from_pretrained(resolve_model_dir(new_model), local_files_only=True).hidden_size)
        same_tokens = load_tokenizer(new_model).get_vocab() == load_tokenizer(info["model"]).get_vocab()
    except (OSError, ValueError) as exc:
        raise EngineError(f"cannot load model {new_model}: {first_line(exc)}") from None
    if dim != int(info["dim"]):
        raise EngineError(f"model {new_model} gives {dim}-d vectors, index {engine.paths.root} holds "
                          f"{info['dim']}-d ones; build a new index with `ingest --model {new_model} --index NEW`")
    if not same_tokens:
        raise EngineError(f"model {new_model} has another tokenizer than {info['model']}, which cut this index's "
                          f"chunks; build a new index with `ingest --model {new_model} --index NEW`")


def calibrate_fusion(engine) -> None:
    """Weigh hybrid search's halves for this index (fusion.py) when its encoder or size changed since the last
    time; called under the write lock, after the generation is committed (the measurement searches it)."""
    from .fusion import calibrate, needs_calibration

    info = engine.info
    if info.get("model") in (None, TEXT_ONLY):
        return
    gen = engine.store.current_generation()
    if not needs_calibration(info.get("fusion"), gen, engine.store.counts(gen.id)["chunks_total"] if gen else 0):
        return
    result = calibrate(engine)
    with engine.store.session() as s:
        engine.store.set_info(s, fusion=result)


def ingest_records(engine, records, source: str, *, model: str | None = None, chunk_tokens: int | None = None,
                   options: IngestOptions | None = None,
                   progress: Callable[[str, int, int], None] | None = None,
                   expected: int | None = None) -> IngestReport:
    """Ingest `(doc_key, title, text)` records (BEIR corpora) under the document prefix `source:`
    (`expected`: how many records, when known, for the encode forecast)."""
    with first_write(engine):
        options = options or IngestOptions()
        memory = check_memory(engine, model) if not engine.info.get("model") else None
        with WriteLock(engine.paths.lock):
            check_vectors(engine)
            _, chunker, fp = prepare_write(engine, model, None, chunk_tokens, options.index_type,
                                           options.index_factory)
            report = ingestor(engine, chunker, fp, options, progress).run_records(records, source, expected)
            calibrate_fusion(engine)
            return with_memory(report, memory)


def delete(engine, paths: Sequence[str | os.PathLike]) -> IngestReport:
    """Remove documents (files, or everything under folders) from the index explicitly."""
    from .ingest.writer import paths_under

    with WriteLock(engine.paths.lock):
        check_vectors(engine)
        _, chunker, fp = prepare_write(engine, None, None, None, None, None, need_chunker=False)
        ing = ingestor(engine, chunker, fp, IngestOptions(), None)
        # a real name (bytes that are not UTF-8 too) or the escaped one reports show; found by path prefix in SQL,
        # page by page
        names = [n for p in paths for n in (to_stored(os.path.abspath(p)), os.path.abspath(p), str(p))]
        ing.remove_documents(paths_under(engine.store, names))
        ing.commit_generation()
        counts = engine.store.counts(ing.report.generation or 0)
        ing.report.documents, ing.report.chunks_total = counts["documents"], counts["chunks_total"]
        return ing.report


# ---------------------------------------------------------------------------------------- a failed first ingest
@contextmanager
def first_write(engine) -> Iterator[None]:
    """A first ingest that fails before it commits a chunk (the model would not load, say) leaves no folder behind:
    the next `ingest` starts as fresh as this one did. Once it returns, the folder is an index and stays."""
    try:
        yield
    except BaseException:
        root, engine._fresh_folder = engine._fresh_folder, None
        if root is not None:
            remove_if_unused(root, before=engine.close)
        raise
    engine._fresh_folder = None


def remove_if_unused(root: Path, before: Callable[[], None] | None = None) -> bool:
    """Remove an index folder that holds no committed chunk (`before` runs first: the engine lets go of it). Once
    chunks are committed the folder holds work that a re-run continues, and stays; so does a folder another ingest
    started meanwhile (it holds the lock)."""
    paths = IndexPaths(root)
    if not root.is_dir():
        return False
    try:
        with WriteLock(paths.lock):
            if has_chunks(paths):
                return False
            if before is not None:
                before()
            shutil.rmtree(root, ignore_errors=True)
            return True
    except IndexLockedError:
        return False


def has_chunks(paths: IndexPaths) -> bool:
    try:
        store = Store(paths.db_url, create=False)
    except Exception:  # noqa: BLE001 - no readable database: nothing was committed either
        return False
    try:
        return len(store.chunk_ids()) > 0
    finally:
        store.close()
