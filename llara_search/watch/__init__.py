"""Live sync: an index that follows its folders (`llara-search watch`, `serve --watch`).

events.py (debounce, coalescing) → sync.py (one generation per batch through writing.py and ingest/pipeline.py) ←
watcher.py (the loop: catch-up, paused roots, observers from observe.py, failures once) → state.py (`watch.json`
for `status` and `/info`); filters.py holds `ingest`'s rules per path; command.py is the CLI and server glue.
The names below load lazily: `status` reads state.py without importing the watcher and what it imports.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {"WatchAlreadyRunning": "state", "read_state": "state", "WatchSettings": "watcher", "Watcher": "watcher"}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


__all__ = list(_EXPORTS)
