"""Live sync: an index that follows its folders (`llara-search watch`, `serve --watch`)."""

from .state import WatchAlreadyRunning, read_state
from .watcher import WatchSettings, Watcher

__all__ = ["WatchAlreadyRunning", "WatchSettings", "Watcher", "read_state"]
