"""Request and response bodies of the HTTP API (pydantic models; the OpenAPI page at /docs shows them).

Requests are strict: unknown fields, wrong types and oversized strings, lists or objects are refused with 422
before any model runs. Sizes are checked before items are (``BoundedRequest``, ``at_most_keys``), so a body of
a million keys costs one error, not a million.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from pydantic_core import PydanticCustomError

MAX_ID_CHARS = 200
MAX_ELEMENTS = 64
MAX_CONTEXT_CHARS = 2000
MAX_CONTEXT_KEYS = 32
MAX_TEXT_CHARS = 2000
MAX_UNKNOWN_KEYS = 16
# No valid JSON request comes near this (the largest, a score of 64 elements of 200 characters each written
# as \u escapes, is under 160 KiB); a larger body is refused before it is parsed, since parsing holds the
# interpreter lock (and so every other request) for as long as it takes.
MAX_JSON_BODY_BYTES = 256 * 1024

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
ContextValue = Annotated[str, StringConstraints(max_length=200)] | int | float | bool
RequestModel = TypeVar("RequestModel", bound=BaseModel)


def _too_many_keys(value: object, limit: int, what: str) -> None:
    if isinstance(value, dict) and len(value) > limit:
        raise PydanticCustomError("too_many_keys", "{what} has {count} keys; at most {limit} are accepted",
                                  {"what": what, "count": len(value), "limit": limit})


def at_most_keys(limit: int, what: str) -> BeforeValidator:
    """Refuse an object of more than ``limit`` keys before its keys and values are validated one by one."""

    def check(value: Any) -> Any:
        _too_many_keys(value, limit, what)
        return value

    return BeforeValidator(check)


class BoundedRequest(BaseModel):
    """A request body with no unknown field, each named in the answer; a body of more than
    ``MAX_UNKNOWN_KEYS`` keys beyond the model's fields is refused as a whole (one error, whatever its size)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_more_keys_than_fields(cls, data: Any) -> Any:
        _too_many_keys(data, len(cls.model_fields) + MAX_UNKNOWN_KEYS, "the body")
        return data


class StrictRequest(BoundedRequest):
    model_config = ConfigDict(extra="forbid", strict=True)


async def read_json_body(request: Request) -> bytes:
    """The body of a JSON request, read up to ``MAX_JSON_BODY_BYTES`` (413 beyond, the rest left unread)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY_BYTES:
            raise HTTPException(413, f"a JSON request body is at most {MAX_JSON_BODY_BYTES:,} bytes; no valid "
                                     "request is larger", headers={"Connection": "close"})
    return bytes(body)


def parse_json_body(model: type[RequestModel], body: bytes) -> RequestModel:
    """``body`` (JSON) validated as ``model``; ``RequestValidationError`` (422) naming each problem under ``body``.

    Called on a worker thread by the routes, so that a large body is parsed off the event loop.
    """
    if not body.strip():
        raise RequestValidationError([{"loc": ("body",), "msg": "the request body is empty: send a JSON object",
                                       "type": "missing"}])
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def json_body_schema(model: type[BaseModel], **properties: dict[str, Any]) -> dict:
    """The ``openapi_extra`` of a route that reads ``model`` as its JSON body itself (``parse_json_body``);
    ``properties`` adds to the schema of the named fields (limits that depend on the server's settings)."""
    schema = model.model_json_schema()
    for name, extra in properties.items():
        schema["properties"][name] = {**schema["properties"][name], **extra}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class ScoreRequest(StrictRequest):
    """A combination to score: one element id per slot of the market, in its slot order."""

    product_id: Identifier
    elements: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_ELEMENTS)]
    context: Annotated[
        Annotated[str, StringConstraints(max_length=MAX_CONTEXT_CHARS)]
        | Annotated[dict[Annotated[str, StringConstraints(max_length=100)], ContextValue],
                    Field(max_length=MAX_CONTEXT_KEYS)]
        | None,
        at_most_keys(MAX_CONTEXT_KEYS, "context"),
    ] = Field(default=None, description="The traffic context as in the click log (a JSON object or its text); "
                                        "omitted: the prediction is averaged over the log's contexts.")

    def context_text(self) -> str | None:
        """The context as the click log spells it (a JSON object's text), or None."""
        if self.context is None or isinstance(self.context, str):
            return self.context
        return json.dumps(self.context)


