"""Keeping an index healthy: rebuild or move its vector index (`reindex`), give back disk space (`compact`), check
and repair it (`doctor`, the checks themselves in doctor.py), describe it (`status`) and measure its ANN recall
(`bench`). `engine` is the `Engine` they act on.
"""

from __future__ import annotations

import time

import numpy as np

from . import writing
from .binding import new_vector_db, random_id
from .errors import EmptyIndexError, EngineError, VectorDBError
from .identity import TEXT_ONLY, dtype_name
from .index import VectorStore
from .index.backend import FAISS, is_faiss, open_backend
from .ingest.notes import notes_by_kind
from .ingest.pipeline import IngestOptions, Ingestor, IngestReport
from .layout import WriteLock, write_head
from .lexical import LexicalIndex

COMPACT_GRACE_S = 60.0  # far longer than any one search holds its generation


def verdict_of(folder: str | None) -> dict | None:
    from .verdict_record import brief, load

    return brief(load(folder))


def reindex(engine, index_type: str | None = None, index_factory: str | None = None,
            vector_db: str | None = None) -> IngestReport:
    """Retrain and rebuild the vector index from the stored vectors (no re-encoding) as a new generation.
    `vector_db`: build it in another vector database (FAISS, Milvus Lite, a Milvus server) and move the index
    there; readers follow with the generation's commit, and the old one is left for readers still on it."""
    if engine.info.get("model") == TEXT_ONLY:
        raise EngineError(f"index {engine.paths.root} is text-only (--model none): it has no vector index to rebuild")
    target = new_vector_db(engine.paths, vector_db)[0] if vector_db is not None else None
    if target is not None and not engine.info.get("model"):
        raise EmptyIndexError(f"index {engine.paths.root} has no committed data yet; nothing to move")
    if target is not None and target == (engine.info.get("vector_db") or FAISS):
        target = None
    with WriteLock(engine.paths.lock):
        if target is None:
            writing.check_vectors(engine, rebuild=True)
            _, chunker, fp = writing.prepare_write(engine, None, None, None, index_type, index_factory,
                                                   need_chunker=False)
            options = IngestOptions(index_type=index_type, index_factory=index_factory)
            ing = writing.ingestor(engine, chunker, fp, options, None)
            updates = None
        else:
            ing, updates = move_to(engine, target, index_type, index_factory)
        t = time.perf_counter()
        ing.commit_generation(rebuild=True, force=True, info_updates=updates)
        if target is not None:
            old, engine._backend, engine._searcher = engine._backend, ing.backend, None
            if old is not None and old is not ing.backend:
                old.close()
        ing.report.seconds = time.perf_counter() - t
        counts = engine.store.counts(ing.report.generation or 0)
        ing.report.documents, ing.report.chunks_total = counts["documents"], counts["chunks_total"]
        return ing.report


def move_to(engine, target: str, index_type: str | None, index_factory: str | None) -> tuple[Ingestor, dict]:
    """An Ingestor that rebuilds the index in `target`, and the facts to record with the generation it commits."""
    _, _, fp = writing.prepare_write(engine, None, None, None, None, None, need_chunker=False)
    info = engine.info
    index_id = info.get("index_id") or random_id()
    backend = open_backend(engine.paths, info | {"index_id": index_id}, target)
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
    vectors = VectorStore(engine.paths.vectors, int(info["dim"]), writer=True)
    ing = Ingestor(engine.paths, engine.store, vectors, None, None, fp,
                   IngestOptions(index_type=index_type or "auto", index_factory=updates["index_factory"]), None,
                   backend=backend)
    return ing, updates


def compact(engine, grace_s: float = COMPACT_GRACE_S, wait: bool = False) -> dict:
    """Give back the disk space of removed chunks: their rows, old index files, and dead stored vectors (which a
    re-encode doubles). A search pins one generation only while it runs, so once the newest generation is
    `grace_s` old no search can still be on the one before, and what only that one used goes too."""
    from datetime import timezone

    from .store.models import utcnow

    with WriteLock(engine.paths.lock, wait=wait):
        gen = engine.store.current_generation()
        if gen is None:
            raise EmptyIndexError(f"index {engine.paths.root} has no committed data yet; nothing to compact")
        before = disk_sizes(engine)
        created = gen.created_at if gen.created_at.tzinfo else gen.created_at.replace(tzinfo=timezone.utc)
        age = (utcnow() - created).total_seconds()
        horizon = gen.id if age >= grace_s else gen.id - 1
        t = time.perf_counter()
        writing.check_vectors(engine)
        _, chunker, fp = writing.prepare_write(engine, None, None, None, None, None, allow_pending=False,
                                               need_chunker=False)
        ing = writing.ingestor(engine, chunker, fp, IngestOptions(), None)
        purged, dropped = ing.cleanup(gen.id, horizon, compact=True)
        if ing.lexical.optimize(gen.id):  # one segment without the removed chunks' postings
            write_head(engine.paths, gen.id)
            ing.lexical.cleanup(range(horizon, gen.id + 1))
        engine.backend.compact()
        retire_vector_db(engine, horizon == gen.id)
        engine.store.optimize()
        after = disk_sizes(engine)
    return {"index": str(engine.paths.root), "generation": gen.id,
            "kept_previous_generation": horizon < gen.id, "chunk_rows_purged": purged,
            "vector_rows_dropped": dropped, "bytes_before": before, "bytes_after": after,
            "bytes_freed": sum(before.values()) - sum(after.values()),
            "seconds": round(time.perf_counter() - t, 3)}


