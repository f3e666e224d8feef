"""A small typed HTTP client for `llara-search serve`, shared by the CLI's instant query, the LangChain retriever and
any other tool: `Client` (blocking) and `AsyncClient` (asyncio), one request format and one error mapping.

    from llara_search.client import Client
    with Client("http://127.0.0.1:8000", token="T") as c:
        for hit in c.search("how do I configure the port?", k=5, mode="hybrid", where="*.md"):
            print(hit.rank, hit.score, hit.path, hit.start_line, hit.heading)

Search parameters beyond `k`, `mode` and `where` are passed through as keyword arguments (`c.search(q, rerank=...)`)
and sent as given, so a server that learns a new option is usable without a new client.

Only httpx and the standard library are imported here: the instant `llara-search query` path goes through this
module and must start in well under a second (no torch, no numpy).
"""

from __future__ import annotations

import os
from typing import Any, Iterable

import httpx

from .results import SearchResult

MODES = ("dense", "bm25", "hybrid")  # == llara_search.search.MODES (a test keeps them equal)
MAX_K = 1000  # == llara_search.retrieval.MAX_K (a test keeps them equal)
DEFAULT_TIMEOUT_S = 120.0  # a first query on a 7B model waits for its encode; connecting gets 5 s
TOKEN_ENV = "LLARA_SEARCH_TOKEN"


class LlaraSearchError(RuntimeError):
    """Anything that went wrong talking to the server; the message says what to change. `status`: HTTP status."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ServerUnavailable(LlaraSearchError):
    """Nothing answers at the URL (not started, stopped, wrong port)."""


class AuthenticationError(LlaraSearchError):
    """401: the token is missing or not the server's."""


class RequestError(LlaraSearchError):
    """The request was refused as given (4xx): a wrong argument, an index that cannot answer this mode, ..."""


Hit = SearchResult  # one search result, as the engine returns it (llara_search/results.py)


def check_search_args(queries: Iterable[Any], k: int, mode: str) -> None:
    """The engine's own checks, with its words, before anything is sent: a script sees the same error whether a
    server or the local engine answered."""
    if mode not in MODES:
        raise RequestError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not 1 <= int(k) <= MAX_K:
        raise RequestError(f"k must be between 1 and {MAX_K}, not {k}")
    if any(not isinstance(q, str) or not q.strip() for q in queries):
        raise RequestError("every query must be a non-empty string")


class _Base:
    def __init__(self, url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
                 headers: dict[str, str] | None = None):
        """`token`: the server's bearer token (default: $LLARA_SEARCH_TOKEN; none for a server started without one)."""
        self.url = url.rstrip("/")
        token = token if token is not None else os.environ.get(TOKEN_ENV) or None
        self._has_token = bool(token)
        self._headers = {"Accept": "application/json", **(headers or {})}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._timeout = httpx.Timeout(timeout, connect=min(5.0, timeout))
        # proxy settings from the environment are for remote servers; a loopback server is never behind one
        self._trust_env = httpx.URL(self.url).host not in ("127.0.0.1", "localhost", "::1")

    def __repr__(self) -> str:  # never the token
        return f"{type(self).__name__}({self.url!r}, token={'***' if self._has_token else None})"

    @staticmethod
    def _search_body(query: str, k: int, mode: str, where: str | None, options: dict) -> dict:
        check_search_args([query], k, mode)
        return {"query": query, "k": int(k), "mode": mode, "where": where, **options}

    @staticmethod
    def _batch_body(queries: list[str], k: int, mode: str, where: str | None, options: dict) -> dict:
        check_search_args(queries, k, mode)
        return {"queries": queries, "k": int(k), "mode": mode, "where": where, **options}

    def _answer(self, response: httpx.Response) -> Any:
        if response.status_code < 400:
            try:
                return response.json()
            except ValueError:
                raise LlaraSearchError(f"{self.url} did not answer with JSON (is it a llara-search server?)",
                                       response.status_code) from None
        detail = _detail(response)
        if response.status_code == 401:
            hint = ("refused the token: pass the token it was started with" if self._has_token else
                    "needs a token: pass it")
            raise AuthenticationError(f"the server at {self.url} {hint} (--token or ${TOKEN_ENV})", 401)
        if response.status_code < 500:
            raise RequestError(detail, response.status_code)
        raise LlaraSearchError(f"the server at {self.url} failed ({response.status_code}): {detail}",
                               response.status_code)

    def _unavailable(self, exc: Exception) -> ServerUnavailable:
        return ServerUnavailable(f"no llara-search server answers at {self.url} ({type(exc).__name__}); start one "
                                 "with `llara-search serve`, or check the URL")


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict):  # the OpenAI-shaped /v1 routes
            return str(body["error"].get("message"))
        if "detail" in body:
            return str(body["detail"])
    return str(body)[:500]


_UNAVAILABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError)


class Client(_Base):
    """Blocking client. Use as a context manager, or call `close()`."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
                 headers: dict[str, str] | None = None, transport: httpx.BaseTransport | None = None):
        super().__init__(url, token, timeout=timeout, headers=headers)
        self._http = httpx.Client(base_url=self.url, headers=self._headers, timeout=self._timeout,
                                  transport=transport, trust_env=self._trust_env)

    @classmethod
    def for_index(cls, index_dir: str | os.PathLike, token: str | None = None, *, db_url: str | None = None,
                  timeout: float = DEFAULT_TIMEOUT_S) -> "Client | None":
        """A client of the `llara-search serve` running for this index on this machine, or None when there is none."""
        from .server_record import find_server

        rec = find_server(index_dir, db_url)
        return cls(rec.url, token, timeout=timeout) if rec is not None else None

    def _request(self, method: str, path: str, **kw) -> Any:
        try:
            return self._answer(self._http.request(method, path, **kw))
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from None
        except httpx.TimeoutException as exc:
            raise LlaraSearchError(f"the server at {self.url} did not answer in time ({type(exc).__name__})") from None

    def search(self, query: str, k: int = 10, mode: str = "dense", where: str | None = None,
               **options: Any) -> list[Hit]:
        """Top-k passages for `query`; `where` is a path glob ('api/*', '*.pdf'); `options` are sent as given."""
        body = self._request("POST", "/search", json=self._search_body(query, k, mode, where, options))
        return [Hit.from_dict(d) for d in body["results"]]

    def search_many(self, queries: list[str], k: int = 10, mode: str = "dense", where: str | None = None,
                    **options: Any) -> list[list[Hit]]:
        """Several queries in one request (one batched encode on the server)."""
        body = self._request("POST", "/batch_search", json=self._batch_body(list(queries), k, mode, where, options))
        return [[Hit.from_dict(d) for d in rs] for rs in body["results"]]

    def embed(self, texts: list[str], kind: str = "passage") -> list[list[float]]:
        """Vectors from the index's encoder: `kind` 'passage' (EBAE prompt) or 'query' (EBAR prompt)."""
        return self._request("POST", "/embed", json={"texts": list(texts), "kind": kind})["embeddings"]

    def info(self) -> dict:
        """Model, fingerprint, counts and generation of the served index."""
        return self._request("GET", "/info")

    def health(self) -> bool:
        """True when the server answers /healthz (no token needed)."""
        try:
            return self._http.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncClient(_Base):
    """asyncio client with the same methods as `Client` (awaitable). Use `async with`, or `await aclose()`."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S,
                 headers: dict[str, str] | None = None, transport: httpx.AsyncBaseTransport | None = None):
        super().__init__(url, token, timeout=timeout, headers=headers)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=self._timeout,
                                       transport=transport, trust_env=self._trust_env)

    async def _request(self, method: str, path: str, **kw) -> Any:
        try:
            return self._answer(await self._http.request(method, path, **kw))
        except _UNAVAILABLE as exc:
            raise self._unavailable(exc) from None
        except httpx.TimeoutException as exc:
            raise LlaraSearchError(f"the server at {self.url} did not answer in time ({type(exc).__name__})") from None

    async def search(self, query: str, k: int = 10, mode: str = "dense", where: str | None = None,
                     **options: Any) -> list[Hit]:
        body = await self._request("POST", "/search", json=self._search_body(query, k, mode, where, options))
        return [Hit.from_dict(d) for d in body["results"]]

    async def search_many(self, queries: list[str], k: int = 10, mode: str = "dense", where: str | None = None,
                          **options: Any) -> list[list[Hit]]:
        body = await self._request("POST", "/batch_search",
                                   json=self._batch_body(list(queries), k, mode, where, options))
        return [[Hit.from_dict(d) for d in rs] for rs in body["results"]]

    async def embed(self, texts: list[str], kind: str = "passage") -> list[list[float]]:
        return (await self._request("POST", "/embed", json={"texts": list(texts), "kind": kind}))["embeddings"]

    async def info(self) -> dict:
        return await self._request("GET", "/info")

    async def health(self) -> bool:
        try:
            return (await self._http.get("/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


__all__ = ["AsyncClient", "AuthenticationError", "Client", "Hit", "LlaraSearchError", "MAX_K", "MODES",
           "RequestError", "ServerUnavailable", "check_search_args"]
