"""The API's routes: health, score, propose, edit, the creatives' images, and serving with its feedback.

Model and rendering work runs through the app's ``WorkLimiter`` (bounded concurrency and time); a
combination whose score is cached is answered on the event loop without waiting for a worker. JSON bodies
are read up to ``MAX_JSON_BODY_BYTES`` (``read_json_body``) and parsed on a worker thread
(``parse_json_body``), so that no body stalls the event loop that answers everyone else for long.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from adcraft import __version__
from adcraft.errors import InputError
from adcraft.serve.auth import require_token
from adcraft.serve.impression_log import ImpressionLog
from adcraft.serve.limits import WorkLimiter, decode_upload
from adcraft.serve.schemas import (
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    Attribution,
    FeedbackRequest,
    FeedbackResponse,
    HealthResponse,
    ProposedCreative,
    ProposeRequest,
    ProposeResponse,
    ScoreRequest,
    ScoreResponse,
    ServedArm,
    ServeRequest,
    ServeResponse,
    error_responses,
    json_body_schema,
    parse_json_body,
    read_json_body,
)
from adcraft.serve.state import (
    CONTRASTIVE_MODEL_MISSING,
    CREATIVE_ID_SCHEMA,
    CTR_MODEL_MISSING,
    ModelMissing,
    ScoredCombination,
    ServedRun,
    png_bytes,
)

UPLOAD_FIELDS = {
    "image": {"type": "string", "format": "binary", "description": "PNG, JPEG or WebP"},
    # at least one character that is not white space to Python (str.strip), which counts \x1c-\x1f and \x85 too
    "text": {"type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS, "pattern": r"[^\s\u001c-\u001f\u0085]",
             "description": "the product's text"},
    "product_id": {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS},
}


def _upload_schema(*required: str) -> dict:
    """A multipart form of ``required`` fields, no others (the form parser refuses extra fields with 400)."""
    return {"type": "object", "required": list(required), "additionalProperties": False,
            "properties": {name: UPLOAD_FIELDS[name] for name in required}}


SCORE_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": ScoreRequest.model_json_schema()},
    "multipart/form-data": {"schema": _upload_schema("image", "text", "product_id")},
}}}
EDIT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": _upload_schema("image", "text")},
}}}
PNG_RESPONSE: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
JSON_BODY_ERRORS = (404, 408, 413, 422, 503, 504)  # a JSON body naming a product, then model or rendering work


def served(request: Request) -> ServedRun:
    return request.app.state.served


def limiter(request: Request) -> WorkLimiter:
    return request.app.state.limiter


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health", response_model=HealthResponse)
    async def health(request: Request) -> HealthResponse:
        """Liveness: ok, the adcraft version and which models are loaded (no authentication)."""
        return HealthResponse(ok=True, version=__version__, models=served(request).loaded_models())

    return router


def api_router(max_k: int) -> APIRouter:
    """The ``/v1`` routes, all behind :func:`adcraft.serve.auth.require_token`; ``max_k`` is the most
    proposals a request may ask for, as the schema of ``/v1/propose`` states."""
    router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], tags=["api"],
                       responses=error_responses(401, 500))

    @router.post("/score", response_model=ScoreResponse, openapi_extra=SCORE_BODY,
                 responses=error_responses(400, 409, 415, *JSON_BODY_ERRORS))
    async def score(request: Request) -> ScoreResponse:
        """Predicted CTR of a combination (JSON, multi-instance model, with per-element attributions) or of an
        uploaded image and text (multipart, point-wise CTR model given with --ctr-model)."""
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            return await _score_upload(request)
        if kind not in ("application/json", ""):
            raise HTTPException(status_code=415, detail="send a combination as application/json or an image and "
                                                        "text as multipart/form-data")
        payload = await run_in_threadpool(parse_json_body, ScoreRequest, await read_json_body(request))
        run, context = served(request), payload.context_text()
        result = run.cached_score(payload.product_id, payload.elements, context)
        if result is None:
            result = await limiter(request).run(run.score, payload.product_id, payload.elements, context)
        return _score_response(result)

    async def _score_upload(request: Request) -> ScoreResponse:
        image, text, product_id = await _upload_fields(request, need_product=True)
        run = served(request)
        if run.ctr_model is None:
            raise ModelMissing(CTR_MODEL_MISSING)

        def work() -> tuple[float, list[str], bool]:
            decoded = decode_upload(image, run.config.max_image_pixels)
            return run.score_upload(product_id, decoded, text)

        ctr, elements, image_used = await limiter(request).run(work)
        return ScoreResponse(model=run.ctr_model.kind, product_id=product_id, elements=elements, predicted_ctr=ctr,
                             image_used=image_used)

    @router.post("/propose", response_model=ProposeResponse, responses=error_responses(*JSON_BODY_ERRORS),
                 openapi_extra=json_body_schema(ProposeRequest, k={"maximum": max_k}))
    async def propose(request: Request) -> ProposeResponse:
        """The combination policy's top-K creatives for a product, rendered; images at ``image_url``."""
        payload = await run_in_threadpool(parse_json_body, ProposeRequest, await read_json_body(request))
        run = served(request)
        creatives = await limiter(request).run(run.propose, payload.product_id, payload.k, payload.context)
        return ProposeResponse(product_id=payload.product_id, k=payload.k, creatives=[
            ProposedCreative(id=c.id, rank=c.rank, elements=c.elements, predicted_ctr=c.predicted_ctr,
                             image_url=f"/v1/creatives/{c.id}.png", product_bbox=c.product_bbox)
            for c in creatives
        ])

    @router.post("/edit", response_class=Response, openapi_extra=EDIT_BODY,
                 responses={**PNG_RESPONSE, **error_responses(400, 408, 409, 413, 422, 503, 504)})
    async def edit(request: Request) -> Response:
        """An uploaded image edited toward a higher utility-aware score (needs --contrastive-model); the
        figures of the edit are in the ``X-Adcraft-Edit`` header (JSON)."""
        image, text, _ = await _upload_fields(request, need_product=False)
        run = served(request)
        model = run.contrastive_model
        if model is None:
            raise ModelMissing(CONTRASTIVE_MODEL_MISSING)

        def work() -> tuple[bytes, dict]:
            from adcraft.generate.edit import edit_image

            result = edit_image(model, decode_upload(image, run.config.max_image_pixels), text)
            return png_bytes(result.image), result.to_json()

        png, figures = await limiter(request).run(work)
        return Response(png, media_type="image/png",
                        headers={"X-Adcraft-Edit": json.dumps(figures, separators=(",", ":"), default=float)})

    @router.get("/creatives/{creative_id}.png", response_class=Response,
                responses={**PNG_RESPONSE, **error_responses(404, 422)})
    def creative_image(creative_id: Annotated[str, Path(json_schema_extra=CREATIVE_ID_SCHEMA)],
                       request: Request) -> Response:
        """A creative's PNG: a proposal of the run, a logged creative of the market or a live render."""
        found = served(request).creative_png(creative_id)
        headers = {"Cache-Control": "private, max-age=3600"}
        if isinstance(found, bytes):
            return Response(found, media_type="image/png", headers=headers)
        return FileResponse(found, media_type="image/png", headers=headers)

    return router


