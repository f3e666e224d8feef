"""Every vector, kept on disk as float16 and addressable by chunk id.

They are the ground truth for the exact re-rank of ANN candidates, for rebuilding or retraining the FAISS index
without the model, and for `bench`. Two append-only files: `vectors.f16` (rows) and `vectors.ids` (int64 chunk id of
each row). Appends are fsynced before the database commit that makes their chunks exist; a crash can only leave rows
nobody refers to (ignored) or a torn tail (cut off on the next write). When an id occurs twice, the later row wins.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..faults import crash_point


class VectorStore:
    DATA = "vectors.f16"
    IDS = "vectors.ids"

    def __init__(self, directory: str | os.PathLike, dim: int):
        self.dir = Path(directory)
        self.dim = int(dim)
        self.row_bytes = 2 * self.dim
        self._recover_swap()
        self._map_ids: np.ndarray | None = None
        self._map_pos: np.ndarray | None = None
        self._data: np.ndarray | None = None
        self._rows = -1

    # --------------------------------------------------------------------------------------------- files
    @property
    def data_path(self) -> Path:
        return self.dir / self.DATA

    @property
    def ids_path(self) -> Path:
        return self.dir / self.IDS

    def _recover_swap(self) -> None:
        """Finish a `rewrite` that was interrupted between its two renames."""
        new, old = self.dir.with_name(self.dir.name + ".new"), self.dir.with_name(self.dir.name + ".old")
        if not self.dir.exists() and new.exists():
            new.rename(self.dir)
        if self.dir.exists() and old.exists():
            shutil.rmtree(old, ignore_errors=True)

    def rows_on_disk(self) -> int:
        try:
            data = self.data_path.stat().st_size // self.row_bytes
            ids = self.ids_path.stat().st_size // 8
        except FileNotFoundError:
            return 0
        return min(data, ids)

    # --------------------------------------------------------------------------------------------- writing
    def append(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vecs = np.ascontiguousarray(vectors, dtype=np.float16)
        if vecs.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vecs.shape}")
        self.dir.mkdir(parents=True, exist_ok=True)
        n = self.rows_on_disk()
        for path, width, payload in ((self.data_path, self.row_bytes, vecs), (self.ids_path, 8, ids)):
            with open(path, "ab") as fh:
                if fh.tell() != n * width:  # torn tail from a crash: cut back to the last complete, paired row
                    fh.truncate(n * width)
                    fh.seek(n * width)
                fh.write(payload.tobytes())
                fh.flush()
                os.fsync(fh.fileno())
            if path == self.data_path:
                crash_point("vectors")
        self._rows = -1

    def rewrite(self, ids: np.ndarray, vectors_of) -> None:
        """Write a compacted copy holding only `ids` (in that order) and swap it in; readers keep their maps."""
        new = self.dir.with_name(self.dir.name + ".new")
        shutil.rmtree(new, ignore_errors=True)
        fresh = VectorStore(new, self.dim)
        ids = np.asarray(ids, dtype=np.int64)
        for i in range(0, len(ids), 8192):
            part = ids[i:i + 8192]
            fresh.append(part, vectors_of(part))
        if len(ids) == 0:
            new.mkdir(parents=True, exist_ok=True)
            for p in (fresh.data_path, fresh.ids_path):
                p.touch()
        old = self.dir.with_name(self.dir.name + ".old")
        if self.dir.exists():
            self.dir.rename(old)
        new.rename(self.dir)
        shutil.rmtree(old, ignore_errors=True)
        self._rows = -1

    # --------------------------------------------------------------------------------------------- reading
    def _refresh(self) -> None:
        rows = self.rows_on_disk()
        if rows == self._rows:
            return
        if rows == 0:
            self._map_ids = np.zeros(0, np.int64)
            self._map_pos = np.zeros(0, np.int64)
            self._data = np.zeros((0, self.dim), np.float16)
        else:
            all_ids = np.fromfile(self.ids_path, dtype=np.int64, count=rows)
            rev_unique, rev_first = np.unique(all_ids[::-1], return_index=True)
            self._map_ids = rev_unique
            self._map_pos = rows - 1 - rev_first  # the LAST row of each id
            self._data = np.memmap(self.data_path, dtype=np.float16, mode="r", shape=(rows, self.dim))
        self._rows = rows

    def ids(self) -> np.ndarray:
        self._refresh()
        return self._map_ids.copy()

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id, -1 where the id has no stored vector."""
        self._refresh()
        ids = np.asarray(ids, dtype=np.int64)
        if len(self._map_ids) == 0:
            return np.full(len(ids), -1, np.int64)
        at = np.searchsorted(self._map_ids, ids).clip(0, len(self._map_ids) - 1)
        return np.where(self._map_ids[at] == ids, self._map_pos[at], -1)

    def get(self, ids: np.ndarray) -> np.ndarray:
        """float32 vectors of `ids`; KeyError if one is missing (a broken index, which doctor reports)."""
        pos = self.positions(ids)
        if (pos < 0).any():
            missing = np.asarray(ids)[pos < 0][:5].tolist()
            raise KeyError(f"no stored vector for chunk ids {missing}")
        order = np.argsort(pos)
        out = np.empty((len(pos), self.dim), np.float32)
        out[order] = self._data[pos[order]]
        return out

    def scores(self, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact dot products (queries × ids) from the stored vectors."""
        if len(ids) == 0:
            return np.zeros((len(queries), 0), np.float32)
        return np.asarray(queries, np.float32) @ self.get(ids).T

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in (self.data_path, self.ids_path) if p.exists())
