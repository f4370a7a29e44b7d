"""Who may call the API: a bearer token, or a browser logged in with that token through the login form.

Every route but ``/health`` and ``/login`` depends on :func:`require_token`. Tokens are compared in
constant time (``hmac.compare_digest``) so that response times do not leak how much of a guess was right.
A login never puts the token in the browser: the cookie holds a random login id with its expiry, signed
with a key derived from the token (:class:`Logins`), valid until it expires (``ServeConfig.login_ttl_s``)
or ``POST /logout`` ends it.
The server refuses to start without a token unless it listens on a loopback address and was told
``--insecure-local`` (:func:`check_startup`); then authentication is off.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import ipaddress
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import HTTPBearer

from adcraft.errors import InputError
from adcraft.serve.config import ServeConfig

LOGIN_COOKIE = "adcraft_login"
TOKEN_ENV = "ADCRAFT_API_TOKEN"
MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 4096
MAX_LOGINS = 10_000


def load_token(token_file: Path | None = None, environ: dict[str, str] | None = None) -> str | None:
    """The API token: the first line of ``token_file`` when given, else ``$ADCRAFT_API_TOKEN``, else None."""
    if token_file is not None:
        path = Path(token_file)
        if not path.is_file():
            raise InputError(f"{path}: token file does not exist")
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise InputError(f"{path}: token file is empty")
        return token
    token = (os.environ if environ is None else environ).get(TOKEN_ENV, "").strip()
    return token or None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1 or ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_startup(config: ServeConfig) -> None:
    """Refuse a configuration that would expose the API without authentication (``InputError``).

    A token must be given (``--token-file`` or ``$ADCRAFT_API_TOKEN``) and be at least
    ``MIN_TOKEN_CHARS`` long, unless the server listens on a loopback address and ``insecure_local``
    is set; ``insecure_local`` on any other address is refused too.
    """
    if config.insecure_local and not is_loopback(config.host):
        raise InputError(f"--insecure-local is only allowed on a loopback address (127.0.0.1, ::1, localhost), "
                         f"not {config.host}")
    if config.token is None:
        if config.insecure_local:
            return
        raise InputError(f"no API token: write one to a file and pass --token-file, or set ${TOKEN_ENV} "
                         "(for a local trial without authentication: --host 127.0.0.1 --insecure-local)")
    if len(config.token) < MIN_TOKEN_CHARS:
        raise InputError(f"the API token is {len(config.token)} characters long; use at least {MIN_TOKEN_CHARS} "
                         "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")


def _matches(candidate: str | None, expected: str) -> bool:
    if not candidate or len(candidate) > MAX_TOKEN_CHARS:
        return False
    return hmac.compare_digest(candidate.encode("utf-8"), expected.encode("utf-8"))


class Logins:
    """Browser logins: a cookie value ``nonce.expiry.signature``, signed with a key derived from the API token.

    The nonce is 128 random bits and the signature an HMAC-SHA256 over nonce and expiry (Unix seconds), so
    a login cannot be forged or extended without the token, and it holds nothing the token could be read
    from. A login is valid until its expiry, so it survives a restart of the server; a new token ends every
    login. ``end`` (logout) remembers the nonce until the login would have expired (at most ``max_ended``
    of them, in memory: after a restart a copy of a logged-out cookie is accepted again until it expires).
    """

    def __init__(self, token: str, ttl_s: float, max_ended: int = MAX_LOGINS) -> None:
        self.ttl_s = ttl_s
        self.max_ended = max_ended
        self._key = hmac.new(token.encode("utf-8"), b"adcraft login cookie", hashlib.sha256).digest()
        self._ended: dict[str, float] = {}  # nonce -> expiry of its login
        self._lock = threading.Lock()

    def start(self) -> str:
        """The cookie value of a new login, valid for ``ttl_s`` seconds."""
        body = f"{secrets.token_urlsafe(16)}.{int(time.time() + self.ttl_s)}"
        return f"{body}.{self._sign(body)}"

    def is_valid(self, value: str | None) -> bool:
        parts = _login_parts(value)
        if parts is None:
            return False
        nonce, expiry, signature = parts
        if not hmac.compare_digest(signature, self._sign(f"{nonce}.{expiry}")) or int(expiry) <= time.time():
            return False
        with self._lock:
            return nonce not in self._ended

    def end(self, value: str | None) -> None:
        """Log out: the login of ``value`` (when valid) is refused from now on."""
        if not self.is_valid(value):
            return
        nonce, expiry, _ = value.split(".")  # type: ignore[union-attr]
        now = time.time()
        with self._lock:
            if len(self._ended) >= self.max_ended:
                self._ended = {key: until for key, until in self._ended.items() if until > now}
                while len(self._ended) >= self.max_ended:
                    del self._ended[next(iter(self._ended))]  # the oldest logout
            self._ended[nonce] = float(expiry)

    def ended_count(self) -> int:
        return len(self._ended)

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _login_parts(value: str | None) -> tuple[str, str, str] | None:
    """(nonce, expiry, signature) of a well-formed login cookie value, else None."""
    if not value or len(value) > 128 or not value.isascii():
        return None
    parts = value.split(".")
    if len(parts) != 3 or not parts[1].isdigit() or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, or None."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def is_authorized(request: Request) -> bool:
    """Whether the request carries the server's token (``Authorization`` header) or, sending no such header,
    a valid login cookie; always true with authentication off."""
    expected: str | None = request.app.state.serve_config.token
    if expected is None:
        return True
    if "authorization" in request.headers:
        return _matches(bearer_token(request), expected)
    return request.app.state.logins.is_valid(request.cookies.get(LOGIN_COOKIE))


# Declares the bearer scheme in the OpenAPI schema; the check itself is is_authorized (header or login cookie).
BEARER = HTTPBearer(auto_error=False, description="the server's API token (or the cookie of a /login)")


async def require_token(request: Request, _: Annotated[object, Depends(BEARER)] = None) -> None:
    """FastAPI dependency: 401 unless :func:`is_authorized` (no-op with auth off)."""
    if not is_authorized(request):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong API token: send 'Authorization: Bearer <token>' or log in at /login",
            headers={"WWW-Authenticate": "Bearer"},
        )


LOGIN_STYLE = "body { font-family: sans-serif; max-width: 24rem; margin: 4rem auto }"
LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>adcraft: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>""" + LOGIN_STYLE + """</style></head>
<body>
<h1>adcraft</h1>{message}
<form method="post" action="/login">
<label>API token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Log in</button>
</form></body></html>
"""
# The form loads nothing, runs no script, posts only here and cannot be framed (its one style block by hash).
LOGIN_POLICY = ("default-src 'none'; style-src 'sha256-"
                + base64.b64encode(hashlib.sha256(LOGIN_STYLE.encode()).digest()).decode()
                + "'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def _login_page(message: str = "", status_code: int = 200) -> HTMLResponse:
    body = LOGIN_PAGE.replace("{message}", f'<p role="alert">{html.escape(message)}</p>' if message else "")
    return HTMLResponse(body, status_code=status_code,
                        headers={"Content-Security-Policy": LOGIN_POLICY, "Cache-Control": "no-store"})


def login_router() -> APIRouter:
    """``GET /login`` (the form, public), ``POST /login`` (starts a login, sets its cookie, redirects to ``/``)
    and ``POST /logout`` (ends it, clears the cookie, redirects to ``/login``)."""
    router = APIRouter(tags=["auth"])

    @router.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form() -> HTMLResponse:
        return _login_page()

    @router.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        expected: str | None = request.app.state.serve_config.token
        form = await request.form(max_files=0, max_fields=4)
        token = form.get("token")
        if expected is None:
            return RedirectResponse("/", status_code=303)
        if not isinstance(token, str) or not _matches(token.strip(), expected):
            return _login_page("Wrong token.", status_code=401)
        logins: Logins = request.app.state.logins
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(LOGIN_COOKIE, logins.start(), max_age=int(logins.ttl_s), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https", path="/")
        return response

    @router.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        request.app.state.logins.end(request.cookies.get(LOGIN_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(LOGIN_COOKIE, httponly=True, samesite="strict",
                               secure=request.url.scheme == "https", path="/")
        return response

    return router
