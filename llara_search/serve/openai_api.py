"""OpenAI-compatible routes: `POST /v1/embeddings` and `GET /v1/models`, as the official SDKs and the frameworks
built on them (LangChain, LlamaIndex, Haystack, ...) call them.

Everything a client may send is answered the way OpenAI answers it: `input` as a string or a list of strings;
`encoding_format` float or base64 (little-endian float32, what the Python SDK asks for by default); `dimensions` only
when it equals the model's (LLaRA vectors are a mean of hidden states, not Matryoshka-trained: a prefix is not a
smaller embedding); `user` accepted and ignored; `model` echoed (the index's own model always embeds). Errors carry
OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with OpenAI's statuses (400 for a bad request,
never 422), so SDKs raise their usual exceptions with our message in them. The other routes keep `{"detail"}`.

Passage or query: LLaRA encodes documents (EBAE prompt) and questions (EBAR prompt) differently. The default is
`passage`, what a vector store embeds when it indexes; `"input_type": "query"` (the SDK's `extra_body`) gives the
vectors `llara-search query` searches with.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from typing import Annotated, Any, Callable

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ..engine import Engine
from ..errors import EmptyIndexError, EngineError, IndexFileError
from ..identity import TEXT_ONLY
from . import jobs, limits
from .lanes import Busy, DeadlineExceeded, Lanes

log = logging.getLogger(__name__)

MAX_INPUTS = limits.MAX_TEXTS  # OpenAI's limit per request; LangChain sends up to 1000 texts at once
KINDS = {"passage": "passage", "document": "passage", "search_document": "passage",  # Voyage/Cohere/NIM spellings
         "query": "query", "search_query": "query"}
ENCODINGS = ("float", "base64")


class OpenAIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type_: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type_ or ("invalid_request_error" if status < 500 else "server_error")

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse(error_body(self.message, param=self.param, code=self.code, type_=self.type),
                            status_code=self.status, headers=headers)


def error_body(message: str, *, param: str | None = None, code: str | None = None,
               type_: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _validation_error(exc: RequestValidationError) -> OpenAIError:
    """Pydantic's complaint about the body, said the way a person fixing the request needs it."""
    for e in exc.errors():
        loc = [str(x) for x in e.get("loc", ()) if x != "body"]
        kind = e.get("type", "")
        if kind == "json_invalid":
            why = e.get("ctx", {}).get("error", "parse error")
            return OpenAIError(400, f"the request body is not valid JSON ({why}); send a JSON object such as "
                                    "{\"input\": \"text\", \"model\": \"llara\"}", code="invalid_json")
        if kind == "missing" and loc == ["input"]:
            return OpenAIError(400, "`input` is missing: send the text to embed as a string or a list of strings",
                               param="input", code="missing_required_parameter")
        if kind in ("model_attributes_type", "dict_type") or not loc or kind == "missing":
            return OpenAIError(400, "the request body must be a JSON object with `input` (a string or a list of "
                                    "strings) and `model`", code="invalid_request")
        return OpenAIError(400, f"{'.'.join(loc)}: {e.get('msg')}", param=loc[0], code="invalid_value")
    return OpenAIError(400, "invalid request", code="invalid_request")


def content_type_hint(request: Request, exc: RequestValidationError) -> str | None:
    """The usual reason a JSON body was not read: it was not sent as JSON (`curl -d` without a header sends
    application/x-www-form-urlencoded, which is never parsed as JSON)."""
    ctype = request.headers.get("content-type", "")
    if request.method not in ("POST", "PUT", "PATCH") or "json" in ctype.lower():
        return None
    if not any(tuple(e.get("loc", ()))[:1] == ("body",) for e in exc.errors()):
        return None
    return (f"the body was not read as JSON (Content-Type: {ctype or 'none'}): send it with the header "
            "Content-Type: application/json (curl: -H 'Content-Type: application/json')")


