"""The end of an ingest (or a delete, reindex, re-encode): generation G's lexical files and vector index written,
then G named in the database in one commit, readers told, and what no reader can need any more purged.

A mixin of `pipeline.Ingestor` (its store, stored vectors, backend, lexical index and report): the batches before
it are the pipeline's, this is only the commit and the clean-up after it.
"""

from __future__ import annotations

import time

import numpy as np
from sqlalchemy import select

from ..faults import crash_point
from ..layout import write_head
from ..store import Chunk, Document, Generation

AUTO_COMPACT_SHARE = 0.4  # compact the stored vectors on their own once this share of rows is dead


class GenerationCommit:
    def commit_generation(self, *, rebuild: bool = False, force: bool = False,
                          info_updates: dict | None = None) -> None:
        """Write generation G's vector index (through the backend) and name it in the database in one commit."""
        G = self.gen
        t = time.perf_counter()
        info_updates = {**self.info_on_commit, **(info_updates or {})}
        prev = self.store.current_generation()
        ids = self.store.ids
        all_ids = ids(select(Chunk.id).where(Chunk.removed_gen.is_(None)).order_by(Chunk.id))
        added = ids(select(Chunk.id).where(Chunk.added_gen == G, Chunk.removed_gen.is_(None)).order_by(Chunk.id))
        if np.array_equal(added, all_ids):  # a first ingest: one array, not two (8 MB a million chunks)
            added = all_ids
        removed = ids(select(Chunk.id).where(Chunk.removed_gen == G, Chunk.added_gen < G))
        with self.store.sessions() as s:
            docs_changed = s.scalar(select(Document.id).where((Document.added_gen == G) | (Document.removed_gen == G))
                                    .limit(1))
        info = self.store.get_info()
        index_type = self.opt.index_type or info.get("index_type", "auto")
        factory = self.opt.index_factory or info.get("index_factory")
        unchanged = prev is not None and not len(added) and not len(removed) and docs_changed is None
        if unchanged and not rebuild and not force:
            self.report.generation = prev.id
            self.report.index_type = prev.index_type
            self.report.stages["index"] += time.perf_counter() - t
            self._keep_lexical(prev.id)
            self.backend.republish(prev)
            return
        self._write_lexical(prev.id if prev else None, all_ids, added, removed)
        if self.vectors is None:  # text-only index: the generation covers rows only
            with self.store.session() as s:
                s.add(Generation(id=G, index_file="", index_type="none", factory="", ntotal=len(all_ids),
                                 trained_on=None, nprobe=None, vector_rows=0, fingerprint=self.fingerprint))
            self.report.generation, self.report.index_type = G, "none"
            self._committed(G)
            self.cleanup(G)
            return
        built = self.backend.build(G, prev, self.vectors, all_ids, added, removed, index_type=index_type,
                                   factory=factory, rebuild=rebuild, attributes=self.store.chunk_attributes)
        ann = built.index
        crash_point("save")
        built.save()
        crash_point("saved")  # file renamed into place (Milvus: rows flushed), not yet named in the database
        with self.store.session() as s:
            s.add(Generation(id=G, index_file=built.name, index_type=ann.plan.index_type, factory=ann.plan.factory,
                             ntotal=ann.ntotal, trained_on=built.trained_on, nprobe=ann.plan.nprobe,
                             rerank=ann.plan.rerank,
                             vector_rows=self.vectors.rows_on_disk(), fingerprint=self.fingerprint))
            if info_updates:  # e.g. the new adapter and fingerprint of a re-encode: visible with G, not before
                self.store.set_info(s, **info_updates)
            if ann.tuning is not None or ann.exact:  # a new plan was measured (or search is exact): keep its word
                self.store.set_info(s, ann_tuning=ann.tuning)
        self._committed(G)
        tuning = ann.tuning if ann.tuning is not None or ann.exact else info.get("ann_tuning")
        if tuning and tuning.get("met") is False:  # said at every ingest while the plan misses its target
            self.report.index_warnings.append(tuning["warning"])
        self.report.generation = G
        self.report.index_type = ann.plan.index_type
        self.report.stages["index"] += time.perf_counter() - t
        built.published()
        crash_point("cleanup")
        self.cleanup(G)

    def _write_lexical(self, base: int | None, all_ids: np.ndarray, added: np.ndarray, removed: np.ndarray) -> None:
        """The lexical files of generation G, complete before the commit that names G (like the FAISS file)."""
        rep = self.lexical.write_generation(self.gen, base, self.store.chunk_texts(added), removed, all_ids,
                                            self.store.visible_chunk_texts)
        self.report.stages["lexical"] += rep.seconds
        crash_point("lexical")

    def _committed(self, G: int) -> None:
        """Right after the commit that names G: tell readers, and take in a lexical merge still running."""
        write_head(self.paths, G)
        t = time.perf_counter()
        if self.lexical.finish(G):
            self.report.stages["lexical_merge"] += time.perf_counter() - t

    def _keep_lexical(self, gen: int) -> None:
        """Nothing changed: still write the lexical files of the current generation if they are missing (an index
        from before they existed, or damaged ones), and take in a finished background merge."""
        t = time.perf_counter()
        if not self.lexical.has(gen):
            self.lexical.rebuild(gen, self.store.visible_chunk_texts(gen))
            write_head(self.paths, gen)
        elif self.lexical.finish(gen):
            write_head(self.paths, gen)
        self.lexical.cleanup(range(gen - 1, gen + 1))
        self.report.stages["lexical"] += time.perf_counter() - t

    def cleanup(self, G: int, horizon: int | None = None, compact: bool = False) -> tuple[int, int]:
        """Purge rows removed at or before `horizon` (default G-1: a search still in flight may be on G-1) and the
        index files of generations before it. The stored vectors are compacted when asked, or on their own once
        dead rows reach AUTO_COMPACT_SHARE of the file (each compaction then copies at most 1.5× the rows that
        died since the last one). Returns the numbers of chunk rows purged and of vector rows dropped."""
        horizon = G - 1 if horizon is None else horizon
        purged = len(self.store.purge_removed(horizon))
        self.lexical.cleanup(range(horizon, G + 1))
        keep = {self.paths.generation_file(g).name for g in range(horizon, G + 1)}
        for f in self.paths.generations.glob("gen-*.faiss*"):
            if f.name not in keep:
                try:
                    f.unlink()
                except OSError:
                    pass
        if self.backend.kind != "faiss":
            crash_point("milvus-purge")  # rows purged from the database, still in the vector database
            self.backend.cleanup(G, horizon, self.store.generation_index_files(horizon))
        if self.vectors is None:
            return purged, 0
        needed = self.store.chunk_ids()
        rows = self.vectors.rows_on_disk()
        dead = self.vectors.dead_rows(needed)
        if dead == 0 or not (compact or dead >= AUTO_COMPACT_SHARE * rows):
            return purged, 0
        t = time.perf_counter()
        self.vectors.compact(needed, before_switch=self.store.set_vector_rows)
        self.report.stages["compact"] += time.perf_counter() - t
        self.report.vector_rows_dropped += dead
        return purged, dead
