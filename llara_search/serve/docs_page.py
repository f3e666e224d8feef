"""The API docs at `/docs` (and `/redoc`): one plain HTML page rendered here from the OpenAPI schema, and the
schema at `/openapi.json`, all behind the server's token.

Why not Swagger UI: FastAPI's page loads its script and styles from a CDN, so it is blank on a machine without
internet access (where a local search server often runs), and it tells every visitor's browser to fetch code from a
third party. This page has no script and loads nothing: every route with its parameters, body fields, limits and
answers, escaped from the schema, readable offline and printable. Clients that want a generated UI or SDK take
`/openapi.json`.
"""

from __future__ import annotations

import html
import json
from typing import Any, Callable

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

STYLE = """body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
code,pre{font:13px ui-monospace,monospace;background:#f4f4f4;padding:.1rem .3rem;border-radius:3px}
pre{padding:.6rem;overflow-x:auto}section{border-top:1px solid #ddd;margin-top:1.5rem}
.m{display:inline-block;min-width:4rem;font-weight:bold}.get{color:#0a6}.post{color:#06c}
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;
vertical-align:top}th{background:#f7f7f7}"""

SCHEMA_KEYS = ("minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "enum", "default")


def add_docs_routes(app: FastAPI, auth: Callable) -> None:
    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(auth)])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(auth)])
    async def docs() -> HTMLResponse:
        return HTMLResponse(render(app.openapi()), headers={"Content-Security-Policy": "default-src 'none'; "
                                                                                       "style-src 'unsafe-inline'"})

    @app.get("/redoc", include_in_schema=False, dependencies=[Depends(auth)])
    async def redoc() -> RedirectResponse:
        return RedirectResponse("docs")  # relative: right behind a path prefix too


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _resolve(schema: dict, spec: dict) -> dict:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/components/schemas/"):
        return spec.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
    return schema


def _type(schema: dict, spec: dict) -> str:
    schema = _resolve(schema, spec)
    if "anyOf" in schema:
        return " | ".join(_type(s, spec) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"array of {_type(schema.get('items', {}), spec)}"
    return str(schema.get("type") or schema.get("title") or "any")


def _constraints(schema: dict, spec: dict) -> str:
    schema = _resolve(schema, spec)
    parts = [f"{key}: {json.dumps(schema[key])}" for key in SCHEMA_KEYS if key in schema]
    for sub in schema.get("anyOf", []):
        parts += [f"{key}: {json.dumps(sub[key])}" for key in SCHEMA_KEYS if key in sub]
    return ", ".join(parts)


def _fields_table(rows: list[tuple[str, str, bool, str, str]]) -> str:
    if not rows:
        return ""
    out = ["<table><tr><th>name</th><th>type</th><th>required</th><th>limits, default</th><th>description</th></tr>"]
    for name, typ, required, limits, desc in rows:
        out.append(f"<tr><td><code>{_e(name)}</code></td><td>{_e(typ)}</td><td>{'yes' if required else ''}</td>"
                   f"<td>{_e(limits)}</td><td>{_e(desc)}</td></tr>")
    return "".join(out) + "</table>"


def render(spec: dict) -> str:
    """The whole page, every value from the schema escaped."""
    info = spec.get("info", {})
    out = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(info.get('title', 'API'))} API"
           f"</title><style>{STYLE}</style></head><body><h1>{_e(info.get('title', ''))} "
           f"<small>{_e(info.get('version', ''))}</small></h1>"]
    for para in str(info.get("description", "")).split("\n\n"):
        out.append(f"<p>{_e(para)}</p>")
    out.append("<p>Authentication: <code>Authorization: Bearer TOKEN</code> on every route but <code>/healthz</code> "
               "(when the server has a token). The machine-readable schema is at <a href=\"/openapi.json\">"
               "/openapi.json</a>.</p>")
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            out.append(f"<section><h2><span class='m {_e(method)}'>{_e(method.upper())}</span> <code>{_e(path)}"
                       f"</code></h2>")
            if op.get("summary"):
                out.append(f"<p><b>{_e(op['summary'])}</b></p>")
            if op.get("description"):
                out.append(f"<p>{_e(op['description'])}</p>")
            params = [(p.get("name", ""), f"{_type(p.get('schema', {}), spec)} ({p.get('in', '')})",
                       bool(p.get("required")), _constraints(p.get("schema", {}), spec),
                       p.get("description") or p.get("schema", {}).get("description", ""))
                      for p in op.get("parameters", [])]
            if params:
                out.append("<h3>Parameters</h3>" + _fields_table(params))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                schema = _resolve(body, spec)
                required = set(schema.get("required", []))
                rows = [(name, _type(sub, spec), name in required, _constraints(sub, spec),
                         _resolve(sub, spec).get("description", "")) for name, sub in
                        schema.get("properties", {}).items()]
                out.append("<h3>JSON body</h3>" + _fields_table(rows))
                for example in schema.get("examples", [])[:2]:
                    out.append(f"<pre>{_e(json.dumps(example, indent=1))}</pre>")
            codes = ", ".join(f"{code} {resp.get('description', '')}" for code, resp in op.get("responses", {}).items())
            if codes:
                out.append(f"<p>Answers: {_e(codes)}</p>")
            out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)
