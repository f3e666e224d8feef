"""The server's one token check, for every route but `/healthz`: the API, the OpenAPI schema and its docs page.

A program sends `Authorization: Bearer TOKEN`. A browser cannot add that header to a page it navigates to, so the
token is also taken from the `llara_token` cookie, which the search page sets HttpOnly (no script can read it) and
SameSite=Strict (no other site's page can make the browser send it, so a cookie-authenticated request cannot be
forged from elsewhere). Tokens are compared in constant time; the token is never echoed or logged.
"""

from __future__ import annotations

import hmac
from typing import Callable

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

COOKIE = "llara_token"


def token_ok(token: str | None, authorization: str | None, cookie: str | None) -> bool:
    """Whether a request carrying this Authorization header value and `llara_token` cookie may pass."""
    if token is None:
        return True
    expected = token.encode()
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
        return True
    return cookie is not None and hmac.compare_digest(cookie.encode(), expected)


def require_token(token: str | None) -> Callable:
    """A FastAPI dependency refusing (401) a request without the token. It declares the bearer scheme, so the
    OpenAPI schema tells clients how to authenticate."""
    bearer = HTTPBearer(auto_error=False, description="the server's token (`serve --token`, LLARA_SEARCH_TOKEN)")

    def auth(request: Request, _creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if not token_ok(token, request.headers.get("authorization"), request.cookies.get(COOKIE)):
            raise HTTPException(401, "missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})

    return auth


__all__ = ["COOKIE", "require_token", "token_ok"]
