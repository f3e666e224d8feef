"""`llara-search doctor`: do the database, the lexical index, the stored vectors and the index generation agree?

An index is hours of GPU time, so a broken one must be explained and mended, never thrown away. Every check
compares two of the four places that hold a chunk id (database row, lexical index, stored vector, FAISS entry) or a
fact recorded about them (schema version, model fingerprint, the text a chunk was analyzed from). `--repair`
rebuilds what is derived data (the lexical index from chunk rows, the vector index from stored vectors) and moves
what it cannot explain into
`<index>/quarantine/<time>/` with a manifest: orphan files, an unreadable index file, and chunk rows whose vector is
missing or broken (their documents are marked so that the next `ingest` re-reads and re-encodes them).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text, update

from .errors import EngineError, VectorDBError, first_line
from .identity import reencode_args
from .index import VectorStore
from .index.generations import IndexFileError, load_ann
from .layout import IndexPaths, WriteLock, write_head
from .lexical import LexicalIndex
from .store import Chunk, Document, Generation, IngestRun, Store, visible

NORM_TOLERANCE = 1e-2  # stored vectors are L2-normalized float16: |norm - 1| stays far below this


@dataclass
class Finding:
    check: str
    detail: str
    repair: str | None = None  # what `--repair` does about it; None: it needs the user


@dataclass
class Diagnosis:
    index: str
    generation: int | None = None
    problems: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    checked: dict[str, object] = field(default_factory=dict)
    # ids and files a repair needs (not shown)
    bad_vector_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    orphan_files: list[Path] = field(default_factory=list)
    orphan_collections: list[str] = field(default_factory=list)  # Milvus collections of this index no generation names
    broken_index_file: Path | None = None
    rebuild_index: bool = False
    rebuild_lexical: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "index": self.index, "generation": self.generation,
                "problems": [asdict(f) for f in self.problems], "warnings": [asdict(f) for f in self.warnings],
                "checked": self.checked}


class Doctor:
    def __init__(self, paths: IndexPaths, store: Store, backend=None):
        """`backend`: the index's vector backend (None: FAISS files, or a text-only index)."""
        self.paths = paths
        self.store = store
        self.backend = backend
        self.milvus = backend is not None and backend.kind == "milvus"

    # ------------------------------------------------------------------------------------------------ checks
    def diagnose(self) -> Diagnosis:
        d = Diagnosis(str(self.paths.root))
        self._schema(d)
        if not self._database(d):
            return d  # nothing else can be trusted on a corrupt database
        info = self.store.get_info()
        gen = self.store.current_generation()
        d.generation = gen.id if gen else None
        if gen is None:
            d.checked["chunks"] = 0
            self._leftovers(d, None)
            return d
        live = self.store.ids(select(Chunk.id).where(visible(Chunk, gen.id)).order_by(Chunk.id))
        d.checked["chunks"] = int(len(live))
        self._documents(d, gen.id)
        self._lexical(d, gen.id, live)
        text_only = info.get("model") == "none"
        if not text_only:
            vectors = VectorStore(self.paths.vectors, int(info["dim"]))
            self._vectors(d, gen, vectors, live)
            if self.milvus and str(gen.index_file).startswith("milvus:"):
                self._milvus_collection(d, gen, live)
            else:
                self._index_file(d, gen, live)
            self._fingerprint(d, info, gen)
        self._leftovers(d, gen)
        self._runs(d, info)
        return d

    def _schema(self, d: Diagnosis) -> None:
        from .store.db import current_revision, head_revision

        rev, head = current_revision(self.store.engine), head_revision()
        d.checked["schema"] = rev
        if rev != head:
            d.problems.append(Finding("schema", f"schema version {rev} is not the current {head}", None))

    def _database(self, d: Diagnosis) -> bool:
        if self.store.dialect != "sqlite":
            return True
        with self.store.engine.connect() as conn:
            rows = [r[0] for r in conn.execute(text("PRAGMA quick_check"))]
        d.checked["database"] = "ok" if rows == ["ok"] else "corrupt"
        if rows != ["ok"]:
            d.problems.append(Finding("database", f"SQLite reports corruption: {rows[0]}"[:300], None))
            return False
        return True

    def _documents(self, d: Diagnosis, g: int) -> None:
        with self.store.sessions() as s:
            orphaned = s.scalar(select(func.count()).select_from(Chunk).join(Document, Document.id == Chunk.document_id)
                                .where(visible(Chunk, g), ~visible(Document, g)))
            d.checked["documents"] = int(s.scalar(select(func.count()).select_from(Document)
                                                  .where(visible(Document, g))) or 0)
        if orphaned:
            d.problems.append(Finding("documents", f"{orphaned} visible chunks belong to removed documents", None))

    def _lexical(self, d: Diagnosis, g: int, live: np.ndarray) -> None:
        """The lexical files of the generation: readable, checksums intact, exactly its chunks, each analyzed
        from the text its row holds now."""
        problems = LexicalIndex(self.paths.lexical).verify(g, live, self.store.chunk_text_crcs)
        d.checked["lexical"] = "ok" if not problems else "damaged"
        if problems:
            d.problems.append(Finding("lexical", "; ".join(problems)[:500], "rebuild the lexical index from the "
                                      "chunk rows"))
            d.rebuild_lexical = True

    def _vectors(self, d: Diagnosis, gen: Generation, vectors: VectorStore, live: np.ndarray) -> None:
        rows = vectors.rows_on_disk()
        d.checked["vector_rows"] = rows
        if rows < gen.vector_rows:
            d.warnings.append(Finding("vectors", f"vectors file holds {rows} rows, generation {gen.id} was "
                                      f"committed with {gen.vector_rows}: it was truncated (chunks that lost their "
                                      "vector are reported below)"))
        pos = vectors.positions(live)
        bad = [live[pos < 0]]
        for a in range(0, len(live), 16384):
            part = live[a:a + 16384][pos[a:a + 16384] >= 0]
            if len(part) == 0:
                continue
            v = vectors.get(part)
            norms = np.linalg.norm(v, axis=1)
            broken = ~np.isfinite(norms) | (np.abs(norms - 1.0) > NORM_TOLERANCE)
            bad.append(part[broken])
        d.bad_vector_ids = np.concatenate(bad)
        missing, broken = int((pos < 0).sum()), int(len(d.bad_vector_ids) - (pos < 0).sum())
        if missing or broken:
            d.problems.append(Finding("vectors", f"{missing} chunks have no stored vector and {broken} a broken one "
                                      "(not finite or not unit length)",
                                      "quarantine those chunks; the next ingest re-encodes their documents"))
        # what `llara-search compact` reclaims: rows no chunk row (visible, or kept for an older reader) refers to
        d.checked["unreferenced_vector_rows"] = vectors.dead_rows(self.store.chunk_ids())

    def _index_file(self, d: Diagnosis, gen: Generation, live: np.ndarray) -> None:
        path = self.paths.generation_file(gen.id)
        d.rebuild_index = True  # until the file is shown to hold exactly the generation's chunks
        if not gen.index_file:
            d.problems.append(Finding("index", f"generation {gen.id} names no index file",
                                      "rebuild the vector index from the stored vectors"))
            return
        try:
            ids = load_ann(path, gen).ids()
        except IndexFileError as exc:
            broken = path.is_file()
            d.problems.append(Finding("index", f"index file {path.name} {exc.reason}",
                                      ("quarantine the file and " if broken else "") +
                                      "rebuild the vector index from the stored vectors"))
            d.broken_index_file = path if broken else None
            return
        d.checked["index_ntotal"] = int(len(ids))
        d.checked["index_type"] = gen.index_type
        if not np.array_equal(ids, live):
            extra, missing = np.setdiff1d(ids, live), np.setdiff1d(live, ids)
            d.problems.append(Finding("index", f"index file {path.name} holds {len(ids)} ids, the database "
                                      f"{len(live)} chunks ({len(missing)} missing, {len(extra)} extra)",
                                      "rebuild the vector index from the stored vectors"))
            return
        d.rebuild_index = bool(len(d.bad_vector_ids))

    def _milvus_collection(self, d: Diagnosis, gen: Generation, live: np.ndarray) -> None:
        """Milvus ids visible at the generation against the database's rows (the same check as a FAISS file's ids)."""
        d.rebuild_index = True
        name = self.backend.collection_of(gen)
        d.checked["vector_db"] = self.backend.uri
        try:
            self.backend._verify(name)
            self.backend._loaded(name)
            from .index.milvus import visible_at

            ids = self.backend._ids(name, visible_at(gen.id))
        except VectorDBError as exc:
            unreachable = "cannot reach" in str(exc) or "refused the credentials" in str(exc) or \
                "another process" in str(exc)
            d.rebuild_index = not unreachable and "belongs to" not in str(exc) and "-d vectors" not in str(exc)
            d.problems.append(Finding("index", str(exc), "rebuild the collection from the stored vectors"
                                      if d.rebuild_index else None))
            return
        d.checked["index_ntotal"] = int(len(ids))
        d.checked["index_type"] = gen.index_type
        if not np.array_equal(ids, live):
            extra, missing = np.setdiff1d(ids, live), np.setdiff1d(live, ids)
            d.problems.append(Finding("index", f"Milvus collection {name} holds {len(ids)} vectors of generation "
                                      f"{gen.id}, the database {len(live)} chunks ({len(missing)} missing, "
                                      f"{len(extra)} extra)", "rebuild the collection from the stored vectors"))
            return
        d.rebuild_index = bool(len(d.bad_vector_ids))
        alias = self.backend.alias_target()
        if alias != name:
            d.warnings.append(Finding("alias", f"Milvus alias {self.backend.prefix} points at {alias or 'nothing'}, "
                                      f"not at the current collection {name} (an interrupted switch)",
                                      "switch the alias"))

    def _fingerprint(self, d: Diagnosis, info: dict, gen: Generation) -> None:
        from .encoder import fingerprint_for

        d.checked["fingerprint"] = info.get("fingerprint")
        if gen.fingerprint != info.get("fingerprint"):
            d.problems.append(Finding("fingerprint", f"generation {gen.id} was encoded by {gen.fingerprint}, the "
                                      f"index records {info.get('fingerprint')}", None))
        try:
            now = fingerprint_for(str(info["model"]), info.get("adapter"), int(info.get("max_length", 512)))
        except (OSError, ValueError) as exc:
            d.warnings.append(Finding("fingerprint", f"model {info['model']} is not available here, its fingerprint "
                                      f"was not checked ({first_line(exc, limit=120)})"))
            return
        if now != info.get("fingerprint"):
            d.problems.append(Finding("fingerprint", f"the model at {info['model']} now has fingerprint {now}, the "
                                      f"vectors were encoded by {info.get('fingerprint')}: its weights or adapter "
                                      "changed; run `llara-search reencode` (or rebuild the index)", None))

    def _leftovers(self, d: Diagnosis, gen: Generation | None) -> None:
        keep = set()
        if gen is not None:
            keep = {self.paths.generation_file(gen.id).name, self.paths.generation_file(gen.id - 1).name}
        if self.paths.generations.is_dir():
            for f in sorted(self.paths.generations.iterdir()):
                if f.name not in keep:
                    d.orphan_files.append(f)
        if info_dim := self.store.get_info().get("dim"):
            d.orphan_files += VectorStore(self.paths.vectors, int(info_dim)).orphans()
        if self.milvus and gen is not None:
            keep = set(self.store.generation_index_files(gen.id - 1).values())
            try:
                d.orphan_collections = self.backend.orphans(keep)
            except VectorDBError:
                pass  # reported by the collection check
            if d.orphan_collections:
                d.warnings.append(Finding("collections", f"{len(d.orphan_collections)} Milvus collections of this "
                                          "index no generation names (left by an interrupted rebuild): " +
                                          ", ".join(d.orphan_collections[:5]),
                                          "rename them to <name>_quarantine_<time>_... (never dropped)"))
        lexical = LexicalIndex(self.paths.lexical)
        d.orphan_files += lexical.orphans([gen.id - 1, gen.id] if gen is not None else [])
        if d.orphan_files:
            d.warnings.append(Finding("files", f"{len(d.orphan_files)} files no generation names (left by an "
                                      "interrupted save): " + ", ".join(f.name for f in d.orphan_files[:5]),
                                      "move them to the quarantine folder"))

    def _runs(self, d: Diagnosis, info: dict) -> None:
        with self.store.sessions() as s:
            running = list(s.scalars(select(IngestRun).where(IngestRun.status == "running")))
        dead = [r for r in running if not _alive(r.pid)]
        if dead:
            d.warnings.append(Finding("ingest", f"{len(dead)} ingest runs were interrupted (last: generation "
                                      f"{dead[-1].generation}); the committed state is intact, run `llara-search "
                                      "ingest` again to finish the work"))
        if info.get("pending_reencode"):
            d.warnings.append(Finding("reencode", "a re-encode was interrupted; finish it with `llara-search reencode"
                                      f"{reencode_args(info['pending_reencode'])}`"))

    # ------------------------------------------------------------------------------------------------ repair
    def repair(self, d: Diagnosis, wait: bool = False) -> list[str]:
        """Mend what `d` found; returns what was done. Holds the writer lock: no ingest runs meanwhile."""
        done: list[str] = []
        if not any(f.repair for f in d.problems + d.warnings):
            return done
        info = self.store.get_info()
        if info.get("pending_reencode") and d.rebuild_index:
            raise EngineError("a re-encode was interrupted: finish it first with `llara-search reencode`, then run "
                              "doctor again (a repair now would mix vectors of two encoders)")
        with WriteLock(self.paths.lock, wait=wait):
            qdir = self.paths.root / "quarantine" / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            manifest: list[dict] = []
            files = list(d.orphan_files) + ([d.broken_index_file] if d.broken_index_file else [])
            files = [f for f in files if f.exists()]  # a writer may have removed some since the diagnosis
            for f in files:
                qdir.mkdir(parents=True, exist_ok=True)
                shutil.move(str(f), qdir / f.name)
                manifest.append({"file": f.name, "from": str(f), "reason": "named by no generation"
                                 if f != d.broken_index_file else "unreadable index file"})
            if files:
                done.append(f"moved {len(files)} files to {qdir}")
            if d.rebuild_lexical:  # first: a rebuilt vector index below starts its generation from this one
                g = int(d.generation)
                LexicalIndex(self.paths.lexical).rebuild(g, self.store.visible_chunk_texts(g))
                write_head(self.paths, g)
                done.append(f"rebuilt the lexical index of generation {g} from the chunk rows")
            if d.orphan_collections:
                manifest += self.backend.quarantine(d.orphan_collections, qdir.name)
                done.append(f"renamed {len(d.orphan_collections)} Milvus collections no generation names")
            if any(w.check == "alias" for w in d.warnings) and not d.rebuild_index:
                self.backend.switch_alias(self.backend.collection_of(self.store.current_generation()))
                done.append(f"switched the Milvus alias {self.backend.prefix}")
            if d.rebuild_index:
                gen = self._rebuild(d, qdir, manifest)
                done.append(f"rebuilt the vector index from the stored vectors as generation {gen}")
            if manifest:
                qdir.mkdir(parents=True, exist_ok=True)
                (qdir / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        return done

    def _rebuild(self, d: Diagnosis, qdir: Path, manifest: list[dict]) -> int:
        """A new generation over the chunks that have good vectors; the others are quarantined."""
        from .ingest.pipeline import IngestOptions, Ingestor

        info = self.store.get_info()
        vectors = VectorStore(self.paths.vectors, int(info["dim"]), writer=True)
        ing = Ingestor(self.paths, self.store, vectors, None, None, str(info["fingerprint"]), IngestOptions(),
                       backend=self.backend)
        bad = [int(i) for i in d.bad_vector_ids]
        if bad:
            qdir.mkdir(parents=True, exist_ok=True)
            with self.store.session() as s, open(qdir / "chunks.jsonl", "a", encoding="utf-8") as fh:
                for i in range(0, len(bad), 900):
                    rows = list(s.scalars(select(Chunk).where(Chunk.id.in_(bad[i:i + 900]))))
                    for row in rows:
                        doc = s.get(Document, row.document_id)
                        fh.write(json.dumps({"chunk_id": row.id, "path": doc.path, "heading": row.heading,
                                             "text": row.text, "reason": "stored vector missing or broken"},
                                            ensure_ascii=False) + "\n")
                        row.removed_gen = ing.gen
                    doc_ids = {r.document_id for r in rows}
                    # size -1 and an empty hash: the next ingest re-reads these documents and encodes what is missing
                    s.execute(update(Document).where(Document.id.in_(doc_ids)).values(size=-1, mtime_ns=0,
                                                                                      content_hash=""))
            manifest.append({"file": "chunks.jsonl", "reason": f"{len(bad)} chunks without a usable vector; their "
                             "documents are re-encoded by the next ingest"})
        ing.commit_generation(rebuild=True, force=True)
        return int(ing.gen)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid != os.getpid()
