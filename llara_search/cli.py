"""Command line: typer commands over `Engine`; every command has --json for scripts."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Semantic search over your documents with LLaRA.")


@app.callback()
def _root() -> None:
    """llara-search: ingest a folder, query it, adapt the encoder, serve top-k over HTTP."""


def main() -> None:
    app()
