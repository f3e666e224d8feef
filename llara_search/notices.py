"""Notices: one-line announcements of what is about to happen (a download, a long encode) while it still can be
stopped cheaply.

Library code calls `emit(event, message, **fields)` from wherever it knows something (the hub download in
encoder/checkpoint.py, the first encoded batch in ingest/pipeline.py); who shows it is the caller's choice: the CLI
prints the message on stderr, or a JSON line with the fields under `--json`; library users see it through
`logging` (logger `llara_search.notices`) unless they install a handler with `listening`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterator

Handler = Callable[[str, str, dict], None]

log = logging.getLogger(__name__)
_handlers: list[Handler] = []


def emit(event: str, message: str, **fields) -> None:
    """Tell whoever listens that `event` is about to happen (`message`: one line for people; `fields`: the same
    facts for scripts)."""
    if not _handlers:
        log.info(message)
        return
    _handlers[-1](event, message, fields)


@contextlib.contextmanager
def listening(handler: Handler) -> Iterator[None]:
    """Send notices to `handler` while the block runs (the innermost listener wins)."""
    _handlers.append(handler)
    try:
        yield
    finally:
        _handlers.remove(handler)


__all__ = ["emit", "listening"]
