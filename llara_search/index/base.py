"""What every vector backend is: the interface (`VectorBackend`), what a build returns, and the constants the
factory (backend.py) and its products (generations.py for FAISS, milvus.py) share. Products import this module,
never the factory, so that the factory can import them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from ..errors import VectorDBError

FAISS = "faiss"
FAISS_INDEX_TYPES = ("auto", "flat", "ivfpq")
ALL_INDEX_TYPES = ("auto", "flat", "ivfpq", "ivf_flat", "hnsw", "diskann")  # FAISS's and Milvus's, for the CLI


class SearchIndex(Protocol):
    """A committed generation opened for searching (FAISS's AnnIndex is one)."""

    plan: object  # .index_type, .factory, .nprobe, .rerank
    tuning: dict | None  # what the build-time tuner measured (recall, target, met, warning); None when not tuned

    @property
    def ntotal(self) -> int: ...

    @property
    def exact(self) -> bool: ...

    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None, nprobe: int | None = None,
               where: str | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def ids(self) -> np.ndarray: ...

    def memory_bytes(self) -> int: ...


@dataclass
class BuiltGeneration:
    """The next generation's vector index, written but not yet named by the database."""

    index: SearchIndex
    name: str  # what the generation row records (`index_file`): a file name or `milvus:<collection>`
    trained_on: int
    save: Callable[[], None]  # make it durable: called before the database commit that names it
    published: Callable[[], None] = lambda: None  # after that commit (Milvus: switch the alias)


class VectorBackend:
    """Base of the FAISS and Milvus backends; see the module docstring for what each method promises."""

    kind = FAISS
    uri: str = FAISS
    index_types: tuple[str, ...] = FAISS_INDEX_TYPES

    def check_index_type(self, index_type: str | None) -> None:
        if index_type is not None and index_type not in self.index_types:
            raise VectorDBError(f"--index-type must be one of {', '.join(self.index_types)} for {self.describe()}, "
                                f"not {index_type!r}")

    def check_writable(self, gen) -> None:
        """Raise VectorDBError when the committed generation's vectors cannot be built upon."""

    def build(self, G: int, prev_gen, vectors, all_ids: np.ndarray, added: np.ndarray, removed: np.ndarray, *,
              index_type: str, factory: str | None, rebuild: bool,
              attributes: Callable[[np.ndarray], tuple[list[str], list[str]]]) -> BuiltGeneration:
        raise NotImplementedError

    def open(self, gen) -> SearchIndex:
        raise NotImplementedError

    def republish(self, gen) -> None:
        """A run that commits nothing new finishes what a killed one left between committing `gen` and publishing it
        (Milvus: the alias other tools read; our readers never need it)."""

    def cleanup(self, G: int, horizon: int, kept: dict[int, str]) -> None:
        """`kept`: index_file names of the committed generations from `horizon` to `G`."""

    def orphans(self, keep: set[str]) -> list[str]:
        """What the backend holds for this index that none of `keep` (index_file names) names."""
        return []

    def quarantine(self, names: list[str], stamp: str) -> list[dict]:
        return []

    def compact(self) -> None:
        """Give back the space of deleted rows where the backend holds it (Milvus compaction)."""

    def needs_retrain(self, gen, n_now: int, dim: int, index_type: str = "auto") -> str | None:
        return None

    def disk_bytes(self) -> int:
        return 0

    def describe(self) -> str:
        return "FAISS"

    def status(self) -> dict:
        return {"vector_db": self.uri}

    def close(self) -> None:
        pass


def is_faiss(uri: str | None) -> bool:
    return uri in (None, "", FAISS)


def dir_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.stat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


__all__ = ["ALL_INDEX_TYPES", "BuiltGeneration", "FAISS", "FAISS_INDEX_TYPES", "SearchIndex", "VectorBackend",
           "VectorDBError", "dir_bytes", "is_faiss"]
