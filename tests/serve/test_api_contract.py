"""The API against its own OpenAPI schema (schemathesis, in process): every answer is documented, with its
content type and body schema, schema-valid requests are not refused as malformed, invalid ones are refused."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

schemathesis = pytest.importorskip("schemathesis")  # in the test extra
from schemathesis import GenerationMode  # noqa: E402

from adcraft.serve.app import create_app  # noqa: E402

from .test_api import AUTH, make_config  # noqa: E402

pytestmark = pytest.mark.slow

OPERATIONS = [
    "GET /health", "POST /v1/score", "POST /v1/propose", "POST /v1/edit", "GET /v1/creatives/{creative_id}.png",
    "GET /v1/review/products", "POST /v1/decisions", "GET /v1/decisions", "GET /v1/decisions/export",
    "GET /v1/decisions/bundle",
    "POST /v1/serve", "POST /v1/feedback",
]
# Derandomized with a bounded number of examples: the same requests on every run, in well under a minute.
CONTRACT = settings(max_examples=25, derandomize=True, database=None, deadline=None,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def api_schema(served_run, tmp_path_factory):
    run_dir, market_dir = served_run
    app = create_app(make_config(run_dir, market_dir, tmp_path_factory.mktemp("db")))
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH)


def operation(api_schema, label: str):
    method, path = label.split(" ", 1)
    return api_schema[path][method]


def test_every_operation_is_covered(api_schema):
    found = sorted(result.ok().label for result in api_schema.get_all_operations())
    assert found == sorted(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_valid_requests_keep_the_contract(api_schema, label):
    @CONTRACT
    @given(case=operation(api_schema, label).as_strategy(GenerationMode.POSITIVE))
    def check(case):
        case.call_and_validate(headers=AUTH)

    check()


@pytest.mark.parametrize("label", [label for label in OPERATIONS if label not in ("GET /health",
                                                                                 "GET /v1/decisions/export")])
def test_invalid_requests_keep_the_contract(api_schema, label):
    @CONTRACT
    @given(case=operation(api_schema, label).as_strategy(GenerationMode.NEGATIVE))
    def check(case):
        case.call_and_validate(headers=AUTH)

    check()
