"""FAISS behind one small class: exact (ID-mapped flat) for small corpora, IVF-PQ beyond.

Ids are chunk ids from the database (`add_with_ids` / `remove_ids`); nothing depends on positions. LLaRA vectors
are 4096-d, so flat costs 16 KiB per vector; IVF-PQ after a PCA rotation to 4 dims per sub-quantizer costs
64 B + 8 B id, and the exact re-rank from the stored float16 vectors restores exact-search quality.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if platform.system() in {"Darwin", "Windows"}:  # faiss + torch OpenMP runtimes clash there (txtai #1009)
    os.environ.setdefault("KMP_DUPLICATE_LIB_OK", "TRUE")

import faiss  # noqa: E402

INDEX_TYPES = ("auto", "flat", "ivfpq")
AUTO_IVF_MIN = 50_000  # below this many vectors exact search is fast enough and always exact
AUTO_FLAT_MAX_BYTES = 512 * 2**20  # ... and above this much float32, flat costs too much RAM


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@dataclass(frozen=True)
class IndexPlan:
    index_type: str  # "flat" | "ivfpq" | "custom"
    factory: str
    nlist: int
    nprobe: int
    train_size: int


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
    m, reduced = _pq_shape(dim)
    nbits = 8 if n >= 39 * 256 else max(4, int(math.log2(max(16, n // 39))))
    pre = f"PCAR{reduced}," if reduced != dim else ""
    pq = f"PQ{m}" if nbits == 8 else f"PQ{m}x{nbits}"
    return IndexPlan("ivfpq", f"{pre}IVF{nlist},{pq}", nlist, _nprobe(nlist), min(n, max(64 * nlist, 39 * 256 * 4)))


def _nlist(n: int) -> int:
    target = 4 * math.sqrt(n) if n < 1_000_000 else 8 * math.sqrt(n)
    return int(max(1, min(math.ceil(target), n // 39)))


def _nprobe(nlist: int) -> int:
    return int(min(nlist, max(16, nlist // 8)))


def _pq_shape(dim: int) -> tuple[int, int]:
    """(sub-quantizers, dimension after PCA): 4 dims per sub-quantizer, at most 64 of them (64 B codes)."""
    if dim >= 256:
        return 64, 256
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
            trained_on = len(ids)  # corpus size at training time: `status` compares growth against it
        ann = cls(index, plan, trained_on)
        for i in range(0, len(ids), batch):
            part = ids[i:i + batch]
            ann.add(part, vectors_of(part))
        return ann

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

    @property
    def exact(self) -> bool:
        return self.plan.index_type == "flat"

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape (nq, k); ids -1 where fewer exist. `allowed` restricts candidates in the scan."""
        q = np.ascontiguousarray(queries, np.float32)
        k = int(min(k, max(1, self.ntotal)))
        if self.ntotal == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, np.int64)) if allowed is not None else None
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


def _ivf(index):
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None
