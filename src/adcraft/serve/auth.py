"""Who may call the API: a bearer token, or the same token in an HttpOnly cookie set by the login form.

Every route but ``/health`` and ``/login`` depends on :func:`require_token`. Tokens are compared in
constant time (``hmac.compare_digest``) so that response times do not leak how much of a guess was right.
The server refuses to start without a token unless it listens on a loopback address and was told
``--insecure-local`` (:func:`check_startup`); then authentication is off.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import os
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from adcraft.errors import InputError
from adcraft.serve.config import ServeConfig

TOKEN_COOKIE = "adcraft_token"
TOKEN_ENV = "ADCRAFT_API_TOKEN"
MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 4096


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


def presented_token(request: Request) -> str | None:
    """The token a request carries: ``Authorization: Bearer ...`` first, else the login cookie."""
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    return request.cookies.get(TOKEN_COOKIE)


async def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the server's token (no-op with auth off)."""
    expected: str | None = request.app.state.serve_config.token
    if expected is None:
        return
    if not _matches(presented_token(request), expected):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong API token: send 'Authorization: Bearer <token>' or log in at /login",
            headers={"WWW-Authenticate": "Bearer"},
        )


LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>adcraft: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 24rem; margin: 4rem auto">
<h1>adcraft</h1>{message}
<form method="post" action="/login">
<label>API token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
<button type="submit">Log in</button>
</form></body></html>
"""


def login_router() -> APIRouter:
    """``GET /login`` (the form, public) and ``POST /login`` (sets the cookie, then redirects to ``/``)."""
    router = APIRouter(tags=["auth"])

    @router.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form() -> HTMLResponse:
        return HTMLResponse(LOGIN_PAGE.format(message=""))

    @router.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        expected: str | None = request.app.state.serve_config.token
        form = await request.form(max_files=0, max_fields=4)
        token = form.get("token")
        if expected is None:
            return RedirectResponse("/", status_code=303)
        if not isinstance(token, str) or not _matches(token.strip(), expected):
            message = html.escape("Wrong token.")
            return HTMLResponse(LOGIN_PAGE.format(message=f'<p role="alert">{message}</p>'), status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(TOKEN_COOKIE, expected, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    return router
