"""The search page for people (`GET /` of `serve`): its JSON routes over real HTTP, and the page itself in a real
Chromium (Debian's package, driven by Playwright) against a real server of an index built here from real files."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from helpers import make_corpus, serve_in_thread
from llara_search.cli import app
from llara_search.engine import Engine

runner = CliRunner()
TOKEN = "s3cret-page"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
XSS = """# <script>window.__pwned = 1; alert('title')</script> Payload notes

Llama payload <img src=x onerror="window.__pwned = 2; alert('img')"> and <svg onload="alert('svg')"></svg>.

A [link](javascript:alert('link')) and <a href="javascript:alert('a')">anchor</a>, entities &lt;b&gt; &amp;amp;
and "quotes" 'single' `</textarea><script>alert('x')</script>`.
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model):
    root = tmp_path_factory.mktemp("page")
    corpus = make_corpus(root / "docs")
    (corpus / "sub" / "packing.md").write_text("# Packing list\n\nA llama packing list for long treks.\n\n"
                                               "## Saddles\n\nEvery llama needs a saddle that fits.\n")
    (corpus / "facts").mkdir()
    for i in range(12):
        (corpus / "facts" / f"fact{i:02d}.md").write_text(f"# Fact {i}\n\nLlama fact number {i}: herds of {i + 3}.\n")
    manual = ("Trail etiquette for alpacas and llamas: keep a steady pace, never tie a llama to a moving cart, "
              "and let the lead animal choose the crossing over any stream or fallen tree on the route.")
    (corpus / "etiquette.md").write_text(f"# Etiquette\n\n{manual}\n")
    (corpus / "etiquette.txt").write_text(f"Etiquette\n\n{manual}\n")  # the same text in another format
    (corpus / "xss.txt").write_text(XSS)
    (corpus / "empty.html").write_text("<html><body><script>var only = 'markup';</script></body></html>")
    (corpus / "broken.md").symlink_to(corpus / "nowhere.md")
    (corpus / "bad.pdf").write_bytes(b"%PDF-1.4\nnot really a PDF")
    index = root / "idx"
    r = runner.invoke(app, ["ingest", str(corpus), "--index", str(index), "--model", str(tiny_model), "--json"])
    assert r.exit_code == 3, r.output  # 3: indexed, but a file failed (bad.pdf, on purpose)
    return corpus, index


class SlowQueries:
    """ASGI wrapper that holds a search for `zzslow...` for a while: a stale answer arriving after a newer one."""

    def __init__(self, app_, delay: float = 1.2):
        self.app, self.delay = app_, delay

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and b"q=zzslow" in scope.get("query_string", b""):
            await asyncio.sleep(self.delay)
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def server(built):
    from llara_search.serve import create_app

    _, index = built
    engine = Engine.open(index)
    app_ = create_app(engine, token=TOKEN, editor_url="vscode://file/{path}:{line}")
    base, srv = serve_in_thread(SlowQueries(app_))
    yield base
    srv.should_exit = True
    engine.close()


@pytest.fixture(scope="module")
def open_server(built, tmp_path_factory):
    """The same index served without a token, with a (tiny) reranker used on request."""
    from llara_search.rerank import RerankPolicy
    from llara_search.serve import create_app
    from llara_search.testing import make_tiny_cross_encoder

    _, index = built
    engine = Engine.open(index)
    reranker = engine.reranker(str(make_tiny_cross_encoder(tmp_path_factory.mktemp("ce"))))
    policy = RerankPolicy(reranker, by_default=False, depth=20, max_depth=40, budget_ms=None)
    base, srv = serve_in_thread(create_app(engine, rerank=policy))
    yield base
    srv.should_exit = True
    engine.close()


COOKIE = {"llara_token": TOKEN}


