"""Every vector, kept on disk as float16 and addressable by chunk id.

They are the ground truth for the exact re-rank of ANN candidates, for rebuilding or retraining the FAISS index
without the model, and for `bench`. Two append-only files per *epoch*: rows (float16) and the int64 chunk id of each
row. Appends are fsynced before the database commit that makes their chunks exist; a crash can only leave rows
nobody refers to (ignored) or a torn tail (cut off on the next write). When an id occurs twice, the later row wins.

Compaction writes a new epoch holding only the rows still needed and then switches the one-line `CURRENT` file
with an atomic rename, so a reader sees either the old epoch or the new one, complete, never a gap; a crash
before the switch leaves the old epoch current and an orphan that the next writer deletes. Epoch 0 keeps the
original names (`vectors.f16`, `vectors.ids`), so indexes written before compaction existed open unchanged.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import numpy as np

from ..faults import crash_point

_EPOCH_FILE = re.compile(r"^vectors(?:-(\d+))?\.(f16|ids)$")


class VectorStore:
    CURRENT = "CURRENT"

    def __init__(self, directory: str | os.PathLike, dim: int, *, writer: bool = False):
        """`writer=True` (only under the index's write lock): finish or discard what an interrupted compaction
        left. Readers never touch files."""
        self.dir = Path(directory)
        self.dim = int(dim)
        self.row_bytes = 2 * self.dim
        self._map_ids: np.ndarray | None = None
        self._map_pos: np.ndarray | None = None
        self._data: np.ndarray | None = None
        self._seen: tuple | None = None  # (epoch, inode, rows) the maps were built from
        if writer:
            self._recover()

    # --------------------------------------------------------------------------------------------- files
    def epoch(self) -> int:
        try:
            return int((self.dir / self.CURRENT).read_text().strip() or 0)
        except FileNotFoundError:
            return 0

    def _files(self, epoch: int) -> tuple[Path, Path]:
        stem = "vectors" if epoch == 0 else f"vectors-{epoch}"
        return self.dir / f"{stem}.f16", self.dir / f"{stem}.ids"

    @property
    def data_path(self) -> Path:
        return self._files(self.epoch())[0]

    @property
    def ids_path(self) -> Path:
        return self._files(self.epoch())[1]

    def _recover(self) -> None:
        """Delete what an interrupted compaction left: a new epoch never switched to, or the old one after."""
        for f in self.orphans():
            f.unlink(missing_ok=True)

    def orphans(self) -> list[Path]:
        """Files in the folder that belong to no current epoch."""
        if not self.dir.is_dir():
            return []
        current = self.epoch()
        return sorted(f for f in self.dir.iterdir()
                      if ((m := _EPOCH_FILE.match(f.name)) and int(m.group(1) or 0) != current)
                      or f.name.startswith(self.CURRENT + "."))

    def rows_on_disk(self) -> int:
        return self._rows_of(*self._files(self.epoch()))

    def _rows_of(self, data: Path, ids: Path) -> int:
        try:
            return min(data.stat().st_size // self.row_bytes, ids.stat().st_size // 8)
        except FileNotFoundError:
            return 0

    # --------------------------------------------------------------------------------------------- writing
    def append(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._append_to(self._files(self.epoch()), ids, vectors)
        self._seen = None

    def _append_to(self, files: tuple[Path, Path], ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vecs = np.ascontiguousarray(vectors, dtype=np.float16)
        if vecs.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vecs.shape}")
        self.dir.mkdir(parents=True, exist_ok=True)
        n = self._rows_of(*files)
        for path, width, payload in ((files[0], self.row_bytes, vecs), (files[1], 8, ids)):
            with open(path, "ab") as fh:
                if fh.tell() != n * width:  # torn tail from a crash: cut back to the last complete, paired row
                    fh.truncate(n * width)
                    fh.seek(n * width)
                fh.write(payload.tobytes())
                fh.flush()
                os.fsync(fh.fileno())
            if path == files[0]:
                crash_point("vectors")

    def dead_rows(self, keep: np.ndarray) -> int:
        """Rows a compaction keeping `keep` would drop: ids no longer needed and the older rows of rewritten ids."""
        return self.rows_on_disk() - int(np.isin(self.ids(), np.asarray(keep, np.int64)).sum())

    def compact(self, keep: np.ndarray, before_switch: Callable[[int], None] | None = None) -> int:
        """Write a new epoch holding the latest row of every id in `keep` that has one (bytes copied, not
        re-encoded) and switch to it; returns its row count. `before_switch(rows)` runs after the new files are
        durable and before readers can see them (the caller records the new row count in the database there)."""
        old = self.epoch()
        new = old + 1
        files = self._files(new)
        for f in files:
            f.unlink(missing_ok=True)
        keep = np.sort(np.asarray(keep, np.int64))
        keep = keep[self.positions(keep) >= 0]
        self.dir.mkdir(parents=True, exist_ok=True)
        for f in files:
            f.touch()
        for i in range(0, len(keep), 8192):
            part = keep[i:i + 8192]
            self._append_to(files, part, self._raw(part))
        _fsync_dir(self.dir)
        if before_switch is not None:
            before_switch(len(keep))
        crash_point("compact")  # new epoch durable, CURRENT still names the old one
        tmp = self.dir / f"{self.CURRENT}.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{new}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / self.CURRENT)
        _fsync_dir(self.dir)
        for f in self._files(old):  # open memory maps of readers keep the old rows until they remap
            f.unlink(missing_ok=True)
        self._seen = None
        return len(keep)

    # --------------------------------------------------------------------------------------------- reading
    def _refresh(self) -> None:
        for _ in range(100):  # a compaction may delete the epoch named a moment ago: read CURRENT again
            epoch = self.epoch()
            data, ids_file = self._files(epoch)
            try:
                inode = data.stat().st_ino
            except FileNotFoundError:
                if self.epoch() == epoch:  # nothing written yet (or files lost, which doctor reports)
                    self._set_empty((epoch, 0, 0))
                    return
                continue
            rows = self._rows_of(data, ids_file)
            key = (epoch, inode, rows)
            if key == self._seen:
                return
            if rows == 0:
                self._set_empty(key)
                return
            try:
                all_ids = np.fromfile(ids_file, dtype=np.int64, count=rows)
                mapped = np.memmap(data, dtype=np.float16, mode="r", shape=(rows, self.dim))
            except FileNotFoundError:
                continue
            rev_unique, rev_first = np.unique(all_ids[::-1], return_index=True)
            self._map_ids, self._map_pos, self._data = rev_unique, rows - 1 - rev_first, mapped  # last row wins
            self._seen = key
            return
        raise RuntimeError(f"stored vectors in {self.dir} keep changing under the reader")

    def _set_empty(self, key: tuple) -> None:
        self._map_ids = np.zeros(0, np.int64)
        self._map_pos = np.zeros(0, np.int64)
        self._data = np.zeros((0, self.dim), np.float16)
        self._seen = key

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

    def _raw(self, ids: np.ndarray) -> np.ndarray:
        """float16 rows of `ids` exactly as stored; KeyError if one is missing."""
        pos = self.positions(ids)
        if (pos < 0).any():
            missing = np.asarray(ids)[pos < 0][:5].tolist()
            raise KeyError(f"no stored vector for chunk ids {missing}")
        return self._rows_at(pos)

    def _rows_at(self, pos: np.ndarray) -> np.ndarray:
        order = np.argsort(pos)  # read the memory map in file order
        out = np.empty((len(pos), self.dim), np.float16)
        out[order] = self._data[pos[order]]
        return out

    def get(self, ids: np.ndarray) -> np.ndarray:
        """float32 vectors of `ids`; KeyError if one is missing (a broken index, which doctor reports)."""
        return self._raw(ids).astype(np.float32)

    def scores(self, queries: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """Exact dot products (queries × ids) from the stored vectors."""
        if len(ids) == 0:
            return np.zeros((len(queries), 0), np.float32)
        return np.asarray(queries, np.float32) @ self.get(ids).T

    def stored_scores(self, queries: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like `scores`, over the `ids` that have a stored vector (returned first) instead of failing on the
        others: the re-rank of a search whose candidates may have been compacted away since it began."""
        pos = self.positions(ids)
        have = pos >= 0
        ids, pos = np.asarray(ids)[have], pos[have]
        if len(ids) == 0:
            return ids, np.zeros((len(queries), 0), np.float32)
        return ids, np.asarray(queries, np.float32) @ self._rows_at(pos).astype(np.float32).T

    def disk_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._files(self.epoch()) if p.exists())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
