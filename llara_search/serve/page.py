"""The search page for people (`GET /`): static HTML, CSS and JavaScript from the package, and the JSON routes it
needs beside the API's own `/search` (facets, a chunk in its document, file coverage).

Security, because the page shows private files: the server's token is asked for once and kept in an HttpOnly,
SameSite=Strict cookie (never in a URL or in localStorage); every page and route refuses without it, save the
sign-in form and its stylesheet; pages carry a Content-Security-Policy that allows no inline script, and the
scripts put document text into the page as text nodes only. The routes read the index by id: none takes a
filesystem path.
"""

from __future__ import annotations

import asyncio
import hmac
from functools import lru_cache
from importlib import resources
from typing import Callable
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from ..browse import MAX_CONTEXT, MAX_FILES, Browser, NotInIndex
from ..engine import Engine
from ..errors import EngineError
from ..identity import TEXT_ONLY
from .auth import COOKIE, token_ok

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}
PAGES = ("/", "/coverage")  # where a sign-in may lead back to
PUBLIC_ASSETS = frozenset({"style.css"})  # what the sign-in form needs: the package's own stylesheet
SIGNIN_FAILED = '<p class="error" role="alert">That token is not this server\'s. Try again.</p>'
BAD_EDITOR_SCHEMES = ("javascript:", "data:", "vbscript:", "blob:")
FOLDER_DOC = "a folder relative to the indexed root (as `folders[].folder` gives it): count its sub-folders"
MAX_FORM_BYTES = 8192


@lru_cache(maxsize=1)
def assets() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the package: the only files these routes ever serve."""
    folder = resources.files("llara_search.serve") / "page_static"
    out = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            out[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return out


def check_editor_url(template: str | None) -> str | None:
    """An editor link template such as `vscode://file/{path}:{line}`; `{path}` is required, and a scheme that
    would run code in the page is refused."""
    if template is None:
        return None
    t = template.strip()
    if "{path}" not in t:
        raise EngineError(f"--editor-url {template!r} has no {{path}}; e.g. 'vscode://file/{{path}}:{{line}}'")
    if t.lower().replace(" ", "").startswith(BAD_EDITOR_SCHEMES) or ":" not in t.split("{path}")[0]:
        raise EngineError(f"--editor-url {template!r} must start with an editor's URL scheme, e.g. "
                          "'vscode://file/{path}:{line}' or 'idea://open?file={path}&line={line}'")
    return t


async def _form(request: Request) -> dict[str, str]:
    """The sign-in form's fields (`application/x-www-form-urlencoded`), read here rather than through FastAPI's
    `Form`, which would need python-multipart for two short fields."""
    body = b""
    async for part in request.stream():
        body += part
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, f"sign-in form over {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
    except ValueError:
        raise HTTPException(400, "the sign-in form has more fields than it should") from None
    return {k: v[0] for k, v in fields.items() if v}


def _secure(response: Response, *, cache: bool = False) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-cache" if cache else "no-store"
    return response


def page_router(engine: Engine, auth: Callable, token: str | None, editor_url: str | None = None,
                rerank: Callable[[], object] = lambda: None) -> APIRouter:
    """`auth`: the API's token dependency (serve/auth.py: Bearer header or the sign-in cookie), for the JSON
    routes; the pages answer the sign-in form instead of a bare 401. `rerank`: the server's current rerank policy
    (read per request, as the API does)."""
    router = APIRouter()
    browser = Browser(engine.store)

    def signed_in(request: Request) -> bool:
        return token_ok(token, request.headers.get("authorization"), request.cookies.get(COOKIE))

    def html(name: str, status: int = 200, **marks: str) -> Response:
        """A page file; `marks` fill its `<!--name-->` places with our own fixed strings (never request data)."""
        body, ctype = assets()[name]
        for mark, text in marks.items():
            body = body.replace(f"<!--{mark}-->".encode(), text.encode())
        return _secure(Response(body, status_code=status, media_type=ctype))

    def signin(status: int = 401, error: str = "", back_to: str = "/") -> Response:
        r = html("signin.html", status, error=error, next=back_to.lstrip("/") if back_to in PAGES else "")
        r.headers["WWW-Authenticate"] = "Bearer"
        return r

    @router.get("/", include_in_schema=False)
    async def page(request: Request):
        return html("index.html") if signed_in(request) else signin()

    @router.get("/coverage", include_in_schema=False)
    async def coverage_page(request: Request):
        return html("coverage.html") if signed_in(request) else signin(back_to="/coverage")

    @router.get("/ui/static/{name}", include_in_schema=False)
    async def static(name: str, request: Request):
        files = assets()
        if name not in files or name.endswith(".html"):
            raise HTTPException(404, "no such file")
        if name not in PUBLIC_ASSETS and not signed_in(request):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})
        body, ctype = files[name]
        return _secure(Response(body, media_type=ctype), cache=True)

    @router.post("/ui/session", include_in_schema=False)
    async def sign_in(request: Request):
        form = await _form(request)
        token_given, target = form.get("token", ""), form.get("next", "/")
        target = target if target in PAGES else "/"
        if token is None:
            return RedirectResponse(target, status_code=303)
        if not hmac.compare_digest(token_given.encode(), token.encode()):
            await asyncio.sleep(0.25)  # a guess costs time
            return signin(401, SIGNIN_FAILED, target)
        r = RedirectResponse(target, status_code=303)
        r.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                     secure=request.url.scheme == "https")
        return _secure(r)

    @router.post("/ui/signout", include_in_schema=False)
    async def sign_out():
        r = RedirectResponse("/", status_code=303)
        r.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return _secure(r)

    @router.get("/ui/config", tags=["page"], dependencies=[Depends(auth)],
                summary="What the search page needs to know about this server")
    async def config():
        info = engine.info
        policy = rerank()
        text_only = info.get("model") in (TEXT_ONLY, None)
        return {"index": engine.paths.root.name, "auth": token is not None, "editor_url": editor_url,
                "modes": ["bm25"] if text_only else ["bm25", "dense", "hybrid"],
                "rerank": policy is not None, "rerank_by_default": bool(policy and policy.by_default)}

    @router.get("/facets", tags=["browse"], dependencies=[Depends(auth)],
                summary="Documents per folder and per file type, each with the `where` glob that selects it")
    async def facets(folder: str | None = Query(None, max_length=1024, description=FOLDER_DOC)):
        return await asyncio.to_thread(browser.facets, folder)

    @router.get("/chunks/{chunk_id}", tags=["browse"], dependencies=[Depends(auth)],
                summary="A result's chunk in its document: its neighbouring chunks, read from the index by id")
    async def chunk_context(chunk_id: int,
                            before: int = Query(3, ge=0, le=MAX_CONTEXT),
                            after: int = Query(3, ge=0, le=MAX_CONTEXT)):
        try:
            return await asyncio.to_thread(browser.context, chunk_id, before, after)
        except NotInIndex as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)

    @router.get("/files", tags=["browse"], dependencies=[Depends(auth)],
                summary="Every file the last ingest saw: indexed (chunks), skipped (why) or failed (reason)")
    async def files(state: str | None = Query(None, pattern="^(indexed|skipped|failed)$"),
                    offset: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=MAX_FILES)):
        return await asyncio.to_thread(browser.coverage, state, offset, limit)

    return router