# ------------------------------------------------------------------------------------------------ over HTTP
def test_every_page_and_route_refuses_without_the_token(server):
    routes = ["/", "/coverage", "/ui/config", "/ui/static/app.js", "/ui/static/common.js", "/facets",
              "/chunks/1", "/files", "/search?q=llama", "/info"]
    for path in routes:
        for kw in ({}, {"cookies": {"llara_token": "wrong"}}, {"headers": {"Authorization": "Bearer wrong"}}):
            r = httpx.get(server + path, **kw)
            assert r.status_code == 401, (path, kw, r.status_code)
            assert "llara" not in r.text.lower() or "<form" in r.text, path  # nothing but the sign-in form
    for path in routes:  # the cookie the sign-in sets, or the API's bearer header
        assert httpx.get(server + path, cookies=COOKIE).status_code == 200, path
        assert httpx.get(server + path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
    # the sign-in form's stylesheet is the package's own file, the same in every install
    assert httpx.get(server + "/ui/static/style.css").status_code == 200
    assert httpx.get(server + "/ui/static/signin.html").status_code == 404
    assert httpx.get(server + "/ui/static/..%2Fpage.py", cookies=COOKIE).status_code == 404


def test_sign_in_sets_an_http_only_strict_cookie(server):
    wrong = httpx.post(server + "/ui/session", data={"token": "nope"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers and "not this server" in wrong.text
    r = httpx.post(server + "/ui/session", data={"token": TOKEN, "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/"
    back = httpx.get(server + "/coverage")  # the form brings a person back to the page they asked for
    assert back.status_code == 401 and 'name="next" value="/coverage"' in back.text
    r2 = httpx.post(server + "/ui/session", data={"token": TOKEN, "next": "/coverage"})
    assert r2.status_code == 303 and r2.headers["location"] == "/coverage"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"llara_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert TOKEN not in r.headers["location"]
    out = httpx.post(server + "/ui/signout", cookies=COOKIE)
    assert out.status_code == 303 and 'llara_token=""' in out.headers["set-cookie"]


def test_pages_forbid_inline_script(server):
    for path in ("/", "/coverage"):
        r = httpx.get(server + path, cookies=COOKIE)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text), "inline script in " + path
        assert "http://" not in r.text and "https://" not in r.text  # nothing fetched from outside the server


def test_facets_count_what_is_indexed(server, built):
    corpus, _ = built
    f = httpx.get(server + "/facets", cookies=COOKIE).json()
    assert f["root"] == str(corpus)
    assert {d["name"]: d["count"] for d in f["folders"]} == {"facts": 12, "sub": 2}
    types = {t["ext"]: t["count"] for t in f["types"]}
    assert types["md"] == 16 and types["pdf"] == 1 and types["rst"] == 1 and "png" not in types
    sub = httpx.get(server + "/facets", params={"folder": "sub"}, cookies=COOKIE).json()
    assert sub["documents"] == 2 and [d["folder"] for d in sub["folders"]] == ["sub/deeper"]
    # a facet's glob is a `where` that selects exactly what it counted
    r = httpx.get(server + "/search", params={"q": "llama", "mode": "bm25", "k": 50,
                                             "where": sub["folder_glob"] + "*"}, cookies=COOKIE).json()
    assert r["results"] and all(h["path"].startswith(str(corpus / "sub") + "/") for h in r["results"])
    pdf = next(t for t in f["types"] if t["ext"] == "pdf")
    r = httpx.get(server + "/search", params={"q": "page", "mode": "bm25", "k": 50, "where": pdf["glob"]},
                  cookies=COOKIE).json()
    assert r["results"] and all(h["path"].endswith(".pdf") for h in r["results"])
    # a folder that is not indexed is only a string that matches nothing: nothing is read from disk
    assert httpx.get(server + "/facets", params={"folder": "../../etc"}, cookies=COOKIE).json()["documents"] == 0


def test_chunk_context_by_id_only(server):
    hits = httpx.get(server + "/search", params={"q": "llama", "mode": "bm25", "k": 20}, cookies=COOKIE).json()
    hit = next(h for h in hits["results"] if h["path"].endswith("handbook.md"))
    ctx = httpx.get(server + f"/chunks/{hit['chunk_id']}", params={"before": 5, "after": 5}, cookies=COOKIE).json()
    assert ctx["document"]["path"] == hit["path"]
    ids = [c["chunk_id"] for c in ctx["chunks"]]
    assert hit["chunk_id"] in ids and len(ids) == ctx["document"]["chunks"]  # the whole (short) document
    assert [c["ordinal"] for c in ctx["chunks"]] == sorted(c["ordinal"] for c in ctx["chunks"])
    one = httpx.get(server + f"/chunks/{hit['chunk_id']}", params={"before": 0, "after": 0}, cookies=COOKIE).json()
    assert [c["chunk_id"] for c in one["chunks"]] == [hit["chunk_id"]]
    assert one["more_before"] or one["more_after"]
    assert httpx.get(server + "/chunks/99999999", cookies=COOKIE).status_code == 404
    assert httpx.get(server + "/chunks/etc%2Fpasswd", cookies=COOKIE).status_code in (404, 422)
    assert httpx.get(server + "/chunks/passwd", cookies=COOKIE).status_code == 422
    assert httpx.get(server + "/chunks/1", params={"before": 10_000}, cookies=COOKIE).status_code == 422


def test_no_route_takes_a_path(server):
    """Every route's parameters, from the OpenAPI document: none is a file path, and the page's routes read ids."""
    spec = httpx.get(server + "/openapi.json", cookies=COOKIE).json()
    for path, ops in spec["paths"].items():
        assert "{path" not in path and "{file" not in path, path
        for op in ops.values():
            for p in op.get("parameters", []):
                assert p["name"] not in ("path", "file", "filename"), (path, p["name"])
    assert {"/facets", "/chunks/{chunk_id}", "/files", "/ui/config"} <= set(spec["paths"])


def test_files_lists_indexed_skipped_and_failed(server, built):
    corpus, _ = built
    body = httpx.get(server + "/files", cookies=COOKIE).json()
    by_path = {f["path"]: f for f in body["files"]}
    assert by_path[str(corpus / "bad.pdf")]["state"] == "failed"
    assert "corrupt PDF" in by_path[str(corpus / "bad.pdf")]["reason"]
    assert by_path[str(corpus / "broken.md")]["state"] == "skipped"
    assert "symlink" in by_path[str(corpus / "broken.md")]["reason"]
    assert by_path[str(corpus / "logo.png")]["state"] == "skipped"
    assert by_path[str(corpus / "empty.html")]["state"] == "skipped"
    assert "no text" in by_path[str(corpus / "empty.html")]["reason"]
    assert by_path[str(corpus / "handbook.md")]["state"] == "indexed"
    assert by_path[str(corpus / "handbook.md")]["chunks"] >= 3
    assert body["files"][0]["state"] == "failed"  # problems first
    assert body["last_sync"]["status"] == "done" and body["last_sync"]["finished_at"].endswith("+00:00")
    only = httpx.get(server + "/files", params={"state": "skipped"}, cookies=COOKIE).json()
    assert only["files"] and {f["state"] for f in only["files"]} == {"skipped"}


def test_editor_url_template_is_checked(built):
    from llara_search.errors import EngineError
    from llara_search.serve.page import check_editor_url

    assert check_editor_url("vscode://file/{path}:{line}") == "vscode://file/{path}:{line}"
    for bad in ("javascript:alert(1)//{path}", " JavaScript :{path}", "data:text/html,{path}", "{path}",
                "vscode://file/"):
        with pytest.raises(EngineError):
            check_editor_url(bad)
    _, index = built
    r = runner.invoke(app, ["serve", "--index", str(index), "--editor-url", "javascript:{path}"])
    assert r.exit_code != 0 and "--editor-url" in r.output and "Traceback" not in r.output


@pytest.mark.slow
def test_serve_open_opens_the_page(built, tmp_path):
    """`serve --open` hands the page's address to the system's browser ($BROWSER here: a script noting it)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    _, index = built
    opened = tmp_path / "opened.txt"
    note = tmp_path / "browser.py"
    note.write_text(f"import sys; open({str(opened)!r}, 'w').write(sys.argv[1])\n")
    env = {**os.environ, "BROWSER": f"{sys.executable} {note} %s", "LLARA_SEARCH_TOKEN": ""}
    proc = subprocess.Popen([sys.executable, "-m", "llara_search", "serve", "--index", str(index), "--port", "0",
                             "--open", "--editor-url", "vscode://file/{path}:{line}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not opened.exists() or not opened.read_text():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "the browser was never asked to open the page"
            time.sleep(0.1)
        url = opened.read_text()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url), url
        for _ in range(100):
            try:
                r = httpx.get(url)
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert r.status_code == 200 and 'id="q"' in r.text
        assert httpx.get(url + "ui/config").json()["editor_url"] == "vscode://file/{path}:{line}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_assets_ship_in_the_wheel(tmp_path):
    """The page is package data: a wheel built from this tree carries every file the page serves."""
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)], cwd=root,
                       capture_output=True, text=True)
    if r.returncode != 0 and "No module named hatchling" in r.stderr:
        pytest.skip("hatchling is not installed")
    assert r.returncode == 0, r.stderr
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("index.html", "signin.html", "coverage.html", "app.js", "common.js", "coverage.js", "style.css"):
        assert f"llara_search/serve/page_static/{f}" in names, f


# ------------------------------------------------------------------------------------------------ in a browser
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Watched:
    """A page with its dialogs and console errors recorded: a payload that ran would show up here."""

    def __init__(self, browser, **ctx):
        self.context = browser.new_context(**ctx)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.set_default_timeout(10_000)

    def close(self):
        self.context.close()


@pytest.fixture
def signed_in(browser, server):
    w = Watched(browser)
    w.context.add_cookies([{"name": "llara_token", "value": TOKEN, "url": server, "httpOnly": True,
                            "sameSite": "Strict"}])
    yield w
    w.close()
    assert not w.dialogs, w.dialogs
    assert not [e for e in w.errors if "favicon" not in e], w.errors


def ready(page, url):
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")


PAINTED = "() => performance.getEntriesByName('llara:painted').length"


def wait_painted(page, after: int, query: str | None = None):
    """Until the page has painted results (its `llara:painted` measure) after `after` earlier paints, for
    `query` when given: a status line from an earlier answer does not count."""
    page.wait_for_function("([n, q]) => { const e = performance.getEntriesByName('llara:painted');"
                           " return e.length > n && (q === null || e[e.length - 1].detail.query === q); }",
                           arg=[after, query])


def type_query(page, text):
    n = page.evaluate(PAINTED)
    page.fill("#q", "")
    page.type("#q", text, delay=15)
    wait_painted(page, n, text)


def test_sign_in_on_the_page(browser, server):
    w = Watched(browser)
    page = w.page
    r = page.goto(server + "/")
    assert r.status == 401
    assert page.is_visible("input#token") and not page.query_selector("#q")
    page.fill("#token", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector("p.error")
    assert not page.query_selector("#q")
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-ready=true]")
    assert TOKEN not in page.url
    assert page.evaluate("document.cookie") == ""  # HttpOnly: no script on the page can read it
    assert page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)") == "{}{}"
    [cookie] = w.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] == TOKEN
    type_query(page, "llama")
    page.click("#signout button")
    page.wait_for_selector("input#token")
    assert w.context.cookies() == []
    w.close()
    assert not w.dialogs


def test_no_token_server_needs_no_sign_in_and_enter_re_ranks(browser, open_server):
    w = Watched(browser)
    page = w.page
    ready(page, open_server + "/?mode=bm25")
    assert page.is_hidden("#signout")
    type_query(page, "llama trail")
    assert "re-ranked" not in page.text_content("#status")  # typing asks for the first stage only: fast
    assert "first stage rank" not in page.get_attribute("#results [role=option]", "title")
    n = page.evaluate(PAINTED)
    page.keyboard.press("Enter")
    wait_painted(page, n, "llama trail")
    assert "re-ranked by" in page.text_content("#status")
    assert "first stage rank" in page.get_attribute("#results [role=option]", "title")
    w.close()
    assert not w.dialogs and not w.errors


def test_type_see_highlights_and_switch_modes(signed_in, server):
    page = signed_in.page
    ready(page, server + "/?mode=bm25")
    type_query(page, "llama packing")
    marks = page.eval_on_selector_all("#results mark", "ms => ms.map(m => m.textContent.toLowerCase())")
    assert "llama" in marks and any(m.startswith("pack") for m in marks)
    files = page.eval_on_selector_all("#results .file .name", "ns => ns.map(n => n.textContent)")
    assert "handbook.md" in files and len(files) == len(set(files))  # one group per file
    first = page.query_selector("#results [role=option]")
    assert re.match(r"score -?\d+\.\d+ · rank 1", first.get_attribute("title"))
    assert re.search(r"\d+ passages? in \d+ files?", page.text_content("#status"))
    for label, mode in (("semantic", "dense"), ("hybrid", "hybrid"), ("keyword", "bm25")):
        before = page.evaluate(PAINTED)
        page.click(f"label:has-text('{label}')")
        wait_painted(page, before)
        assert f"mode={mode}" in page.url
        assert page.eval_on_selector_all("#results [role=option]", "os => os.length") > 0
    # near-copies in other formats are named, not repeated
    type_query(page, "trail etiquette alpacas")
    assert page.eval_on_selector_all("#results .also", "a => a.map(x => x.textContent)") in (
        ["also in: etiquette.txt"], ["also in: etiquette.md"])
    # "more" asks for the next page
    type_query(page, "llama fact")
    assert page.eval_on_selector_all("#results [role=option]", "os => os.length") == 10
    page.click("#more")
    page.wait_for_function("() => document.querySelectorAll('#results [role=option]').length > 10")
    # the URL is the search: opening it again shows the same
    page.goto(page.url)
    page.wait_for_selector("#results [role=option]")
    assert page.input_value("#q") == "llama fact" and page.is_checked("#mode-bm25")


def test_a_slow_answer_never_overwrites_a_newer_one(signed_in, server):
    page = signed_in.page
    ready(page, server + "/?mode=bm25")
    page.type("#q", "zzslow", delay=10)
    page.wait_for_timeout(350)  # its request is on its way (held 1.2 s by the server)
    page.fill("#q", "saddle")
    page.dispatch_event("#q", "input")
    wait_painted(page, 0, "saddle")
    page.wait_for_timeout(1300)  # past the moment the slow answer would have come
    assert page.text_content("#status").startswith(("1 passage", "2 passages", "3 passages"))
    assert page.eval_on_selector_all("#results mark", "ms => ms.map(m => m.textContent.toLowerCase())") \
        and "saddle" in page.url


def test_filter_by_folder_type_and_glob(signed_in, server, built):
    corpus, _ = built
    page = signed_in.page
    ready(page, server + "/?mode=bm25")
    type_query(page, "llama")
    paths = lambda: page.eval_on_selector_all("#results .file .name", "fs => fs.map(f => f.title)")  # noqa: E731
    assert any("handbook.md" in p for p in paths())
    n = page.evaluate(PAINTED)
    page.click("#folder-chips button:has-text('sub/')")
    page.wait_for_function("() => new URLSearchParams(location.search).get('folder') === 'sub'")
    wait_painted(page, n)
    assert page.input_value("#where").endswith("/sub/*")
    assert paths() and all("/sub" in p for p in paths())
    n = page.evaluate(PAINTED)
    page.click("#type-chips button:has-text('.md')")
    page.wait_for_function("() => new URLSearchParams(location.search).get('type') === 'md'")
    wait_painted(page, n)
    assert page.input_value("#where").endswith("/sub/*.[mM][dD]")
    assert paths() and all(".md" in p and "/sub" in p for p in paths())
    page.fill("#where", "*.rst")  # a free glob for the rest
    page.dispatch_event("#where", "input")
    type_query(page, "port server")
    assert paths() and all("config.rst" in p for p in paths())
    assert page.eval_on_selector_all("#folder-chips [aria-pressed=true]", "cs => cs.length") == 0


def test_preview_shows_the_passage_in_place_and_moves_to_the_next_hit(signed_in, server):
    page = signed_in.page
    ready(page, server + "/?mode=bm25")
    type_query(page, "llama")
    handbook = page.query_selector("#results .group:has(.name:text-is('handbook.md'))")
    n_hits = len(handbook.query_selector_all("[role=option]"))
    assert n_hits >= 2
    handbook.query_selector("[role=option]").click()
    page.wait_for_selector("#preview:not([hidden]) .chunk.current")
    assert page.evaluate("window.scrollY") == 0  # the preview scrolls itself, not the page
    assert page.eval_on_selector_all("#preview .chunk", "cs => cs.length") >= 2  # its neighbours too
    assert page.query_selector("#preview .chunk.current mark")
    assert page.text_content("#preview-title") == "Llama Handbook"
    assert page.get_attribute("#open-file", "href").startswith("file:///")
    assert page.get_attribute("#open-editor", "href").startswith("vscode://file/")
    pos = page.text_content("#hit-pos")
    first = page.get_attribute("#preview .chunk.current", "data-chunk")
    if page.is_disabled("#next-hit"):
        page.click("#prev-hit")
    else:
        page.click("#next-hit")
    page.wait_for_function(f"() => document.querySelector('#preview .chunk.current').dataset.chunk !== '{first}'")
    assert page.text_content("#hit-pos") != pos


def test_keyboard_only(signed_in, server):
    page = signed_in.page
    ready(page, server + "/?mode=bm25")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("llama", delay=15)
    wait_painted(page, 0, "llama")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    active = page.get_attribute("#q", "aria-activedescendant")
    assert active and page.get_attribute(f"#{active}", "aria-selected") == "true"
    assert page.eval_on_selector_all("[role=option][aria-selected=true]", "os => os.length") == 1
    page.keyboard.press("ArrowUp")
    assert page.get_attribute("#q", "aria-activedescendant") != active
    page.keyboard.press("Enter")
    page.wait_for_selector("#preview:not([hidden]) .chunk.current")
    assert page.evaluate("document.activeElement.id") == "preview-scroll"  # the arrows now scroll the document
    first = page.get_attribute("#preview .chunk.current", "data-chunk")
    page.keyboard.press("n" if page.is_enabled("#next-hit") else "p")
    page.wait_for_function("(c) => document.querySelector('#preview .chunk.current').dataset.chunk !== c", arg=first)
    page.keyboard.press("Escape")
    page.wait_for_selector("#preview", state="hidden")
    assert page.evaluate("document.activeElement.id") == "q"
    # every control has an accessible name
    unnamed = page.evaluate("""() => [...document.querySelectorAll('button, input, a, [role=option]')]
        .filter(e => e.offsetParent !== null || e.type === 'radio')
        .filter(e => !(e.getAttribute('aria-label') || e.textContent.trim() || e.labels?.length || e.title))
        .map(e => e.outerHTML.slice(0, 80))""")
    assert unnamed == []


def test_phone_width_and_dark_theme(browser, server):
    w = Watched(browser, viewport={"width": 390, "height": 800}, color_scheme="dark")
    w.context.add_cookies([{"name": "llara_token", "value": TOKEN, "url": server}])
    page = w.page
    ready(page, server + "/?mode=bm25")
    type_query(page, "llama")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(20, 23, 29)"
    page.click("#results [role=option]")
    page.wait_for_selector("#preview:not([hidden]) .chunk.current")
    box = page.query_selector("#preview").bounding_box()
    assert box["width"] >= 380 and box["x"] == 0  # the preview takes the screen
    w.close()
    assert not w.errors and not w.dialogs


def test_coverage_page_shows_failed_and_skipped_files(signed_in, server, built):
    corpus, _ = built
    page = signed_in.page
    ready(page, server + "/coverage")
    assert "Last synced" in page.text_content("#sync")
    rows = page.eval_on_selector_all("#files tr", "rs => rs.map(r => [...r.cells].map(c => c.textContent))")
    by_path = {r[1]: r for r in rows}
    assert by_path[str(corpus / "bad.pdf")][0] == "failed"
    assert "corrupt PDF" in by_path[str(corpus / "bad.pdf")][2] and "(corrupt)" in by_path[str(corpus / "bad.pdf")][2]
    assert by_path[str(corpus / "broken.md")][0] == "skipped"
    assert "symlink" in by_path[str(corpus / "broken.md")][2]
    assert by_path[str(corpus / "empty.html")][0] == "skipped"
    assert "no text" in by_path[str(corpus / "empty.html")][2]
    handbook = by_path[str(corpus / "handbook.md")]
    assert handbook[0] == "indexed" and "chunks" in handbook[2]
    page.click(".coverage-controls .chip[data-state=failed]")
    page.wait_for_function("() => [...document.querySelectorAll('#files tr')]"
                           ".every(r => r.classList.contains('failed'))")
    page.fill("#filter", "nothing-like-this")
    assert page.eval_on_selector_all("#files tr", "rs => rs.length") == 0


def test_document_text_is_data_not_markup(signed_in, server):
    page = signed_in.page
    ready(page, server + "/?mode=bm25")
    type_query(page, "payload")
    page.click("#results .group:has(.name:text-is('xss.txt')) [role=option]")
    page.wait_for_selector("#preview:not([hidden]) .chunk.current")
    page.wait_for_timeout(300)
    shown = page.text_content("#preview-body") + page.text_content("#results")
    assert "onerror=" in shown and "javascript:alert('link')" in shown and "&lt;b&gt;" in shown
    # nothing from the file became an element, a link or a handler, and nothing ran
    assert page.evaluate("document.querySelectorAll('#results img, #results svg, #results script, "
                         "#preview img, #preview svg, #preview script, #preview-body a, #results a').length") == 0
    assert page.evaluate("window.__pwned") is None
    assert json.dumps(page.evaluate("[...document.querySelectorAll('[onerror],[onload]')].length")) == "0"
    # (the fixture asserts that no dialog opened and no console error was logged)
