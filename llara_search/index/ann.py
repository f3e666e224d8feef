"""FAISS behind one small class: exact (ID-mapped flat) for small corpora, IVF-PQ beyond.

Ids are chunk ids from the database (`add_with_ids` / `remove_ids`); nothing depends on positions. LLaRA vectors
are 4096-d, so flat costs 16 KiB per vector; IVF-PQ after an OPQ rotation to 4 dims per sub-quantizer costs
at most 64 B + 8 B id, and the exact re-rank from the stored float16 vectors restores exact-search quality.
"""

from __future__ import annotations

import logging
import math
import os
import platform
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

if platform.system() in {"Darwin", "Windows"}:  # faiss + torch OpenMP runtimes clash there (txtai #1009)
    os.environ.setdefault("KMP_DUPLICATE_LIB_OK", "TRUE")

import faiss  # noqa: E402

log = logging.getLogger(__name__)

INDEX_TYPES = ("auto", "flat", "ivfpq")
AUTO_IVF_MIN = 50_000  # below this many vectors exact search is fast enough and always exact
AUTO_FLAT_MAX_BYTES = 512 * 2**20  # ... and above this much float32, flat costs too much RAM
BYTES_PER_VECTOR_BUDGET = 96  # IVF-PQ RAM per vector, fixed parts (PCA, centroids, codebooks) spread over n
TARGET_RECALL = 0.96  # recall@10 after the exact re-rank that the default nprobe is tuned for
TARGET_ENV = "LLARA_SEARCH_RECALL_TARGET"  # another target for every later build (e.g. 0.99), read at build time


def recall_target() -> float:
    """The recall@10 the build-time tuner aims for: $LLARA_SEARCH_RECALL_TARGET, else 0.96."""
    raw = os.environ.get(TARGET_ENV)
    if not raw:
        return TARGET_RECALL
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{TARGET_ENV}={raw!r} is not a number; use a recall between 0 and 1, e.g. 0.99") from None
    if not 0 < value <= 1:
        raise ValueError(f"{TARGET_ENV}={raw!r} is outside (0, 1]; use a recall such as 0.99")
    return value


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


RERANK_FACTORS = (10, 20, 40)  # exact re-rank depths (× k) the tuner may choose, shallowest first
FALLBACK_RERANK_FACTORS = (80, 160, 320)  # ... and, when none of those reaches the target, deeper ones


@dataclass(frozen=True)
class IndexPlan:
    index_type: str  # "flat" | "ivfpq" | "custom"
    factory: str
    nlist: int
    nprobe: int
    train_size: int
    rerank: int = RERANK_FACTORS[0]  # candidates re-ranked exactly: rerank × k