class OpenAIRoute(APIRoute):
    """Answers every failure of a /v1 route (auth, body, engine, crash) in OpenAI's error shape."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except OpenAIError as exc:
                return exc.response()
            except RequestValidationError as exc:
                hint = content_type_hint(request, exc)
                error = OpenAIError(400, hint, code="invalid_content_type") if hint else _validation_error(exc)
                return error.response()
            except HTTPException as exc:
                if exc.status_code == 401:
                    return OpenAIError(401, "missing or wrong API key: pass the server's token as the API key "
                                            "(OpenAI(api_key=TOKEN), or the header Authorization: Bearer TOKEN)",
                                       code="invalid_api_key").response()
                return OpenAIError(exc.status_code, str(exc.detail),
                                   code="request_too_large" if exc.status_code == 413 else None).response()
            except limits.LimitError as exc:
                return OpenAIError(400, exc.message, param="input" if exc.param in ("texts", "input") else exc.param,
                                   code="invalid_value" if exc.status == 422 else "request_too_large").response()
            except DeadlineExceeded as exc:
                return OpenAIError(503, str(exc), code="timeout").response()
            except Busy as exc:
                response = OpenAIError(503, str(exc), code="server_busy").response()
                response.headers["Retry-After"] = "2"
                return response
            except EngineError as exc:
                return OpenAIError(400, str(exc), code="index_cannot_embed").response()
            except (EmptyIndexError, IndexFileError) as exc:
                return OpenAIError(503, str(exc), code="index_not_ready").response()
            except Exception as exc:  # noqa: BLE001 - a crash is still an answer the SDK can show
                log.exception("internal error on %s", request.url.path)
                return OpenAIError(500, f"internal error ({type(exc).__name__})").response()

        return route


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request. Fields are checked in the route (not by type) so that a wrong value gets a
    message saying what to send instead of a type-union dump."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"input": ["LLaRA adapts LLaMA-2 into a dense retriever."], "model": "llara", "encoding_format": "float"},
        {"input": "how do I configure the port?", "model": "llara", "input_type": "query"}]})

    input: Annotated[Any, WithJsonSchema({"anyOf": [
        {"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": MAX_INPUTS}]})] = Field(
        ..., description=f"A text or a list of up to {MAX_INPUTS} texts, none empty and none longer than the model "
                         "reads (512 tokens for the released LLaRA checkpoints). Token-id arrays are refused: the "
                         "index's model has its own tokenizer.")
    model: Annotated[Any, WithJsonSchema({"type": "string"})] = Field(
        None, description="Echoed in the answer; the index's own model always embeds (GET /v1/models names it).")
    encoding_format: Annotated[Any, WithJsonSchema({"type": "string", "enum": list(ENCODINGS)})] = Field(
        "float", description="`float` (default) or `base64`: the little-endian float32 bytes, base64-encoded (the "
                             "OpenAI Python SDK asks for this and decodes it).")
    dimensions: Annotated[Any, WithJsonSchema({"type": "integer"})] = Field(
        None, description="Only the model's own dimension is accepted: LLaRA vectors are not truncatable.")
    user: Annotated[Any, WithJsonSchema({"type": "string"})] = Field(None, description="Accepted and ignored.")
    input_type: Annotated[Any, WithJsonSchema({"type": "string", "enum": list(KINDS)})] = Field(
        "passage", description="llara-search extension (OpenAI SDK: `extra_body={'input_type': 'query'}`). "
                               "**Default `passage`**: LLaRA's EBAE prompt, as documents are indexed. `query`: the "
                               "EBAR prompt, as `llara-search query` encodes questions; use it for the query side of "
                               "a search. `document`/`search_document` and `search_query` are accepted aliases.")
    truncate: Annotated[Any, WithJsonSchema({"type": "boolean"})] = Field(
        False, description="llara-search extension: embed only the first tokens of a text longer than the model "
                           "reads, instead of refusing it (the default, as OpenAI does).")


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if not value:
            raise OpenAIError(400, "`input` is an empty list: send at least one text", param="input",
                              code="invalid_value")
        if all(isinstance(x, int) and not isinstance(x, bool) for x in value) or all(
                isinstance(x, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in x) for x in value):
            raise OpenAIError(400, "`input` holds token ids, which llara-search cannot read: it embeds text with the "
                                   "index model's own tokenizer, and ids from another tokenizer (tiktoken) stand for "
                                   "other words. Send the texts as strings (LangChain: OpenAIEmbeddings(..., "
                                   "check_embedding_ctx_length=False))", param="input", code="token_ids_not_supported")
        for i, x in enumerate(value):
            if not isinstance(x, str):
                raise OpenAIError(400, f"input[{i}] is {_json_type(x)}: `input` must be a string or a list of "
                                       "strings", param="input", code="invalid_type")
        texts = value
    else:
        raise OpenAIError(400, f"`input` is {_json_type(value)}: send a string or a list of strings", param="input",
                          code="invalid_type")
    if len(texts) > MAX_INPUTS:
        raise OpenAIError(400, f"`input` has {len(texts)} texts, more than {MAX_INPUTS} per request: send them in "
                               "several requests", param="input", code="too_many_inputs")
    for i, t in enumerate(texts):
        if not t.strip():
            where = "`input`" if isinstance(value, str) else f"input[{i}]"
            raise OpenAIError(400, f"{where} is empty: every text must have some content", param="input",
                              code="empty_input")
    limits.check_embed(texts, "input", single=isinstance(value, str))  # the limits of every route
    return texts


def _json_type(x: Any) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "a boolean"
    if isinstance(x, (int, float)):
        return "a number"
    if isinstance(x, dict):
        return "an object"
    if isinstance(x, list):
        return "a list"
    return type(x).__name__


def _options(body: EmbeddingRequest, model: str, dim: int) -> tuple[str, str, bool]:
    fmt = body.encoding_format if body.encoding_format is not None else "float"
    if fmt not in ENCODINGS:
        raise OpenAIError(400, f"encoding_format must be 'float' or 'base64', not {fmt!r}", param="encoding_format",
                          code="invalid_value")
    kind = KINDS.get(body.input_type if body.input_type is not None else "passage") \
        if isinstance(body.input_type, (str, type(None))) else None
    if kind is None:
        raise OpenAIError(400, f"input_type must be 'passage' (the default, for documents) or 'query' (for "
                               f"questions), not {body.input_type!r}", param="input_type", code="invalid_value")
    if not isinstance(body.truncate, bool):
        raise OpenAIError(400, f"truncate must be true or false, not {body.truncate!r}", param="truncate",
                          code="invalid_value")
    d = body.dimensions
    if d is not None:
        if not isinstance(d, int) or isinstance(d, bool):
            raise OpenAIError(400, f"dimensions must be an integer, not {d!r}", param="dimensions",
                              code="invalid_value")
        if dim and d != dim:
            raise OpenAIError(400, f"dimensions={d} cannot be honoured: LLaRA vectors are not truncatable (a prefix "
                                   f"of one is not a smaller embedding), and {model} gives {dim} dimensions; leave out "
                                   f"`dimensions` or pass {dim}", param="dimensions", code="unsupported_dimensions")
    return fmt, kind, body.truncate


def _model_card(model: str, created: int) -> dict:
    return {"id": model, "object": "model", "created": created, "owned_by": "llara-search"}


def openai_router(engine: Engine, auth: Callable, lanes: Lanes | None = None,
                  request_timeout: Callable[[], float | None] = lambda: limits.DEFAULT_DEADLINE_S) -> APIRouter:
    """The /v1 routes over `engine`, behind the server's `auth` dependency; embeddings run in `lanes` under the
    deadline `request_timeout()` gives."""
    lanes = lanes or Lanes()
    router = APIRouter(prefix="/v1", route_class=OpenAIRoute, dependencies=[Depends(auth)],
                       tags=["OpenAI-compatible"])
    started = int(time.time())

    @router.post("/embeddings", summary="Embeddings (OpenAI-compatible)",
                 description="OpenAI's `POST /v1/embeddings`: point an OpenAI SDK at `http://HOST:PORT/v1` with the "
                             "server's token as API key. **Texts are embedded as passages by default** (LLaRA's EBAE "
                             "prompt); send `input_type: query` (SDK: `extra_body={'input_type': 'query'}`) for "
                             "query vectors. Errors use OpenAI's shape: `{\"error\": {\"message\", \"type\", "
                             "\"param\", \"code\"}}`.")
    async def embeddings(body: EmbeddingRequest) -> Response:
        texts = _texts(body.input)
        info = engine.info
        model = info.get("model")
        if model == TEXT_ONLY or not model:
            raise EngineError(f"index {engine.paths.root} has no embedding model (text-only, built with --model none, "
                              "or nothing ingested yet); serve an index built with a model")
        fmt, kind, truncate = _options(body, model, int(info.get("dim") or 0))
        deadline = lanes.deadline(request_timeout())

        def work(d):
            encoder = engine.encoder
            counts = encoder.count_tokens(texts)
            limits.check_tokens(counts, encoder.max_length, model, "input", single=isinstance(body.input, str),
                                truncate=truncate)
            vecs = jobs.encode(engine, texts, kind, d)
            if fmt == "base64":
                return counts, encoder.max_length, [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
                                                    for v in vecs]
            return counts, encoder.max_length, vecs.tolist()

        small = sum(map(len, texts)) <= limits.SMALL_CHARS
        counts, limit, data = await lanes.run(work, deadline, small=small)
        n_tokens = sum(min(n, limit) for n in counts)
        payload = {"object": "list",
                   "data": [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(data)],
                   "model": str(body.model) if body.model is not None else model,
                   "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens}}
        return Response(json.dumps(payload, separators=(",", ":")), media_type="application/json")

    def cards() -> list[dict]:
        model = engine.info.get("model")
        return [] if not model or model == TEXT_ONLY else [_model_card(model, started)]

    @router.get("/models", summary="Models (OpenAI-compatible)",
                description="The index's embedding model (none for a text-only index).")
    async def models() -> dict:
        return {"object": "list", "data": await asyncio.to_thread(cards)}

    @router.get("/models/{model_id:path}", summary="One model (OpenAI-compatible)")
    async def model(model_id: str) -> dict:
        for card in await asyncio.to_thread(cards):
            if card["id"] == model_id:
                return card
        raise OpenAIError(404, f"no model {model_id!r} here: this server embeds with the model GET /v1/models lists",
                          param="model", code="model_not_found")

    @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def elsewhere(rest: str, request: Request) -> Response:
        raise OpenAIError(404, f"{request.method} /v1/{rest} is not served here: llara-search's OpenAI-compatible "
                               "routes are POST /v1/embeddings and GET /v1/models", code="unknown_url")

    return router


__all__ = ["EmbeddingRequest", "MAX_INPUTS", "OpenAIError", "error_body", "openai_router"]
