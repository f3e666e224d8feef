"""Index generations: build the next FAISS file from the previous one plus the change, commit it atomically.

The file is written (temp, fsync, rename) before the database commit that names it, so a committed generation
always has its file; a crash before the commit leaves an unnamed file that the next cleanup removes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .ann import RERANK_FACTORS, AnnIndex, IndexPlan, plan_index
from ..errors import IndexFileError, VectorDBError, first_line
from .base import BuiltGeneration, VectorBackend
from .vectors import VectorStore

log = logging.getLogger(__name__)


def plan_of(gen) -> IndexPlan:
    return IndexPlan(gen.index_type, gen.factory, 0, gen.nprobe, gen.trained_on, gen.rerank or RERANK_FACTORS[0])


def _faiss_reason(exc: Exception) -> str:
    return first_line(exc).split(": ", 1)[-1][:160]  # drop faiss's "Error in <C++ signature> at <file>:<line>"


def load_ann(path: Path, gen) -> AnnIndex:
    if not path.is_file():
        raise IndexFileError(path, gen.id, "is missing")
    try:
        return AnnIndex.load(path, plan_of(gen), gen.trained_on)
    except RuntimeError as exc:  # faiss: a C++ message about the bytes it could not read
        raise IndexFileError(path, gen.id, f"cannot be read ({_faiss_reason(exc)})") from None


def next_ann(prev_gen, prev_path: Path | None, vectors: VectorStore, all_ids: np.ndarray, added: np.ndarray,
             removed: np.ndarray, *, index_type: str, factory: str | None, rebuild: bool = False) -> AnnIndex:
    """The index for the next generation: incremental when the previous one still fits the plan, else rebuilt."""
    want = plan_index(len(all_ids), vectors.dim, index_type, factory)
    reuse = (not rebuild and prev_gen is not None and prev_path is not None and prev_path.exists()
             and prev_gen.index_type == want.index_type
             and (want.index_type != "custom" or prev_gen.factory == want.factory))
    if reuse:
        try:
            ann = load_ann(prev_path, prev_gen)
        except IndexFileError as exc:  # the stored vectors are the truth: rebuild from them
            log.warning("%s; rebuilding the vector index from the stored vectors", exc.reason)
            return AnnIndex.build(vectors.dim, all_ids, vectors.get, index_type=index_type, factory=factory)
        ann.remove(removed)
        for i in range(0, len(added), 16384):
            part = added[i:i + 16384]
            ann.add(part, vectors.get(part))
        if ann.ntotal == len(all_ids):
            return ann
        log.warning("index count %d != %d chunks after the incremental update; rebuilding", ann.ntotal, len(all_ids))
    return AnnIndex.build(vectors.dim, all_ids, vectors.get, index_type=index_type, factory=factory)


def needs_retrain(gen, n_now: int, dim: int, index_type: str = "auto") -> str | None:
    """A reason to run `llara-search reindex`, or None. `trained_on` is the corpus size at training time."""
    if gen is None:
        return None
    if gen.index_type != "flat" and gen.trained_on and n_now > 4 * gen.trained_on:
        return f"the corpus grew to {n_now} chunks, far past the {gen.trained_on} the quantizer was trained on"
    want = plan_index(n_now, dim, index_type)
    if gen.index_type != "custom" and want.index_type != gen.index_type:
        return f"at {n_now} chunks a {want.index_type} index fits better than the current {gen.index_type}"
    return None


class FaissBackend(VectorBackend):
    """FAISS files in `<index>/generations/`, one per generation (the default backend)."""

    def __init__(self, paths):
        self.paths = paths

    def build(self, G, prev_gen, vectors, all_ids, added, removed, *, index_type, factory, rebuild, attributes):
        self.check_index_type(index_type)
        prev_path = self.paths.generation_file(prev_gen.id) if prev_gen is not None and \
            str(prev_gen.index_file).endswith(".faiss") else None
        ann = next_ann(prev_gen, prev_path, vectors, all_ids, added, removed, index_type=index_type,
                       factory=factory, rebuild=rebuild)
        path = self.paths.generation_file(G)

        def save() -> None:
            self.paths.generations.mkdir(parents=True, exist_ok=True)
            ann.save(path)

        return BuiltGeneration(ann, path.name, ann.trained_on, save)

    def open(self, gen) -> AnnIndex:
        if gen.index_file and not str(gen.index_file).endswith(".faiss"):
            raise VectorDBError(f"generation {gen.id} of index {self.paths.root} keeps its vectors in "
                                f"{gen.index_file}, not in a FAISS file; retry (the index was just moved)")
        return load_ann(self.paths.generation_file(gen.id), gen)

    def needs_retrain(self, gen, n_now, dim, index_type="auto"):
        return needs_retrain(gen, n_now, dim, index_type if index_type in ("auto", "flat", "ivfpq") else "auto")

    def disk_bytes(self) -> int:
        d = self.paths.generations
        return sum(f.stat().st_size for f in d.glob("gen-*.faiss")) if d.is_dir() else 0
