"""``create_app``: the FastAPI application over one optimize run (API, login, review page, docs).

Every response carries an ``X-Request-ID`` (the caller's, when it sent a plain one, else a new one) and
the headers of ``SECURITY_HEADERS`` (a page sets its own ``Content-Security-Policy``; everything else gets
one that allows nothing), and one JSON line is logged per request to the ``adcraft.serve.access`` logger:
method, path, status, milliseconds and request id. Errors answer ``{"error", "message", "detail"}`` (the
``ErrorResponse`` model) with a message a caller can act on; an unexpected failure answers 500 with the
request id only (the traceback goes to the log).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adcraft import __version__
from adcraft.errors import InputError
from adcraft.serve.api import api_router, health_router, serving_router
from adcraft.serve.auth import Logins, login_router, require_token
from adcraft.serve.config import ServeConfig
from adcraft.serve.limits import BodyLimitMiddleware, WorkLimiter
from adcraft.serve.state import ModelMissing, NotFound, ServedRun

access_log = logging.getLogger("adcraft.serve.access")
error_log = logging.getLogger("adcraft.serve")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"))
DEFAULT_POLICY = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI's page (only with ServeConfig.docs): its script and style from the CDN, one inline script.
DOCS_POLICY = ("default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; "
               "style-src https://cdn.jsdelivr.net 'unsafe-inline'; img-src 'self' data: https://fastapi.tiangolo.com; "
               "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'")
MAX_MESSAGE_CHARS = 2000
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
MAX_ERRORS = 10  # validation errors listed in an answer; the message counts the rest
MAX_LOC_PARTS = 8
MAX_PART_CHARS = 120


def create_app(config: ServeConfig, served: ServedRun | None = None) -> FastAPI:
    """The application serving ``config.run_dir``; ``served`` reuses an already loaded run (tests, benchmarks).

    Loads the run, its market and models now and opens the decisions database (with the served log), so a
    bad run folder or database fails here with an ``InputError``.
    """
    from adcraft.serve.decisions import DecisionStore, sqlite_file
    from adcraft.serve.impression_log import ImpressionLog, product_priors
    from adcraft.serve.policy import ServingPolicy
    from adcraft.serve.review import build_review_router
    from adcraft.serve.run_view import RunView

    served = served or ServedRun(config)
    work = WorkLimiter(config.max_concurrent, config.queue_timeout_s, config.request_timeout_s)
    view = RunView.of_run(served.run_dir, served.market, served.reward)  # the models ServedRun already loaded
    database = sqlite_file(config.database_url)  # a database file inside the run folder belongs to the run
    store = DecisionStore(config.database_url, view,
                          adopt_unattributed=database is not None and served.run_dir in database.parents)
    impressions = ImpressionLog(store, ServingPolicy(config.policy),
                                product_priors(served.market, config.policy) if config.policy.prior_from_logs
                                else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        work.open()
        yield
        await asyncio.to_thread(work.close)  # running jobs finish before the process exits
        served.close()
        store.dispose()

    app = FastAPI(title="adcraft", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None, description="Score, propose and edit ad creatives of an optimize run.")
    app.state.serve_config = config
    app.state.served = served
    app.state.limiter = work
    app.state.logins = Logins(config.token or "", config.login_ttl_s)
    app.include_router(health_router())
    app.include_router(login_router())
    app.include_router(api_router(config.max_k))
    app.include_router(serving_router(impressions))
    _add_docs(app, config.docs)
    app.include_router(build_review_router(view, store, require_token))
    _add_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=config.max_body_bytes, body_timeout_s=config.body_timeout_s)
    app.add_middleware(AccessLogMiddleware)
    return app


def _add_docs(app: FastAPI, docs_page: bool) -> None:
    """The OpenAPI schema, and Swagger UI when ``docs_page`` (else 404 saying how to turn it on), behind the
    token like every other route."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_token)])
    def docs() -> HTMLResponse:
        if not docs_page:
            raise StarletteHTTPException(404, "the docs page is off (it loads Swagger UI from a CDN): start the "
                                              "server with --docs to turn it on; the schema is at /openapi.json")
        page = get_swagger_ui_html(openapi_url="/openapi.json", title="adcraft API")
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page


