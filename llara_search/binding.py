"""Which database and which vector database belong to an index folder.

An index folder holds the stored vectors and FAISS files, the database the rows they are keyed by (chunk ids are
shared by the database, the stored vectors, the lexical index and the vector index): one without the other is
meaningless. With an external database (`--db-url`) both sides record one random index id, which also names the
index's Milvus collections. Opening checks the pair (`check_binding`), the first write records it (`bind`).
"""

from __future__ import annotations

import os
import uuid

from .errors import EngineError, VectorDBError
from .index.backend import VectorBackend, is_faiss, normalize_vector_db, open_backend
from .layout import IndexPaths
from .store import Store

INDEX_ID_FILE = "index-id"


def check_binding(paths: IndexPaths, store: Store, info: dict) -> None:
    """A second folder pointed at a database that already serves a folder (or a folder pointed at another
    database) is refused instead of mixing chunk ids. A folder's own meta.sqlite cannot belong to another folder."""
    if paths.db_url_override is None:
        return
    in_db = info.get("index_id")
    f = paths.root / INDEX_ID_FILE
    in_folder = f.read_text().strip() if f.is_file() else None
    if in_db is None and (in_folder is None or not holds_data(paths)):
        return  # not bound yet (or only the folder side was written when the first ingest was cut short)
    if in_db == in_folder:
        return
    from .store.db import _safe_url

    url = _safe_url(paths.db_url)
    if in_db:
        raise EngineError(f"database {url} belongs to another index folder (index id {in_db}), not to {paths.root} "
                          f"(index id {in_folder or 'none'}); give each index folder its own database, or point "
                          "--index at the folder that was built with it")
    raise EngineError(f"index folder {paths.root} was built with another database (index id {in_folder}), not "
                      f"{url}; point --db-url at that database, or use a new --index folder")


def holds_data(paths: IndexPaths) -> bool:
    return any(f.stat().st_size for d in (paths.vectors, paths.generations) if d.is_dir() for f in d.iterdir())


def bind(paths: IndexPaths, store: Store) -> None:
    """Record the index id on both sides before the first write: the folder first, so that an interruption
    between the two leaves a state `check_binding` accepts and the next write completes."""
    if paths.db_url_override is None or store.get_info().get("index_id"):
        return
    f = paths.root / INDEX_ID_FILE
    if not f.is_file():
        tmp = f.with_suffix(".tmp")
        tmp.write_text(random_id() + "\n")
        os.replace(tmp, f)
    with store.session() as s:
        store.set_info(s, index_id=f.read_text().strip())


def random_id() -> str:
    return uuid.uuid4().hex


def new_vector_db(paths: IndexPaths, uri: str) -> tuple[str, VectorBackend | None, str | None]:
    """The normalized `--vector-db` of an index being created or moved, with a connected backend for an index
    that does not exist yet (so that an unreachable Milvus is refused before a folder or database is made)."""
    try:
        want = normalize_vector_db(uri)
    except VectorDBError as exc:
        raise EngineError(str(exc)) from None
    if is_faiss(want) or paths.exists():
        return want, None, None
    new_id = random_id()
    backend = open_backend(paths, {"index_id": new_id, "dim": 0}, want)
    try:
        backend.check_writable(None)
    except VectorDBError:
        backend.close()
        raise
    return want, backend, new_id


__all__ = ["INDEX_ID_FILE", "bind", "check_binding", "holds_data", "new_vector_db", "random_id"]