def plan_index(n: int, dim: int, index_type: str = "auto", factory: str | None = None) -> IndexPlan:
    """Choose the index for `n` vectors of `dim` dimensions (faiss wiki guidelines, field-notes §5)."""
    if index_type not in INDEX_TYPES:
        raise ValueError(f"index type must be one of {', '.join(INDEX_TYPES)}, not {index_type!r}")
    if factory:
        nlist = _nlist(n)
        f = factory.replace("{nlist}", str(nlist))
        return IndexPlan("custom", f, nlist if "IVF" in f else 0, _nprobe(nlist) if "IVF" in f else 0,
                         min(n, max(64 * nlist, 10_000)))
    if index_type == "auto":
        big = n >= AUTO_IVF_MIN and (n * dim * 4 > AUTO_FLAT_MAX_BYTES or n >= 1_000_000)
        index_type = "ivfpq" if big else "flat"
    if index_type == "flat" or n < 2 * 39:
        return IndexPlan("flat", "IDMap2,Flat", 0, 0, 0)
    nlist = _nlist(n)
    m, reduced = _pq_shape(dim, n, nlist)
    nbits = 8 if n >= 39 * 256 else max(4, int(math.log2(max(16, n // 39))))
    pre = f"OPQ{m}_{reduced}," if reduced != dim or dim >= 256 else ""
    pq = f"PQ{m}" if nbits == 8 else f"PQ{m}x{nbits}"
    return IndexPlan("ivfpq", f"{pre}IVF{nlist},{pq}", nlist, _nprobe(nlist), min(n, max(40 * nlist, 39 * 256 * 4)))


def _nlist(n: int) -> int:
    target = 4 * math.sqrt(n) if n < 1_000_000 else 8 * math.sqrt(n)
    return int(max(1, min(math.ceil(target), n // 39)))


def _nprobe(nlist: int) -> int:
    return int(min(nlist, max(16, nlist // 8)))


def _pq_shape(dim: int, n: int = 1_000_000, nlist: int = 0) -> tuple[int, int]:
    """(sub-quantizers, dimension after OPQ): 4 dims per sub-quantizer, at most 64 of them (64 B codes).

    Wide vectors are rotated down by OPQ first: on LLM embeddings, whose variance is spread over many directions,
    a PCA cut to 128 dims left only 0.86 of the true top-10 among 100 candidates where OPQ kept 0.999. The
    rotation matrix (4·dim·reduced bytes), the centroids and the PQ codebooks are a fixed cost, so a smaller
    corpus gets a shorter code to stay within the per-vector budget.
    """
    if dim >= 256:
        for m in (64, 48, 32, 16):
            reduced = 4 * m
            fixed = 4 * reduced * (dim + nlist + 256)
            if m + 8 + fixed / max(1, n) <= BYTES_PER_VECTOR_BUDGET:
                return m, reduced
        return 16, 64
    m = max(1, min(64, dim // 4))
    while dim % m:
        m -= 1
    return m, dim


class AnnIndex:
    """A FAISS index over chunk ids, with the settings needed to search it well."""

    def __init__(self, index: "faiss.Index", plan: IndexPlan, trained_on: int = 0):
        self.index = index
        self.plan = plan
        self.trained_on = trained_on
        self.tuning: dict | None = None  # what the build-time tuner measured (`tune_nprobe`); None when not tuned

    # --------------------------------------------------------------------------------------------- build
    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors_of, *, index_type: str = "auto", factory: str | None = None,
              seed: int = 1234, batch: int = 16384) -> "AnnIndex":
        """Train (when needed) on a sample and add every id; `vectors_of(ids)` returns their float32 vectors."""
        ids = np.asarray(ids, dtype=np.int64)
        plan = plan_index(len(ids), dim, index_type, factory)
        index = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
        trained_on = 0
        if not index.is_trained:
            rng = np.random.default_rng(seed)
            sample = np.sort(rng.choice(ids, size=min(len(ids), plan.train_size), replace=False))
            xt = np.ascontiguousarray(vectors_of(sample), dtype=np.float32)
            ivf = _ivf(index)
            if ivf is not None and gpu_available():  # k-means on the GPU, the rest unchanged
                ivf.clustering_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(ivf.d))
            index.train(xt)
            if ivf is not None:
                ivf.clustering_index = None
            _drop_training_state(index)
            trained_on = len(ids)  # corpus size at training time: `status` compares growth against it
        ann = cls(index, plan, trained_on)
        for i in range(0, len(ids), batch):
            part = ids[i:i + batch]
            ann.add(part, vectors_of(part))
        if _ivf(index) is not None and len(ids) >= 1000:
            ann.tune_nprobe(ids, vectors_of, seed=seed)
        elif _ivf(index) is not None:  # too few vectors to measure: the planned nprobe, and nothing claimed
            ann.tuning = {"recall@10": None, "target": None, "met": None, "nprobe": ann.plan.nprobe,
                          "rerank": ann.plan.rerank, "queries": 0, "fallback": None, "warning": None}
        return ann

    def tune_nprobe(self, ids: np.ndarray, vectors_of, *, k: int = 10, target: float | None = None,
                    n_queries: int = 128, seed: int = 0) -> dict[tuple[int, int], float]:
        """Set the default nprobe and re-rank depth: the shallowest depth (× k) at which some nprobe reaches `target`
        recall@k after the exact re-rank, then the smallest such nprobe. When no usual depth reaches it, deeper
        re-ranks are tried (up to a quarter of the corpus: beyond that exact search is cheaper); when none does,
        the best plan is kept and `self.tuning` says so (`met` False and a `warning` for the user), never silently.

        Queries are stored vectors left out of their own answers (leave-one-out): points from the corpus's own
        distribution, where real queries land, and no model is needed. Ground truth is exact search over every
        stored vector. A candidate set that holds the true top-k gives it back after the exact re-rank, so recall is
        measured on the candidates. Returns recall by (re-rank factor, nprobe).
        """
        target = recall_target() if target is None else float(target)
        q, truth = leave_one_out_queries(ids, vectors_of, k, n_queries, seed)
        nlist = _ivf(self.index).nlist  # the index's own (a custom factory may name another than planned)
        deeper = tuple(f for f in FALLBACK_RERANK_FACTORS if f * k <= len(ids) // 4)
        ladder = nprobe_ladder(nlist)

        def recall_at(factor: int, nprobe: int) -> float:
            return candidate_recall(truth, self.search(q, factor * k + 1, nprobe=nprobe)[1])

        chosen, curve, met = walk_plans(recall_at, RERANK_FACTORS + deeper, ladder, target)
        self.plan = replace(self.plan, rerank=int(chosen[0]), nprobe=int(chosen[1]))
        self.tuning = tuning_report(k, chosen, curve, target, met, len(q))
        self.tuning["fallback"] = None if chosen[0] in RERANK_FACTORS else "deeper re-rank"
        if not met:
            self.tuning["warning"] = (
                f"{self.plan.factory} reaches recall@{k} {curve[chosen]:.3f}, below the {target:.2f} target, even "
                f"probing every list and re-ranking {chosen[0]}×k exactly: these vectors compress badly, so "
                "searches miss true neighbours; use --index-type flat (exact) or a longer code (--index-factory)")
            log.warning("%s", self.tuning["warning"])
        return curve

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.ascontiguousarray(ids, np.int64))

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        return int(self.index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, np.int64))))

    # --------------------------------------------------------------------------------------------- search
    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        """Every id the index holds, sorted (for `doctor`: they must be exactly the generation's chunk ids)."""
        ivf = _ivf(self.index)
        if ivf is None:
            return np.sort(faiss.vector_to_array(faiss.downcast_index(self.index).id_map).astype(np.int64))
        lists = ivf.invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(ivf.nlist) if lists.list_size(i)]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    @property
    def exact(self) -> bool:
        return self.plan.index_type == "flat"

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               nprobe: int | None = None, where: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (nq, k); ids -1 where fewer exist. `allowed` restricts candidates in the scan
        (FAISS filters by ids alone; `where`, the path glob they came from, is for backends that filter by path)."""
        q = np.ascontiguousarray(queries, np.float32)
        k = int(min(k, max(1, self.ntotal)))
        if self.ntotal == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, np.int64)) if allowed is not None else None
        ivf = _ivf(self.index)
        if ivf is not None:
            # FAISS spreads threads over queries by default, so one query (the common case when serving) ran on one
            # core while exact search used them all; with fewer queries than threads, spread over the probed lists
            ivf.parallel_mode = 1 if len(q) < faiss.omp_get_max_threads() else 0
        params = self._params(sel, nprobe)
        if params is None:
            return self.index.search(q, k)
        return self.index.search(q, k, params=params)

    def _params(self, sel, nprobe: int | None):
        ivf = _ivf(self.index)
        if ivf is None:
            return faiss.SearchParameters(sel=sel) if sel is not None else None
        p = faiss.SearchParametersIVF(sel=sel, nprobe=int(nprobe or self.plan.nprobe or 1))
        if isinstance(self.index, faiss.IndexPreTransform):
            pt = faiss.SearchParametersPreTransform(index_params=p)
            pt._keep = p  # keep the inner params alive as long as the outer ones
            return pt
        return p

    # --------------------------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike) -> None:
        """Write to a temporary file, fsync, rename: a crash leaves the old file or the new one, never half."""
        path = Path(path)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        faiss.write_index(self.index, str(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    @classmethod
    def load(cls, path: str | os.PathLike, plan: IndexPlan, trained_on: int = 0) -> "AnnIndex":
        return cls(faiss.read_index(str(path)), plan, trained_on)

    def memory_bytes(self) -> int:
        """Bytes the index occupies in RAM (its serialized size is a close proxy for FAISS's structures)."""
        return int(faiss.serialize_index(self.index).nbytes)


def leave_one_out_queries(ids: np.ndarray, vectors_of, k: int, n_queries: int, seed: int = 0
                          ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Stored vectors as queries, and the exact top-k of each among all the others (itself left out)."""
    rng = np.random.default_rng(seed)
    qids = np.sort(rng.choice(ids, size=min(n_queries, len(ids)), replace=False))
    q = np.ascontiguousarray(vectors_of(qids), np.float32)
    tops = exact_top_k(q, ids, vectors_of, k + 1)
    return q, [t[t != qi][:k] for t, qi in zip(tops, qids)]


def nprobe_ladder(nlist: int) -> list[int]:
    """The numbers of lists a tuner tries, fewest first (a 64th of them up to all)."""
    return sorted({min(nlist, max(4, nlist // d)) for d in (64, 32, 16, 8, 6, 4, 3, 2, 1)})


def candidate_recall(truth: Sequence[np.ndarray], candidates: np.ndarray) -> float:
    """Mean share of each query's true neighbours among its candidates (what an exact re-rank can give back)."""
    return float(np.mean([len(set(np.asarray(t).tolist()) & set(np.asarray(c).tolist())) / max(1, len(t))
                          for t, c in zip(truth, candidates)]))


def walk_plans(recall_at: Callable[[int, int], float], factors: Sequence[int], values: Sequence[int],
               target: float) -> tuple[tuple[int, int], dict[tuple[int, int], float], bool]:
    """The shallowest re-rank factor, then the smallest search parameter, whose recall reaches `target`; when none
    does, the best measured (ties: the cheaper). Returns (chosen, recall by plan, met)."""
    curve: dict[tuple[int, int], float] = {}
    for factor in factors:
        for value in values:
            curve[factor, value] = recall_at(factor, value)
            if curve[factor, value] >= target:
                return (factor, value), curve, True
    return max(curve, key=lambda fv: (curve[fv], -fv[0], -fv[1])), curve, False


def tuning_report(k: int, chosen: tuple[int, int], curve: dict[tuple[int, int], float], target: float, met: bool,
                  queries: int) -> dict:
    """What a build's tuner measured, recorded with the generation and shown by status, bench and ingest (the
    caller adds its `warning` when `met` is False)."""
    return {f"recall@{k}": round(curve[chosen], 4), "target": target, "met": met, "nprobe": int(chosen[1]),
            "rerank": int(chosen[0]), "queries": queries, "fallback": None, "warning": None}


def exact_top_k(queries: np.ndarray, ids: np.ndarray, vectors_of, k: int, block: int = 65536) -> list[np.ndarray]:
    """Ids of the exact top-k by inner product, streaming the stored vectors in blocks."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for a in range(0, len(ids), block):
        part = np.asarray(ids[a:a + block], np.int64)
        sc = queries @ np.asarray(vectors_of(part), np.float32).T
        s = np.concatenate([best_s, sc], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(part, sc.shape)], axis=1)
        top = np.argsort(-s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return list(best_i)


def _drop_training_state(index) -> None:
    """PCAMatrix keeps its full dim×dim covariance after training (64 MiB at 4096-d); search never needs it."""
    if isinstance(index, faiss.IndexPreTransform):
        for j in range(index.chain.size()):
            vt = faiss.downcast_VectorTransform(index.chain.at(j))
            if isinstance(vt, faiss.PCAMatrix):
                vt.PCAMat.clear()


def _ivf(index):
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None
