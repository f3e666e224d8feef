"""Index generations: build the next FAISS file from the previous one plus the change, commit it atomically.

The file is written (temp, fsync, rename) before the database commit that names it, so a committed generation
always has its file; a crash before the commit leaves an unnamed file that the next cleanup removes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .ann import AnnIndex, IndexPlan, plan_index
from .vectors import VectorStore

log = logging.getLogger(__name__)


def plan_of(gen) -> IndexPlan:
    return IndexPlan(gen.index_type, gen.factory, 0, gen.nprobe, gen.trained_on)


def load_ann(path: Path, gen) -> AnnIndex:
    return AnnIndex.load(path, plan_of(gen), gen.trained_on)


def next_ann(prev_gen, prev_path: Path | None, vectors: VectorStore, all_ids: np.ndarray, added: np.ndarray,
             removed: np.ndarray, *, index_type: str, factory: str | None, rebuild: bool = False) -> AnnIndex:
    """The index for the next generation: incremental when the previous one still fits the plan, else rebuilt."""
    want = plan_index(len(all_ids), vectors.dim, index_type, factory)
    reuse = (not rebuild and prev_gen is not None and prev_path is not None and prev_path.exists()
             and prev_gen.index_type == want.index_type
             and (want.index_type != "custom" or prev_gen.factory == want.factory))
    if reuse:
        ann = load_ann(prev_path, prev_gen)
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
