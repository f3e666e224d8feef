"""`llara-search watch`: the watcher in the foreground, one line per sync (one JSON object per line with --json),
stopped cleanly by SIGINT or SIGTERM (or after --exit-after seconds)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from ..ingest.report import IngestOptions
from .sync import Stopped
from .watcher import WatchSettings, Watcher

if TYPE_CHECKING:
    from ..engine import Engine


def describe(e: dict) -> str:
    """One line for people (paths are data: the caller prints it as plain text, never as markup)."""
    kind = e["event"]
    stamp = datetime.now().strftime("%H:%M:%S")
    if kind == "sync":
        parts = [f"{e['files_new']} new", f"{e['files_changed']} changed", f"{e['files_removed']} removed"]
        return (f"{stamp} {e['kind']}: generation {e['generation']}: {', '.join(parts)}; {e['chunks_encoded']} "
                f"chunks encoded; {e['documents']} documents ({e['seconds']:.2f}s)")
    if kind == "watching":
        modes = ", ".join(f"{r} ({m})" for r, m in e["mode"].items())
        return f"{stamp} watching {modes}; debounce {e['debounce_s']:g}s; Ctrl-C stops"
    if kind == "failed":
        return f"{stamp} failed: {e['path']}: {e['error']}"
    if kind == "paused":
        return f"{stamp} warning: {e['warning']}"
    if kind == "resumed":
        return f"{stamp} {e['root']} is back; catching up"
    if kind == "polling":
        return f"{stamp} polling {e['root']} every {e['poll_s']:g}s: {e['reason']}"
    if kind in ("waiting", "error"):
        return f"{stamp} {e['message']}"
    return f"{stamp} {kind}"


@contextmanager
def stop_on_signals(watcher: Watcher) -> Iterator[None]:
    """SIGINT/SIGTERM: stop now and exit 0. A sync in hand is abandoned where it is, as a crash would leave it
    (readers never saw its generation; the next start's catch-up finishes it without re-encoding what it wrote)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, _frame):
        watcher.stop()
        if watcher.busy:
            raise Stopped

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


def run_watch(engine: Engine, paths: list[Path], options: IngestOptions, settings: WatchSettings, *, model: str | None,
              adapter: str | None, chunk_tokens: int | None, as_json: bool, exit_after: float | None,
              console=None) -> Watcher:
    """Watch in this thread until stopped; every event printed as it happens."""
    from rich.text import Text

    def on_event(e: dict) -> None:
        if as_json:
            sys.stdout.write(json.dumps(e, default=str) + "\n")
            sys.stdout.flush()
        elif console is not None:
            style = {"failed": "yellow", "paused": "yellow", "error": "red"}.get(e["event"])
            console.print(Text(describe(e), style=style or ""), highlight=False)

    info = engine.info
    if not info.get("model"):
        engine.check_memory(model, adapter)  # a first sync would load it: refuse before anything is recorded
    elif adapter is not None and str(Path(adapter).expanduser().resolve()) != info.get("adapter"):
        from ..errors import EngineError

        raise EngineError(f"index {engine.paths.root} uses adapter {info.get('adapter')}; watch does not switch "
                          f"adapters: run `llara-search ingest PATH --index {engine.paths.root} --adapter {adapter}` "
                          "(it re-encodes every chunk), then watch")
    watcher = Watcher(engine, paths, options, settings, model=model, adapter=adapter, chunk_tokens=chunk_tokens,
                      on_event=on_event)
    with stop_on_signals(watcher):
        watcher.run(exit_after=exit_after)
    return watcher


@contextmanager
def serve_watching(engine: Engine, paths: list[Path], settings: WatchSettings) -> Iterator[Watcher | None]:
    """`serve --watch`: the watcher in a thread of the server, on the server's own engine (one model in memory; its
    searcher follows each new generation through HEAD). A new index is caught up before the server opens."""
    if not paths:
        yield None
        return
    from ..errors import EngineError

    def on_event(e: dict) -> None:
        if e["event"] != "watching":
            print(describe(e), file=sys.stderr, flush=True)

    watcher = Watcher(engine, paths, settings=settings, on_event=on_event)
    watcher.claim()
    new = engine.store.current_generation() is None
    thread = watcher.start_thread()
    if new:
        watcher.ready.wait()
        if engine.store.current_generation() is None:
            watcher.stop()
            thread.join(timeout=10)
            err = (watcher.state.get("last_error") or {}).get("message", "the first sync did not finish")
            raise EngineError(f"cannot serve {engine.paths.root}: {err}")
    try:
        yield watcher
    finally:
        watcher.stop()
        thread.join(timeout=30)
