"""The search page in a real browser: time from the last keystroke to results painted (the Performance API's
`llara:painted` measure, written by the page after the frame that shows them), beside the same queries' `/search`
time asked from Python, on the JAX docs (keyword and hybrid, a tiny random LLaRA model).

The page waits DEBOUNCE (200 ms) after the last keystroke before it asks; "page after debounce" is the time from
that moment to the painted results, which is what the page adds to (and includes of) the server's time.

    python -m benchmarks.page [--queries 100] [--docs ../shared/data/docs-jax/docs] [--screenshots docs/]
                              [--work benchmarks/.work/page-jax]

Needs Debian's Chromium (/usr/bin/chromium) and `playwright` (dev extra).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import time
from pathlib import Path

import numpy as np

from .common import ROOT, SHARED, WORK, machine, record

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def build_index(docs: Path, out: Path) -> Path:
    from llara_search.engine import Engine
    from llara_search.testing import make_tiny_llara, shared_tokenizer_dir

    index, model = out / "index", out / "model"
    if not (model / "config.json").is_file():
        make_tiny_llara(model, tokenizer_dir=shared_tokenizer_dir())
    with Engine.open(index, create=True) as engine:  # incremental: a finished index costs a walk, a cut one resumes
        engine.ingest([docs], model=str(model))
    return index


def headings(docs: Path, n: int, seed: int = 0) -> list[str]:
    """Section headings of the docs as queries (what a person looking for a section would type)."""
    found = set()
    for f in sorted(docs.rglob("*.md")):
        for line in f.read_text(errors="replace").splitlines():
            m = re.match(r"#{1,4} +([A-Za-z][^`<>\[\]{}()]{5,60})$", line.strip())
            if m:
                found.add(m.group(1).strip().rstrip(":"))
    qs = sorted(found)
    random.Random(seed).shuffle(qs)
    return qs[:n]


def pct(xs: list[float]) -> dict:
    return {"p50_ms": round(float(np.percentile(xs, 50)), 1), "p95_ms": round(float(np.percentile(xs, 95)), 1)}


def python_times(base: str, queries: list[str], mode: str) -> list[float]:
    import httpx

    with httpx.Client(base_url=base, timeout=60) as c:
        c.get("/search", params={"q": queries[0], "mode": mode, "k": 10})  # warm
        out = []
        for q in queries:
            t = time.perf_counter()
            r = c.get("/search", params={"q": q, "mode": mode, "k": 10})
            out.append(1000 * (time.perf_counter() - t))
            r.raise_for_status()
    return out


def bare_fetch_times(page, queries: list[str], mode: str) -> list[float]:
    """The same requests sent by the browser's own `fetch` from the loaded page, with nothing typed or drawn: what
    the browser's network stack costs beside Python's client."""
    return page.evaluate("async ([qs, mode]) => { const out = []; for (const q of qs) {"
                         " const t = performance.now();"
                         " const r = await fetch('/search?' + new URLSearchParams({ q, mode, k: 10 }));"
                         " await r.json(); out.push(performance.now() - t); } return out; }", [queries, mode])


def browser_times(page, base: str, queries: list[str], mode: str) -> tuple[list[float], ...]:
    """Per query: last keystroke to painted, the page's pause's end to painted, its fetch of /search alone, and
    how many searches the page sent while the query was typed (1 unless a keystroke came over 200 ms late), the
    server's part of that fetch as the browser saw it (Resource Timing: request sent to first byte back), and the
    browser's bare fetch of the same requests."""
    page.goto(f"{base}/?mode={mode}")
    page.wait_for_selector("body[data-ready=true]")
    total, after, fetch, sent, server = [], [], [], [], []
    last_sent = 0
    for q in queries:
        n = page.evaluate("() => performance.getEntriesByName('llara:painted').length")
        page.fill("#q", "")
        page.type("#q", q, delay=25)  # a fast typist: every keystroke restarts the page's 200 ms wait
        page.wait_for_function("([n, q]) => { const e = performance.getEntriesByName('llara:painted');"
                               " return e.length > n && e[e.length - 1].detail.query === q; }", arg=[n, q.strip()],
                               timeout=60_000)
        e = page.evaluate("() => { const e = performance.getEntriesByName('llara:painted'); const m = e[e.length-1];"
                          " const r = performance.getEntriesByType('resource')"
                          ".filter((x) => x.name.includes('/search?')).at(-1);"
                          " return [m.duration, m.detail.fired, m.detail.answered, m.detail.sent,"
                          " r.responseStart - r.requestStart]; }")
        total.append(e[0])
        after.append(e[0] - e[1])
        fetch.append(e[2] - e[1])
        sent.append(e[3] - last_sent)
        last_sent = e[3]
        server.append(e[4])
    return total, after, fetch, sent, server, bare_fetch_times(page, queries, mode)