def serving_router(log: ImpressionLog) -> APIRouter:
    """``/v1/serve`` and ``/v1/feedback`` over ``log``, behind :func:`adcraft.serve.auth.require_token`."""
    router = APIRouter(prefix="/v1", dependencies=[Depends(require_token)], tags=["serving"],
                       responses=error_responses(401, 500))

    def serve_one(body: bytes) -> ServeResponse:
        payload = parse_json_body(ServeRequest, body)
        served = log.serve(payload.product_id, payload.context)
        return ServeResponse(
            impression_id=served.impression_id, run_id=served.run_id, product_id=served.product_id,
            creative_id=served.arm.creative_id, source=served.arm.source, elements=list(served.arm.elements),
            image_url=f"/v1/creatives/{served.arm.creative_id}.png", propensity=served.propensity,
            policy=served.policy, arms=[
                ServedArm(creative_id=s.arm.creative_id, source=s.arm.source, impressions=s.impressions,
                          clicks=s.clicks, propensity=s.propensity) for s in served.arms],
        )

    @router.post("/serve", response_model=ServeResponse, openapi_extra=json_body_schema(ServeRequest),
                 responses=error_responses(404, 408, 413, 422))
    async def serve(request: Request) -> ServeResponse:
        """A creative for one impression of a product, chosen among its approved creatives and its current one
        (Thompson sampling mixed with uniform, ``adcraft.serve.policy``), logged with its exact propensity
        before the answer is sent."""
        return await run_in_threadpool(serve_one, await read_json_body(request))

    def click_one(body: bytes) -> FeedbackResponse:
        payload = parse_json_body(FeedbackRequest, body)
        click = log.click(payload.impression_id)
        return FeedbackResponse(impression_id=click.impression_id, run_id=click.run_id,
                                product_id=click.product_id, creative_id=click.creative_id, click=1,
                                clicked_at=click.clicked_at.isoformat())

    @router.post("/feedback", response_model=FeedbackResponse, openapi_extra=json_body_schema(FeedbackRequest),
                 responses=error_responses(404, 408, 413, 422))
    async def feedback(request: Request) -> FeedbackResponse:
        """Record a click on a served impression (committed before the answer; repeating it changes nothing)."""
        return await run_in_threadpool(click_one, await read_json_body(request))

    return router


async def _upload_fields(request: Request, need_product: bool) -> tuple[bytes, str, str]:
    """(image bytes, text, product_id) of a multipart upload; ``InputError`` for a missing or bad field."""
    form = await request.form(max_files=1, max_fields=4)
    image = form.get("image")
    if not isinstance(image, UploadFile):
        raise InputError("multipart field 'image' is required: a PNG, JPEG or WebP file")
    text = form.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError("multipart field 'text' is required and may not be empty: the product's text")
    if len(text) > MAX_TEXT_CHARS:
        raise InputError(f"field 'text' is {len(text):,} characters long; at most {MAX_TEXT_CHARS:,} are accepted")
    product_id = form.get("product_id")
    if need_product and (not isinstance(product_id, str) or not product_id):
        raise InputError("multipart field 'product_id' is required: the product the image shows")
    if isinstance(product_id, str) and len(product_id) > MAX_ID_CHARS:
        raise InputError(f"field 'product_id' is longer than {MAX_ID_CHARS} characters")
    data = await image.read()
    return data, text.strip(), product_id if isinstance(product_id, str) else ""


def _score_response(result: ScoredCombination) -> ScoreResponse:
    return ScoreResponse(
        model="mil", product_id=result.product_id, elements=result.elements, context=result.context,
        predicted_ctr=result.predicted_ctr, logit=result.logit, baseline=result.baseline,
        attributions=[Attribution(slot=s, element_id=e, contribution=c) for s, e, c in result.attributions],
    )
