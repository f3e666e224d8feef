"""`query`: search an index here, or ask the `serve` of the same index on this machine."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

import typer
from rich.text import Text

from .. import terminal as term

from .common import (DbUrlOpt, DtypeOpt, IndexOpt, JsonOpt, RerankBaseOpt, RerankDepthOpt, RerankNormalizeOpt,
                     RerankOpt, check_rerank_options, err, guard, open_engine, out, parse_dtype, print_json)


@guard
def query(
    text: str = typer.Argument(..., help="What you are looking for"),
    index: Optional[Path] = IndexOpt,
    db_url: Optional[str] = DbUrlOpt,
    k: int = typer.Option(10, "-k", "--k", help="Number of results (1-1000)"),
    mode: Optional[str] = typer.Option(None, "--mode", help="dense | bm25 | hybrid [dense; bm25 in a text-only "
                                       "index]"),
    where: Optional[str] = typer.Option(None, "--where", help="Only documents whose path matches this glob, "
                                        "e.g. 'api/*' or '*.pdf'"),
    dtype: str = DtypeOpt,
    rerank: Optional[str] = RerankOpt,
    rerank_depth: Optional[int] = RerankDepthOpt,
    rerank_base: Optional[str] = RerankBaseOpt,
    rerank_normalize: bool = RerankNormalizeOpt,
    token: Optional[str] = typer.Option(None, "--token", envvar="LLARA_SEARCH_TOKEN", show_default=False,
                                        help="Token of a running `serve` for this index [default: "
                                             "$LLARA_SEARCH_TOKEN]"),
    all_copies: bool = typer.Option(False, "--all-copies", help="Show every copy of a passage that other files "
                                    "repeat (the same manual as html, pdf, man page) instead of naming them under "
                                    "the best one (also_in)"),
    local: bool = typer.Option(False, "--local", help="Search in this process even when a `serve` for this index "
                               "runs on this machine"),
    as_json: bool = JsonOpt,
) -> None:
    """Search the index: the query is encoded with the EBAR prompt by the index's own model. When a `serve` for the
    same index runs on this machine, it is asked instead (no model to load; same results)."""
    import time

    check_rerank_options(rerank, rerank_depth=rerank_depth, rerank_base=rerank_base)
    dtype = parse_dtype(dtype)
    if mode is None:
        from ..modes import index_default_mode

        mode = index_default_mode(index, db_url)
    outcome, extra = None, {}
    # a reranker or a dtype is named by this command, not by the server: the search runs here (`serve --rerank`
    # re-ranks its own; the server's /info says its query dtype)
    forward = {"collapse": False} if all_copies else {}
    answered = None if local or rerank or dtype else _query_server(index, db_url, token, text, k=k, mode=mode,
                                                                   where=where, **forward)
    if answered is not None:
        results, took = answered
    else:
        engine = open_engine(index, db_url, dtype=dtype)
        reranker, depth = None, k
        if rerank:
            from ..rerank import DEFAULT_DEPTH

            depth = engine.rerank_depth(k, max(DEFAULT_DEPTH, k) if rerank_depth is None else rerank_depth)
            reranker = engine.reranker(rerank, base=rerank_base, normalize=rerank_normalize)  # loaded untimed
        if mode != "bm25":
            engine.encoder  # load the model outside the timed search  # noqa: B018
            extra["dtype"] = str(engine.encoder.dtype).removeprefix("torch.")
        t = time.perf_counter()
        results = engine.search(text, k=depth, mode=mode, where=where, collapse=not all_copies)
        outcome = engine.rerank([text], [results], k, reranker)[0] if reranker is not None else None
        if outcome is not None:
            results = outcome.results
        took = (time.perf_counter() - t) * 1000
    if as_json:
        print_json({"query": text, "mode": mode, "took_ms": round(took, 2), **extra,
                     **({"rerank": outcome.to_dict()} if outcome else {}),
                     "results": [_result_json(r) for r in results]})
        return
    if not results:
        out.print("no results")
        return
    terms = [w for w in re.findall(r"\w+", text.lower()) if len(w) > 2]
    for r in results:
        where_in = _span(r)
        head = Text(f"{r.rank:>3}. ", style="bold")
        head.append(f"{r.score:.4f}  ", style="cyan")
        if r.first_stage_rank is not None:
            head.append(f"(first stage #{r.first_stage_rank}, {r.first_stage_score:.4f})  ", style="dim")
        head.append(term.clean(_display_path(r.path) + where_in), style="green")
        out.print(head)
        if r.heading:
            out.print(term.text(f"     {r.heading}", "magenta"))
        if getattr(r, "also_in", None):  # near-copies of this passage in other files (other formats)
            out.print(term.text("     also in: " + ", ".join(_display_path(p) for p in r.also_in), "dim"))
        out.print(_snippet(r.text, terms))
    how = f"{mode}, re-ranked by {outcome.model} from {outcome.candidates}" if outcome else mode
    out.print(f"[dim]{len(results)} results in {took:.0f} ms ({how})[/]", highlight=False)


def _query_server(index, db_url, token, text: str, **search):
    """(results, took_ms) from the `serve` of this index on this machine, or None when there is none to ask (none
    running, a stale record, it went away, or it wants a token this process lacks), and the engine answers."""
    import time

    from ..client import (AuthenticationError, Client, LlaraSearchError, RequestError, ServerUnavailable,
                         check_search_args)
    from ..layout import default_index_dir
    from ..server_record import find_server

    check_search_args([text], search["k"], search["mode"])  # the engine's errors, before deciding who answers
    rec = find_server(index or default_index_dir(), db_url)
    if rec is None:
        return None
    if rec.auth and not token:
        err.print(f"[dim]note: the server at {term.markup(rec.url)} for this index wants a token (--token or "
                  "$LLARA_SEARCH_TOKEN); searching in this process instead[/]", highlight=False)
        return None
    t = time.perf_counter()
    try:
        with Client(rec.url, token) as client:
            results = client.search(text, **search)
    except ServerUnavailable:
        return None
    except AuthenticationError as exc:
        raise AuthenticationError(f"{exc}, or pass --local to search without it") from None
    except RequestError as exc:
        if exc.status != 422:
            raise  # the engine's own refusal, in its words: the same line the local search prints
        return None  # a request the server's limits refuse (e.g. a very long query): the engine decides
    except LlaraSearchError as exc:  # the server failed (5xx): answer as if there were none
        err.print(f"[dim]note: {term.markup(exc)}; searching in this process instead[/]", highlight=False)
        return None
    return results, (time.perf_counter() - t) * 1000


def _result_json(r) -> dict:
    d = r.to_dict()
    d.pop("doc_key", None)
    return d


def _display_path(path: str) -> str:
    try:
        rel = os.path.relpath(path)
        return rel if not rel.startswith("../../..") else path
    except ValueError:
        return path


def _span(r) -> str:
    if r.page is not None:
        return f" (page {r.page})"
    if r.start_line is not None:
        return f":{r.start_line}-{r.end_line}"
    return ""


def _snippet(text: str, terms: list[str], width: int = 300) -> Text:
    flat = " ".join(text.split())
    low = flat.lower()
    first = min([low.find(t) for t in terms if low.find(t) >= 0] or [0])
    start = max(0, first - width // 3)
    piece = ("…" if start else "") + flat[start:start + width] + ("…" if start + width < len(flat) else "")
    t = term.text("     " + piece)
    for word in terms:
        t.highlight_words([word], style="bold yellow", case_sensitive=False)
    return t
