"""The search mode a query gets when it names none: dense where the index has vectors, BM25 in a text-only index
(`ingest --model none`), which has no encoder to run a dense search with."""

from __future__ import annotations

from pathlib import Path

TEXT_ONLY = "none"


def default_mode(info: dict) -> str:
    return "bm25" if info.get("model") == TEXT_ONLY else "dense"


def index_default_mode(index: str | Path | None, db_url: str | None) -> str:
    """The default mode of the index at `index` (or the default index), read from its database without loading
    the engine; "dense" when there is no index to read (the search then says what is wrong)."""
    from .layout import IndexPaths, default_index_dir
    from .store import Store

    paths = IndexPaths(Path(index) if index else default_index_dir(), db_url)
    if not paths.exists():
        return "dense"
    try:
        store = Store(paths.db_url, create=False)
    except Exception:  # noqa: BLE001 - the engine opening it says what is wrong, in its words
        return "dense"
    try:
        return default_mode(store.get_info())
    finally:
        store.close()
