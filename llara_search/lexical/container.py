"""One file of named numpy arrays: written whole and durable (temp file, fsync, rename), read by memory map.

Layout: magic, header length and CRC32, a JSON header (metadata and, per array, its dtype, length, offset and
CRC32), then the arrays, each aligned to 64 bytes. Opening checks the magic, the header CRC and the file size, so a
torn or foreign file is refused in microseconds; `verify()` checks every array's CRC (doctor). Readers map the file
read-only: arrays cost no copy and no load time, and a file unlinked while mapped stays readable to them.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import zlib
from pathlib import Path

import numpy as np

MAGIC = b"LLXLEX01"
_PREFIX = struct.Struct("<8sII")  # magic, header length, header crc32
_ALIGN = 64


class ContainerError(ValueError):
    """The file is not a complete lexical file of this version (torn, damaged or foreign)."""


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B")) & 0xFFFFFFFF


def write_container(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> int:
    """Write atomically and durably; returns the file size. The caller fsyncs the folder once after its files."""
    layout, offset = {}, 0
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    for name, a in arrays.items():
        layout[name] = {"dtype": a.dtype.str, "count": int(a.size), "offset": offset, "crc32": _crc(a)}
        offset += -(-a.nbytes // _ALIGN) * _ALIGN
    header = json.dumps({**meta, "arrays": layout}, separators=(",", ":")).encode()
    head_len = -(-(_PREFIX.size + len(header)) // _ALIGN) * _ALIGN
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(_PREFIX.pack(MAGIC, len(header), zlib.crc32(header) & 0xFFFFFFFF) + header)
        f.write(b"\0" * (head_len - _PREFIX.size - len(header)))
        for name, a in arrays.items():
            f.write(memoryview(a).cast("B"))
            f.write(b"\0" * (-a.nbytes % _ALIGN))
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    os.replace(tmp, path)
    return size


class Container:
    """A read-only mapped container: `meta` (the header) and `array(name)`."""

    def __init__(self, path: Path):
        self.path = path
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < _PREFIX.size:
                raise ContainerError(f"{path.name} is truncated ({size} bytes)")
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        magic, n, crc = _PREFIX.unpack_from(self._map, 0)
        if magic != MAGIC:
            raise ContainerError(f"{path.name} is not a lexical index file of this version")
        header = bytes(self._map[_PREFIX.size:_PREFIX.size + n])
        if len(header) != n or zlib.crc32(header) & 0xFFFFFFFF != crc:
            raise ContainerError(f"{path.name} has a damaged header")
        self.meta = json.loads(header)
        self._base = -(-(_PREFIX.size + n) // _ALIGN) * _ALIGN
        self.size = size
        for name, spec in self.meta["arrays"].items():
            end = self._base + spec["offset"] + spec["count"] * np.dtype(spec["dtype"]).itemsize
            if end > size:
                raise ContainerError(f"{path.name} is truncated (array {name} ends at byte {end} of {size})")

    def array(self, name: str) -> np.ndarray:
        spec = self.meta["arrays"][name]
        return np.frombuffer(self._map, dtype=np.dtype(spec["dtype"]), count=spec["count"],
                             offset=self._base + spec["offset"])

    def verify(self) -> list[str]:
        """Names of arrays whose bytes no longer match their CRC32."""
        return [n for n, spec in self.meta["arrays"].items() if _crc(self.array(n)) != spec["crc32"]]


def read_container(path: Path) -> Container:
    try:
        return Container(path)
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        if isinstance(exc, ContainerError):
            raise
        raise ContainerError(f"{path.name} has a damaged header ({exc})") from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
