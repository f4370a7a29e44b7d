"""The review page and its JSON endpoints: approve or reject a run's proposals, export the approved ones.

Routes (every one behind the ``require_token`` dependency given to :func:`build_review_router`):

- ``GET /``: the page (``static/review.html``, with ``review/review.js`` and ``review/review.css``);
- ``GET /v1/review/products?offset=&limit=``: a page of products, each with its current creative, its
  proposals and each proposal's latest decision;
- ``POST /v1/decisions`` ``{product_id, creative_id, decision, note}``: store a decision (201), 422 for a
  malformed body, 404 for a product or creative the run does not have;
- ``GET /v1/decisions?product_id=&history=``: latest decision per creative, or every decision newest first;
- ``GET /v1/decisions/export?format=csv|parquet``: the approved creatives (``decisions.EXPORT_COLUMNS``);
- ``GET /v1/decisions/bundle?final_url=``: the approved creatives for bulk upload to an ad manager, as a zip
  (``bundle.bundle_files``: images, creatives.csv, manifest.json), 404 while none is approved.

Every route reads and writes the decisions of the served run only (``DecisionStore``).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from importlib.resources import files
from typing import Annotated, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from adcraft.errors import InputError
from adcraft.serve.bundle import DEFAULT_FINAL_URL, FINAL_URL_PATTERN, bundle_files, bundle_zip
from adcraft.serve.decisions import MAX_NOTE_CHARS, Decision, DecisionStore
from adcraft.serve.run_view import ProductReview, RunView
from adcraft.serve.schemas import (
    BoundedRequest,
    error_responses,
    json_body_schema,
    parse_json_body,
    read_json_body,
)
from adcraft.serve.spreadsheet import spreadsheet_csv

MAX_PAGE = 100
# The page loads nothing but its own script, style and images, and cannot be framed.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
EXPORT_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"description": "the approved creatives", "content": {
    "text/csv": {"schema": {"type": "string"}},
    "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
}}}
BUNDLE_RESPONSE: dict[int | str, dict[str, Any]] = {200: {
    "description": "the approved creatives for bulk upload: images/, creatives.csv and manifest.json in a zip",
    "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
}}
_ASSETS = {"review.js": "text/javascript; charset=utf-8", "review.css": "text/css; charset=utf-8"}


class DecisionRequest(BoundedRequest):
    """The body of ``POST /v1/decisions``."""

    product_id: str = Field(min_length=1, max_length=255)
    creative_id: str = Field(min_length=1, max_length=255)
    decision: Literal["approve", "reject"]
    note: str = Field(default="", max_length=MAX_NOTE_CHARS)


def build_review_router(run: RunView, database: str | DecisionStore, require_token: Callable[..., Any]) -> APIRouter:
    """The review page's routes over ``run``, decisions kept in ``database``: a store the caller opened (and
    closes), or a database URL opened now, so that a bad URL fails at start-up with an ``InputError``, and
    closed when the app shuts down.
    """
    owned = not isinstance(database, DecisionStore)
    store = DecisionStore(database, run) if isinstance(database, str) else database
    page = files("adcraft.serve").joinpath("static", "review.html").read_text(encoding="utf-8")
    assets = {name: files("adcraft.serve").joinpath("static", name).read_bytes() for name in _ASSETS}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            store.dispose()

    router = APIRouter(dependencies=[Depends(require_token)], lifespan=lifespan, responses=error_responses(401, 500))

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def review_page() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"})

    @router.get("/review/{name}", include_in_schema=False)
    def review_asset(name: str) -> Response:
        if name not in assets:
            raise HTTPException(404, f"no asset {name!r}")
        return Response(assets[name], media_type=_ASSETS[name], headers={"Cache-Control": "no-cache"})

    @router.get("/v1/review/products", responses=error_responses(422))
    def review_products(offset: Annotated[int, Query(ge=0)] = 0,
                        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20) -> JSONResponse:
        reviews = run.page(offset, limit)
        decided = {(d.product_id, d.creative_id): d for d in store.latest()} if reviews else {}
        return JSONResponse({
            "total": len(run), "offset": offset, "limit": limit, "slots": list(run.slots),
            "products": [_product_json(review, decided) for review in reviews],
        })

    def parse_and_record(raw: bytes) -> Decision:
        body = parse_json_body(DecisionRequest, raw)
        try:
            return store.record(body.product_id, body.creative_id, body.decision, body.note)
        except InputError as exc:  # the body is valid, so what is left is a product or proposal the run lacks
            raise HTTPException(404, str(exc)) from exc

    @router.post("/v1/decisions", status_code=201, openapi_extra=json_body_schema(DecisionRequest),
                 responses=error_responses(404, 408, 413, 422))
    async def record_decision(request: Request) -> JSONResponse:
        decision = await run_in_threadpool(parse_and_record, await read_json_body(request))  # off the loop
        return JSONResponse(decision.to_json(), status_code=201)

    @router.get("/v1/decisions", responses=error_responses(422))
    def list_decisions(product_id: Annotated[str | None, Query(max_length=255)] = None,
                       history: bool = False) -> JSONResponse:
        found = store.history(product_id) if history else store.latest(product_id)
        return JSONResponse({"decisions": [d.to_json() for d in found]})

    @router.get("/v1/decisions/export", response_class=Response, responses={**EXPORT_RESPONSE, **error_responses(422)})
    def export_decisions(
        file_format: Annotated[Literal["csv", "parquet"], Query(alias="format")] = "csv",
    ) -> Response:
        frame = store.approved()
        headers = {"Content-Disposition": f'attachment; filename="approved-creatives.{file_format}"'}
        if file_format == "parquet":
            buffer = io.BytesIO()
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False, schema=EXPORT_SCHEMA), buffer)
            return Response(buffer.getvalue(), media_type="application/vnd.apache.parquet", headers=headers)
        return Response(export_csv(frame), media_type="text/csv; charset=utf-8", headers=headers)

    @router.get("/v1/decisions/bundle", response_class=Response,
                responses={**BUNDLE_RESPONSE, **error_responses(404, 422)})
    def bundle_download(
        final_url: Annotated[str, Query(max_length=2000, pattern=FINAL_URL_PATTERN)] = DEFAULT_FINAL_URL,
    ) -> Response:
        if run.run_dir is None:
            raise HTTPException(404, "this server was not started on a run folder")
        try:
            files = bundle_files(run.run_dir, run, store.approved(), store.database_url, final_url)
        except InputError as exc:  # no approved creative yet, or approvals of creatives the run no longer has
            raise HTTPException(404, str(exc)) from exc
        return Response(bundle_zip(files), media_type="application/zip", headers={
            "Content-Disposition": 'attachment; filename="approved-creatives-bundle.zip"'})

    return router


EXPORT_SCHEMA = pa.schema([
    ("product_id", pa.string()), ("creative_id", pa.string()), ("rank", pa.int64()),
    ("elements", pa.list_(pa.string())), ("image", pa.string()), ("predicted_ctr", pa.float64()),
    ("note", pa.string()), ("decided_at", pa.timestamp("us", tz="UTC")), ("run_id", pa.string()),
])


def export_csv(frame: pd.DataFrame) -> str:
    """The export as CSV (:func:`spreadsheet_csv`: no cell runs as a formula): ``elements`` a JSON array, times
    ISO 8601."""
    frame = frame.assign(
        elements=[json.dumps(list(e)) for e in frame["elements"]],
        decided_at=[t.isoformat() for t in frame["decided_at"]],
    )
    return spreadsheet_csv(frame)


def _product_json(review: ProductReview, decided: dict[tuple[str, str], Decision]) -> dict:
    """One product for the page; ``image_id`` of a creative is its id on ``/v1/creatives/{id}.png``."""
    out = _finite(asdict(review))
    if out["current"] is not None:
        out["current"]["image_id"] = review.current.creative_id
    for proposal in out["proposals"]:
        proposal["image_id"] = proposal["creative_id"]
        found = decided.get((review.product_id, proposal["creative_id"]))
        proposal["decision"] = None if found is None else found.to_json()
    return out


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