def retire_vector_db(engine, no_reader_left: bool) -> None:
    """After `reindex --vector-db` moved the index away from Milvus: drop its collections there once no reader
    can be on a generation that names them."""
    old = engine.info.get("retired_vector_db")
    if not old or not no_reader_left:
        return
    retired = open_backend(engine.paths, engine.info, old)
    try:
        retired.cleanup(0, 0, {})
    finally:
        retired.close()
    with engine.store.session() as s:
        engine.store.set_info(s, retired_vector_db=None)


def disk_sizes(engine) -> dict[str, int]:
    sizes = {"database": 0, "vectors": 0, "index": 0, "lexical": 0}
    for name in ("meta.sqlite", "meta.sqlite-wal"):
        p = engine.paths.root / name
        sizes["database"] += p.stat().st_size if p.exists() else 0
    if dim := engine.info.get("dim"):  # 0 for text-only indexes
        sizes["vectors"] = VectorStore(engine.paths.vectors, int(dim)).disk_bytes()
    if engine.paths.generations.is_dir():
        sizes["index"] = sum(f.stat().st_size for f in engine.paths.generations.glob("gen-*.faiss"))
    if not is_faiss(engine.info.get("vector_db")):
        sizes["index"] += engine.backend.disk_bytes()  # a Milvus Lite folder; a server's disks are not ours to count
    if engine.paths.lexical.is_dir():
        sizes["lexical"] = sum(f.stat().st_size for f in engine.paths.lexical.iterdir())
    return sizes


def status(engine) -> dict:
    info = engine.info
    gen = engine.store.current_generation()
    counts = engine.store.counts(gen.id if gen else 0)
    out = {
        "index": str(engine.paths.root), "model": info.get("model"), "adapter": info.get("adapter"),
        "fingerprint": info.get("fingerprint"), "dim": info.get("dim"),
        "passage_dtypes": info.get("passage_dtypes"),
        "query_dtype": dtype_name(engine._encoder) if engine._encoder is not None else None, **counts,
        "generation": gen.id if gen else None, "index_type": gen.index_type if gen else None,
        "factory": gen.factory if gen else None, "ntotal": gen.ntotal if gen else 0,
        "nprobe": gen.nprobe if gen else None, "rerank": gen.rerank if gen else None,
        "trained_on": gen.trained_on if gen else None,
        "ann_tuning": info.get("ann_tuning") if gen and gen.index_type != "flat" else None,
        "fusion": info.get("fusion"),
        "verdict": verdict_of(info.get("adapter") or info.get("model")),  # the retrain's check, if it had one
    }
    out["files_skipped_by_kind"], out["files_failed"] = notes_by_kind(engine.store.file_notes())
    out["bytes_on_disk"] = disk_sizes(engine)
    out["lexical"] = LexicalIndex(engine.paths.lexical).describe(gen.id) if gen else None
    from .watch.state import read_state

    out["watch"] = read_state(engine.paths.root)  # a watcher's state (llara_search/watch), None if none ran
    if info.get("model") != TEXT_ONLY:
        out.update(engine.backend.status())
    try:
        out["reindex_hint"] = engine.backend.needs_retrain(gen, counts["chunks_total"], int(info.get("dim") or 1),
                                                         info.get("index_type", "auto")) \
            if gen and gen.index_file else None
    except VectorDBError as exc:  # status reports what the database knows even when Milvus is away
        out["reindex_hint"], out["vector_db_error"] = None, str(exc)
    return out


def doctor(engine, repair: bool = False, wait: bool = False) -> dict:
    """Check that database rows, FTS rows, stored vectors and the index generation agree; `repair` rebuilds the
    derived parts and quarantines what it cannot explain, then checks again."""
    from .doctor import Doctor

    doc = Doctor(engine.paths, engine.store, engine.backend if engine.info.get("model") not in (None, TEXT_ONLY)
                 else None)
    found = doc.diagnose()
    if not repair:
        return found.to_dict() | {"repaired": []}
    done = doc.repair(found, wait=wait)
    engine._searcher = None  # a repair may have committed a new generation
    return doc.diagnose().to_dict() | {"repaired": done, "before": found.to_dict()}


def bench(engine, n_queries: int = 200, k: int = 10, seed: int = 0) -> dict:
    """recall@k of the ANN + re-rank path against exact search over the stored vectors, and its latency.

    Queries are stored vectors left out of their own answers (no model needed; points where the corpus's
    queries land), the same model the default nprobe was tuned with.
    """
    from .index.ann import leave_one_out_queries

    if engine.info.get("model") == TEXT_ONLY:
        raise EngineError(f"index {engine.paths.root} is text-only (--model none): there is no vector index to bench")
    searcher = engine.searcher
    pinned = searcher.refresh()
    gen, ann = pinned
    ids = engine.store.visible_chunk_ids(gen.id)
    if len(ids) < 2:
        raise EngineError(f"index {engine.paths.root} has fewer than 2 chunks; nothing to benchmark")
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
    tuned = engine.info.get("ann_tuning") or {}
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