def _error(status: int, message: str, detail: object = None, headers: dict[str, str] | None = None) -> JSONResponse:
    try:
        code = HTTPStatus(status).phrase.lower().replace(" ", "_")
    except ValueError:
        code = "error"
    message = message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "..."
    return JSONResponse({"error": code, "message": message, "detail": message if detail is None else detail},
                        status_code=status, headers=headers)


def validation_message(errors: list[dict], total: int | None = None) -> str:
    """One line per problem of a refused request (the first ``MAX_ERRORS``): where (``body.k``) and what;
    ``total`` (default ``len(errors)``) counts the problems left out."""
    total = len(errors) if total is None else total
    lines = []
    for error in errors[:MAX_ERRORS]:
        where = ".".join(str(part) for part in error.get("loc", ())) or "body"
        lines.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {total - MAX_ERRORS} more)" if total > MAX_ERRORS else ""
    return "invalid request: " + "; ".join(lines) + more


def bounded_errors(errors: Sequence[Any]) -> list[dict]:
    """The first ``MAX_ERRORS`` validation errors as ``{loc, msg, type}``, each part cut to ``MAX_PART_CHARS``
    (a key or message may be as long as the body), so that the answer to any body stays a few KB."""
    out = []
    for error in errors[:MAX_ERRORS]:
        loc = [_cut(part) if isinstance(part, str) else part for part in list(error.get("loc", ()))[:MAX_LOC_PARTS]]
        out.append({"loc": loc, "msg": _cut(str(error.get("msg", ""))), "type": _cut(str(error.get("type", "")))})
    return out


def _cut(text: str) -> str:
    return text if len(text) <= MAX_PART_CHARS else text[:MAX_PART_CHARS] + "..."


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(ModelMissing)
    async def model_missing(request: Request, exc: ModelMissing) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        found = exc.errors()
        errors = bounded_errors(found)
        return _error(422, validation_message(errors, len(found)), errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 401 and request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            return RedirectResponse("/login", status_code=303)  # a browser without the cookie: to the login form
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # every method of the path, not only those of the first route matching it
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
        return _error(exc.status_code, message, exc.detail, headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = request.scope.get("adcraft.request_id", "")
        error_log.exception("unhandled error in %s %s (request %s)", request.method, request.url.path, request_id)
        return _error(500, f"internal error; the server log has the details (request id {request_id})")


def _allowed_methods(request: Request) -> list[str]:
    """The methods that some route of the app answers on the request's path."""
    allowed = set()
    for method in HTTP_METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.add(method)
    return sorted(allowed)


class AccessLogMiddleware:
    """Pure ASGI middleware: a request id on every request and response, one JSON log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        scope["adcraft.request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(b"x-request-id", request_id.encode())]
                headers += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", DEFAULT_POLICY))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            access_log.info(json.dumps({
                "method": scope.get("method"), "path": scope.get("path"), "status": status,
                "ms": round(1000 * (time.perf_counter() - started), 2), "request_id": request_id,
            }))


def run_server(config: ServeConfig) -> None:
    """Check the configuration (``auth.check_startup``), load the run and serve it with uvicorn until SIGINT/SIGTERM.

    On shutdown uvicorn stops accepting connections and lets requests in flight finish (up to the request
    timeout); the app's lifespan then waits for running jobs and closes the decisions database.
    """
    import uvicorn

    from adcraft.serve.auth import check_startup

    check_startup(config)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    access_log.setLevel(logging.INFO)
    app = create_app(config)
    if config.token is None:
        error_log.warning("authentication is off (--insecure-local): only this machine can reach the server")
    uvicorn.run(app, **uvicorn_settings(config))


def uvicorn_settings(config: ServeConfig) -> dict:
    """What ``run_server`` gives uvicorn: address, graceful shutdown within the request timeout, and idle
    connections kept open ``keep_alive_s`` (``ServeConfig``: the client closes an idle connection first)."""
    return {"host": config.host, "port": config.port, "access_log": False, "log_level": "info",
            "timeout_graceful_shutdown": max(1, int(config.request_timeout_s)),
            "timeout_keep_alive": max(1, math.ceil(config.keep_alive_s)), "server_header": False}
