"""Request and response bodies of the HTTP API (pydantic models; the OpenAPI page at /docs shows them).

Requests are strict: unknown fields, wrong types and oversized strings or lists are refused with 422
before any model runs.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_ID_CHARS = 200
MAX_ELEMENTS = 64
MAX_CONTEXT_CHARS = 2000
MAX_CONTEXT_KEYS = 32
MAX_TEXT_CHARS = 2000

Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
ContextValue = Annotated[str, StringConstraints(max_length=200)] | int | float | bool


class StrictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ScoreRequest(StrictRequest):
    """A combination to score: one element id per slot of the market, in its slot order."""

    product_id: Identifier
    elements: Annotated[list[Identifier], Field(min_length=1, max_length=MAX_ELEMENTS)]
    context: (
        Annotated[str, StringConstraints(max_length=MAX_CONTEXT_CHARS)]
        | Annotated[dict[Annotated[str, StringConstraints(max_length=100)], ContextValue],
                    Field(max_length=MAX_CONTEXT_KEYS)]
        | None
    ) = Field(default=None, description="The traffic context as in the click log (a JSON object or its text); "
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
    model: str = Field(description="'mil' (combination) or 'ctr' (uploaded image and text)")
    product_id: str
    elements: list[str]
    context: str | None = None
    predicted_ctr: float
    logit: float | None = None
    baseline: float | None = Field(default=None, description="logit of the empty bag: baseline + contributions "
                                                            "= logit")
    attributions: list[Attribution] = Field(default_factory=list)
    image_used: bool | None = Field(default=None, description="whether the CTR model read the uploaded image")


class ProposeRequest(StrictRequest):
    product_id: Identifier
    k: int = Field(default=3, ge=1, description="creatives to propose (at most the server's max_k)")
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


class HealthResponse(BaseModel):
    ok: bool
    version: str
    models: dict[str, bool]


class ErrorResponse(BaseModel):
    error: str
    message: str
    detail: object = None
