"""Command line: typer commands over `Engine`, rich output for people, `--json` for scripts.

One module per command family (ingest.py, query.py, eval.py, train.py, maintenance.py, serve.py), what they share
in common.py. Commands are registered here, in the order `--help` lists them; a new command is a function in its
family's module (decorated with `common.guard`) and one line below. Every failure a user can cause ends as one line
on stderr starting with "error:" and a non-zero exit code.
"""

from __future__ import annotations

import typer

from . import eval as eval_cmd
from . import ingest, maintenance, query, serve, train

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Semantic search over your documents with LLaRA dense retrieval.")


@app.callback()
def _root() -> None:
    """llara-search: ingest a folder, query it, adapt the encoder, serve top-k over HTTP."""
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)


app.command()(ingest.ingest)
app.command()(ingest.watch)
app.command()(query.query)
app.command("eval")(eval_cmd.eval_)
app.command()(train.train)
app.command()(train.finetune)
app.command()(train.reencode)
app.command()(maintenance.status)
app.command()(ingest.delete)
app.command()(maintenance.reindex)
app.command()(maintenance.compact)
app.command()(maintenance.bench)
app.command()(maintenance.doctor)
app.command()(serve.serve)
app.command()(serve.mcp)


def main() -> None:
    app()


__all__ = ["app", "main"]
