"""The search mode a query gets when it names none: dense where the index has vectors, BM25 in a text-only index
(`ingest --model none`), which has no encoder to run a dense search with."""

from __future__ import annotations

from pathlib import Path

from .identity import TEXT_ONLY


def default_mode(info: dict) -> str:
    return "bm25" if info.get("model") == TEXT_ONLY else "dense"


def index_default_mode(index: str | Path | None, db_url: str | None) -> str:
    """The default mode of the index at `index` (or the default index), read from its database without loading
    the engine (SQLite: one statement, no SQLAlchemy import: `query` may be answered by a running server); "dense"
    when there is no index to read (the search then says what is wrong)."""
    from .layout import IndexPaths, default_index_dir

    paths = IndexPaths(Path(index) if index else default_index_dir(), db_url)
    if not paths.exists():
        return "dense"
    if db_url is None:
        import json
        import sqlite3
        from urllib.parse import quote

        try:
            con = sqlite3.connect(f"file:{quote(str(paths.root.resolve() / 'meta.sqlite'))}?mode=ro", uri=True,
                                  timeout=5)
            try:
                row = con.execute("SELECT value FROM index_info WHERE key = 'model'").fetchone()
            finally:
                con.close()
            return default_mode({"model": json.loads(row[0]) if row else None})
        except (sqlite3.Error, ValueError):
            return "dense"
    from .store import Store

    try:
        store = Store(paths.db_url, create=False)
    except Exception:  # noqa: BLE001 - the engine opening it says what is wrong, in its words
        return "dense"
    try:
        return default_mode(store.get_info())
    finally:
        store.close()