def _shrink(path: Path) -> None:
    """A palette PNG (a few hundred colours are all a text page has): a quarter of the bytes for the README."""
    try:
        from PIL import Image
    except ImportError:
        return
    Image.open(path).convert("RGB").quantize(colors=128, dither=Image.Dither.NONE).save(path, optimize=True)


def screenshots(browser, base: str, out: Path) -> list[str]:
    saved = []
    for scheme in ("light", "dark"):
        ctx = browser.new_context(viewport={"width": 1200, "height": 700}, color_scheme=scheme)
        page = ctx.new_page()
        page.goto(f"{base}/?mode=hybrid&q=jit+compile+static+arguments")
        page.wait_for_selector("#results [role=option]")
        page.click("#results [role=option]")
        page.wait_for_selector("#preview:not([hidden]) .chunk.current")
        page.wait_for_timeout(300)
        path = out / f"page-{scheme}.png"
        page.screenshot(path=str(path))
        _shrink(path)
        saved.append(str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path))
        ctx.close()
    return saved


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", default=str(SHARED / "data" / "docs-jax" / "docs"))
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--screenshots", default=None, help="folder for page-light.png and page-dark.png")
    ap.add_argument("--only-screenshots", action="store_true", help="take the screenshots, time nothing")
    ap.add_argument("--work", default=str(WORK / "page-jax"), help="where the index and the tiny model are kept")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from llara_search.engine import Engine
    from llara_search.serve import create_app

    from .common import start_server

    docs = Path(args.docs)
    if not docs.is_dir():
        raise SystemExit(f"no docs folder at {docs}; pass --docs")
    index = build_index(docs, Path(args.work))
    queries = headings(docs, args.queries)
    engine = Engine.open(index)
    base, server = start_server(create_app(engine))
    status = engine.status()
    name = "JAX docs" if docs.resolve() == (SHARED / "data" / "docs-jax" / "docs").resolve() else str(docs)
    results = {"data": f"{name} ({status['documents']} files, {status['chunks_total']} chunks), {len(queries)} section "
                       "headings typed",
               "machine": machine(), "command": "python -m benchmarks.page", "modes": {}}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()
            for mode in () if args.only_screenshots else ("bm25", "hybrid"):
                py = python_times(base, queries, mode)
                total, after, fetch, sent, server_ms, bare = browser_times(page, base, queries, mode)
                results["modes"][mode] = {
                    "python_search": pct(py), "page_key_to_paint": pct(total), "page_after_debounce": pct(after),
                    "page_fetch": pct(fetch), "page_render_paint": pct([a - f for a, f in zip(after, fetch)]),
                    "searches_sent_per_query": round(float(np.mean(sent)), 2), "browser_bare_fetch": pct(bare),
                    "page_server_part": pct(server_ms),
                    "page_own_work": pct([a - sv for a, sv in zip(after, server_ms)]),
                    "ratio_p50": round(float(np.percentile(after, 50) / np.percentile(py, 50)), 2)}
                print(mode, results["modes"][mode], flush=True)
            if args.screenshots:
                results["screenshots"] = screenshots(browser, base, Path(args.screenshots).resolve())
            browser.close()
    finally:
        server.should_exit = True
        engine.close()
    if args.only_screenshots:
        print(results.get("screenshots"))
        return
    results["load_average_1min"] = round(os.getloadavg()[0], 1)  # other jobs on the cores show in every figure
    record("page", results)
    print(results)


if __name__ == "__main__":
    main()