class Attribution(BaseModel):
    slot: str
    element_id: str
    contribution: float = Field(description="Shapley value of the element in the bag's logit")


class ScoreResponse(BaseModel):
    model: str = Field(description="'mil' (combination) or the upload model's kind, 'ctr' or 'pairwise' "
                                   "(uploaded image and text)")
    product_id: str
    elements: list[str]
    context: str | None = None
    predicted_ctr: float
    logit: float | None = None
    baseline: float | None = Field(default=None, description="logit of the empty bag: baseline + contributions "
                                                            "= logit")
    attributions: list[Attribution] = Field(default_factory=list)
    image_used: bool | None = Field(default=None, description="whether the CTR model read the uploaded image")


def _whole_number(value: Any) -> Any:
    """A float with no fraction (``3.0``) as the integer it is: JSON Schema's ``integer`` includes it."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class ProposeRequest(StrictRequest):
    product_id: Identifier
    k: Annotated[int, BeforeValidator(_whole_number)] = Field(
        default=3, ge=1, description="creatives to propose (at most the server's max_k, 422 beyond)")
    context: Annotated[str, StringConstraints(max_length=MAX_CONTEXT_CHARS)] | None = None


class ProposedCreative(BaseModel):
    id: str
    rank: int
    elements: list[str]
    predicted_ctr: float
    image_url: str
    product_bbox: list[int]


class ProposeResponse(BaseModel):
    product_id: str
    k: int
    creatives: list[ProposedCreative]


ContextObject = Annotated[
    Annotated[dict[Annotated[str, StringConstraints(max_length=100)], ContextValue], Field(max_length=MAX_CONTEXT_KEYS)]
    | None,
    at_most_keys(MAX_CONTEXT_KEYS, "context"),
]


class ServeRequest(StrictRequest):
    """An impression to fill: the product shown and, optionally, its traffic context (logged with it)."""

    product_id: Identifier
    context: ContextObject = Field(default=None, description="The traffic context as a JSON object (user segment, "
                                                             "device, ...); it is logged with the impression.")


class ServedArm(BaseModel):
    creative_id: str
    source: str = Field(description="'current' (the creative the product shows now) or 'approved' (by a reviewer)")
    impressions: int = Field(description="impressions this run served of the creative before this one")
    clicks: int
    propensity: float = Field(description="probability the policy gave the creative for this impression")


class ServeResponse(BaseModel):
    impression_id: str = Field(description="send it to /v1/feedback when the impression is clicked")
    run_id: str
    product_id: str
    creative_id: str
    source: str
    elements: list[str]
    image_url: str
    propensity: float = Field(description="the exact probability with which this creative was chosen (logged)")
    policy: str
    arms: list[ServedArm] = Field(description="every creative the policy chose among, with its propensity")


class FeedbackRequest(StrictRequest):
    """A click on a served impression."""

    impression_id: Identifier


class FeedbackResponse(BaseModel):
    impression_id: str
    run_id: str
    product_id: str
    creative_id: str
    click: int = Field(description="always 1: the impression is recorded as clicked")
    clicked_at: str = Field(description="when the first click was recorded (ISO 8601, UTC)")


class HealthResponse(BaseModel):
    ok: bool
    version: str
    models: dict[str, bool]


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: str = Field(description="the HTTP status in words, e.g. 'not_found'")
    message: str = Field(description="what went wrong and what to do about it")
    detail: object = Field(default=None, description="the message again, or the validation problems (at most 10)")


ERRORS = {
    400: "a multipart form the server cannot read (too many fields or files)",
    401: "missing or wrong API token",
    404: "no such product, creative, impression or route, or a product with nothing to serve",
    408: "the request body did not arrive in time",
    409: "the route needs a model the server was not started with",
    413: "the request body is over the limit",
    415: "a body of a content type the route does not take",
    422: "a request the server cannot use, or a combination the brand guardrails refuse: the message names each "
         "problem",
    500: "an unexpected failure; the message has the request id of the server log's entry",
    503: "the server is busy; retry after Retry-After seconds",
    504: "the work took longer than the request timeout",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of the given error statuses, each an ``ErrorResponse``."""
    return {status: {"model": ErrorResponse, "description": ERRORS[status]} for status in statuses}
