"""Fuzzing every request body of the API: whatever comes in, the answer is never a server error."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adcraft.serve.auth import LOGIN_COOKIE
from adcraft.serve.schemas import ProposeRequest, ScoreRequest

from .test_api import AUTH, editing_client
from .test_api_bad_inputs import GOOD, png

# Derandomized: the same examples on every run, so a failure reproduces (and CI does not flip on a new draw).
QUIET = {"deadline": None, "database": None, "derandomize": True,
         "suppress_health_check": [HealthCheck.function_scoped_fixture]}
FUZZ = settings(max_examples=60, **QUIET)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
ids = st.one_of(st.sampled_from(["p0000", "p0001", "p0004", ""]), st.text(max_size=30))
valid_ids = st.one_of(st.sampled_from(["p0000", "p0001", "p0004"]), st.text(min_size=1, max_size=30))
valid_element_ids = st.one_of(st.sampled_from(GOOD + ["t_p0001_0", "bg01"]), st.text(min_size=1, max_size=20))
element_ids = st.one_of(st.sampled_from(GOOD + ["t_p0001_0", "bg01", "h00", "tc04"]), st.text(max_size=20))
score_bodies = st.one_of(
    st.builds(dict, product_id=ids, elements=st.lists(element_ids, max_size=8)),
    st.builds(dict, product_id=ids, elements=st.lists(element_ids, min_size=6, max_size=6),
              context=st.one_of(st.none(), st.text(max_size=50), st.dictionaries(st.text(max_size=8),
                                                                                  st.text(max_size=8), max_size=3))),
    st.builds(lambda body: body.model_dump(), st.builds(ScoreRequest, product_id=valid_ids,
                                                        elements=st.lists(valid_element_ids, min_size=1, max_size=7))),
    st.dictionaries(st.sampled_from(["product_id", "elements", "context", "k", "extra"]), json_values),
    json_values,
)
propose_bodies = st.one_of(
    st.builds(dict, product_id=ids, k=st.one_of(st.integers(-5, 4), st.integers(), st.text(),
                                                st.floats(allow_nan=False, allow_infinity=False))),
    st.builds(lambda body: body.model_dump(), st.builds(ProposeRequest, product_id=valid_ids, k=st.integers(1, 3))),
    st.dictionaries(st.sampled_from(["product_id", "k", "context", "elements"]), json_values),
    json_values,
)
uploads = st.fixed_dictionaries({
    "image": st.one_of(st.binary(max_size=300), st.just(png()), st.builds(lambda n: png()[:n], st.integers(0, 200))),
    "text": st.text(max_size=60),
    "product_id": ids,
})


@pytest.fixture(scope="module")
def client(served_run, tmp_path_factory) -> TestClient:
    with editing_client(served_run, tmp_path_factory.mktemp("db"), max_image_pixels=100_000) as test_client:
        yield test_client


def assert_handled(response) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400 and response.headers["content-type"] == "application/json":
        assert isinstance(response.json()["message"], str)


@FUZZ
@given(body=score_bodies)
def test_score_json(client, body):
    assert_handled(client.post("/v1/score", json=body, headers=AUTH))


@FUZZ
@given(body=propose_bodies)
def test_propose_json(client, body):
    assert_handled(client.post("/v1/propose", json=body, headers=AUTH))


@pytest.mark.parametrize("raw", [b'{"product_id": "p0000", "k": Infinity}', b'{"product_id": NaN, "k": 1}',
                                 b'{"product_id": "p0000", "elements": [-Infinity]}', b'{"k": 1e999}'])
def test_non_standard_json_numbers_are_refused(client, raw):
    for path in ("/v1/score", "/v1/propose"):
        response = client.post(path, content=raw, headers={**AUTH, "Content-Type": "application/json"})
        assert 400 <= response.status_code < 500
        assert_handled(response)


@settings(max_examples=25, **QUIET)
@given(raw=st.binary(max_size=200), kind=st.sampled_from(["application/json", "text/plain", "multipart/form-data",
                                                          "multipart/form-data; boundary=x", ""]))
def test_raw_bodies(client, raw, kind):
    for path in ("/v1/score", "/v1/propose", "/v1/edit", "/login"):
        assert_handled(client.post(path, content=raw, headers={**AUTH, "Content-Type": kind}))


@settings(max_examples=30, **QUIET)
@given(upload=uploads, path=st.sampled_from(["/v1/score", "/v1/edit"]))
def test_multipart_uploads(client, upload, path):
    files = {"image": ("upload.png", upload["image"], "image/png")}
    data = {"text": upload["text"], "product_id": upload["product_id"]}
    assert_handled(client.post(path, files=files, data=data, headers=AUTH))


@FUZZ
@given(creative_id=st.text(max_size=60))
def test_creative_ids(client, creative_id):
    from urllib.parse import quote

    assert_handled(client.get(f"/v1/creatives/{quote(creative_id, safe='')}.png", headers=AUTH))


@FUZZ
@given(token=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
       header=st.sampled_from(["Authorization", "Cookie"]))
def test_tokens(client, token, header):
    value = f"Bearer {token}" if header == "Authorization" else f"{LOGIN_COOKIE}={token}"
    response = client.post("/v1/score", json={"product_id": "p0000", "elements": GOOD}, headers={header: value})
    assert response.status_code == 401
