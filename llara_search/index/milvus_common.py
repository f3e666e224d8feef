"""What the Milvus backend (milvus.py) knows without a connection: the URI forms an index records, its limits and
names, the visibility filter of a generation, the plan of a collection's index, and how a failure reads as one
line. Kept apart from the backend so that each stays small; nothing here imports pymilvus.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from ..errors import VectorDBError, first_line
from .ann import AUTO_IVF_MIN

LIVE = 2**62  # removed_gen of a chunk no generation has removed
MAX_LIMIT = 16384  # Milvus's largest top-k
MAX_ID_LIST = 16384  # the most ids a filter names in an `id in [...]` expression
PATH_MAX = 65535
PREFIX = "milvus:"
LITE_INDEX_TYPES = ("auto", "flat", "ivf_flat", "hnsw")
SERVER_INDEX_TYPES = ("auto", "flat", "ivf_flat", "hnsw", "ivfpq", "diskann")
MILVUS_TYPES = {"flat": "FLAT", "ivf_flat": "IVF_FLAT", "hnsw": "HNSW", "ivfpq": "IVF_PQ", "diskann": "DISKANN"}
SEARCH_PARAM = {"flat": None, "ivf_flat": "nprobe", "ivfpq": "nprobe", "hnsw": "ef", "diskann": "search_list"}
HNSW_M = 32
DEFAULT_MEMORY_GB = 32.0  # what the query nodes may spend on this index's vectors (LLARA_SEARCH_MILVUS_MEMORY_GB)
CONNECT_TIMEOUT_S = 15.0
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
SCHEMES = ("http://", "https://", "tcp://")



def quiet_logs() -> None:
    """pymilvus logs every failed call (with a traceback) before raising it, and Milvus Lite logs what it refuses:
    those lines would break "one line on stderr"; the errors reach us as exceptions. pymilvus sets its level when
    imported, so this runs after the import."""
    for name in ("pymilvus", "milvus_lite", "grpc._server"):  # grpc._server: the in-process Lite server's
        logging.getLogger(name).setLevel(logging.CRITICAL)  # complaints about calls it does not implement


# -------------------------------------------------------------------------------------------------- addresses
def normalize_uri(uri: str) -> str:
    """`/abs/path/x.db[#prefix]` or `http(s)://host:port[/database][#prefix]`, never with credentials."""
    base, _, prefix = uri.strip().partition("#")
    if prefix and not _NAME.match(prefix):
        raise VectorDBError(f"--vector-db {uri!r}: the collection name after '#' may hold letters, digits and "
                            "underscores and must not start with a digit")
    if base.lower().startswith(SCHEMES):
        u = urlparse(base)
        if u.username or u.password:
            raise VectorDBError("--vector-db must not contain credentials (they would be written into the index): "
                                "put them in MILVUS_TOKEN ('user:password' or an API key), or MILVUS_USER and "
                                "MILVUS_PASSWORD")
        if not u.hostname:
            raise VectorDBError(f"--vector-db {uri!r} names no host; e.g. http://milvus.example:19530")
        try:
            port = u.port or (443 if u.scheme.lower() == "https" else 19530)
        except ValueError:
            raise VectorDBError(f"--vector-db {uri!r} has an invalid port") from None
        out = f"{u.scheme.lower()}://{u.hostname}:{port}{u.path.rstrip('/')}"
    elif "://" in base:
        raise VectorDBError(f"--vector-db {uri!r}: give a Milvus Lite file (a path ending in .db), a Milvus server "
                            "(http(s)://host:19530) or faiss")
    else:
        if not base.endswith(".db"):
            raise VectorDBError(f"--vector-db {uri!r}: a Milvus Lite database is a path ending in .db (e.g. "
                                "./vectors.milvus.db); a Milvus server is http(s)://host:19530")
        out = str(Path(base).expanduser().resolve())
    return out + (f"#{prefix}" if prefix else "")


def glob_to_like(glob: str) -> tuple[str, bool]:
    """A path glob as a Milvus LIKE pattern that matches at least what the glob matches, and whether it matches
    exactly that (LIKE has no character classes and no portable escape, so `[..]`, `%`, `_`, quotes and
    backslashes become the one-character wildcard `_`)."""
    out, i, exact = [], 0, True
    while i < len(glob):
        c = glob[i]
        if c == "*":
            if not out or out[-1] != "%":
                out.append("%")
        elif c == "[" and "]" in glob[i + 2:] + glob[i + 1:i + 2]:
            i = glob.index("]", i + 2 if glob[i + 1:i + 2] in ("!", "]") else i + 1)
            out.append("_")
            exact = False
        elif c == "?":
            out.append("_")
        elif c in '%_"\\\'':
            out.append("_")
            exact = False
        else:
            out.append(c)
        i += 1
    return "".join(out), exact


def visible_at(G: int) -> str:
    return f"added_gen <= {int(G)} and removed_gen > {int(G)}"


# -------------------------------------------------------------------------------------------------- plans
@dataclass(frozen=True)
class MilvusPlan:
    index_type: str  # flat | ivf_flat | hnsw | ivfpq | diskann
    float16: bool
    build: dict
    value: int = 0  # the search parameter (nprobe, ef, search_list); 0 for flat
    rerank: int = 1  # candidates re-ranked from the stored vectors: rerank × k

    @property
    def factory(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.build.items())
        return f"Milvus {MILVUS_TYPES[self.index_type]}{' ' + params if params else ''} " \
               f"{'float16' if self.float16 else 'float32'}"

    def bytes_per_vector(self, dim: int) -> float:
        width = 2 if self.float16 else 4
        if self.index_type == "ivfpq":
            return self.build["m"] * self.build.get("nbits", 8) / 8 + 8
        if self.index_type == "diskann":
            return dim * width / 8 + 8  # the PQ codes DiskANN keeps in memory (pq_code_budget_gb_ratio 0.125)
        if self.index_type == "hnsw":
            return dim * width + 2 * HNSW_M * 4 + 8
        return dim * width + 8


def _nlist(n: int) -> int:
    return int(max(1, min(math.ceil(4 * math.sqrt(max(1, n))), max(1, n // 39), 65536)))


def memory_budget() -> float:
    try:
        return float(os.environ.get("LLARA_SEARCH_MILVUS_MEMORY_GB", DEFAULT_MEMORY_GB)) * 2**30
    except ValueError:
        return DEFAULT_MEMORY_GB * 2**30


def plan_milvus(n: int, dim: int, *, lite: bool, index_type: str = "auto", budget: float | None = None
                ) -> MilvusPlan:
    """The index for `n` vectors of `dim` dimensions. Milvus Lite (in-process, float32 only) takes FLAT below
    AUTO_IVF_MIN vectors and IVF_FLAT above. A server stores float16 vectors (ours are float16 already, so
    nothing is lost) and picks by size and memory budget: FLAT (exact) below AUTO_IVF_MIN; HNSW while its
    vectors and graph fit the budget; DiskANN (graph and vectors on the query nodes' disks, PQ codes in memory)
    while its codes fit; IVF_PQ with the longest code that fits beyond that, re-ranked from the stored vectors."""
    allowed = LITE_INDEX_TYPES if lite else SERVER_INDEX_TYPES
    if index_type not in allowed:
        raise VectorDBError(f"--index-type must be one of {', '.join(allowed)} for Milvus"
                            f"{' Lite' if lite else ''}, not {index_type!r}")
    fp16 = not lite
    budget = memory_budget() if budget is None else budget
    if index_type == "auto":
        if n < AUTO_IVF_MIN:
            index_type = "flat"
        elif lite:
            index_type = "ivf_flat"
        elif n * MilvusPlan("hnsw", fp16, {}).bytes_per_vector(dim) <= budget:
            index_type = "hnsw"
        elif n * MilvusPlan("diskann", fp16, {}).bytes_per_vector(dim) <= budget:
            index_type = "diskann"
        else:
            index_type = "ivfpq"
    if index_type == "flat" or n < 2 * 39 and index_type in ("ivf_flat", "ivfpq"):
        return MilvusPlan("flat", fp16, {})
    if index_type == "ivf_flat":
        return MilvusPlan("ivf_flat", fp16, {"nlist": _nlist(n)})
    if index_type == "hnsw":
        return MilvusPlan("hnsw", fp16, {"M": HNSW_M, "efConstruction": 360})
    if index_type == "diskann":
        return MilvusPlan("diskann", fp16, {})
    m = next((m for m in (dim // 8, dim // 16, dim // 32, dim // 64) if m and dim % m == 0
              and n * (m + 8) <= budget), max(1, dim // 64))
    return MilvusPlan("ivfpq", fp16, {"nlist": _nlist(n), "m": int(m), "nbits": 8})


def plan_of_generation(gen) -> MilvusPlan:
    factory = str(gen.factory or "")
    build = dict(kv.split("=", 1) for kv in factory.split() if "=" in kv)
    return MilvusPlan(gen.index_type, "float16" in factory, {k: int(v) for k, v in build.items()},
                      int(gen.nprobe or 0), int(gen.rerank or 1))


# -------------------------------------------------------------------------------------------------- backend


# -------------------------------------------------------------------------------------------------- Lite
def lite_held_elsewhere(path: Path) -> bool:
    """Milvus Lite lets one process open a database folder (an flock on its LOCK file)."""
    import fcntl

    lock = path / "LOCK"
    if not lock.is_file():
        return False
    try:
        from milvus_lite.server_manager import server_manager_instance

        if os.path.abspath(path) in getattr(server_manager_instance, "_servers", {}):
            return False  # this process holds it
    except ImportError:
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def lite_busy(path: Path) -> str:
    return (f"Milvus Lite database {path} is open in another process (a running serve, mcp, query or ingest): "
            "Milvus Lite serves one process at a time; wait for that process, or serve the database with "
            f"`milvus-lite server --data-dir {path} --host 127.0.0.1` and move the index onto it with "
            "`llara-search reindex --vector-db http://127.0.0.1:19530`")


def failure_reason(exc: Exception) -> str:
    """The most telling line of a failure: pymilvus wraps the server's own gRPC status (e.g. UNAUTHENTICATED and
    Milvus's "auth check failure") in "Fail connecting to server", so the cause chain is read first."""
    seen, e = 0, exc
    while e is not None and seen < 8:
        code = getattr(e, "code", None)
        if callable(code) and callable(getattr(e, "details", None)):  # a grpc.RpcError
            try:
                name, details = str(getattr(code(), "name", code())), e.details() or ""
            except Exception:  # noqa: BLE001
                name, details = "", ""
            if name not in ("UNAVAILABLE", "DEADLINE_EXCEEDED", ""):
                return f"{name}: {details}".strip(": ")[:200]
        e, seen = e.__cause__ or e.__context__, seen + 1
    msg = getattr(exc, "message", None)  # pymilvus's own exceptions keep the server's words there
    return first_line(msg if msg and str(msg).strip() else exc, limit=200)
