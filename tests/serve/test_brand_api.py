"""The API under a brand file: a combination the brand refuses answers 422 with the reason, proposals keep to it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from adcraft.errors import InputError
from adcraft.serve.app import create_app
from adcraft.serve.config import ServeConfig
from adcraft.serve.state import ServedRun

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def first_proposal(run_dir: Path) -> tuple[str, list[str]]:
    row = pd.read_parquet(run_dir / "creatives.parquet").iloc[0]
    return row["product_id"], [str(e) for e in row["elements"]]


@pytest.fixture(scope="module")
def branded(served_run, tmp_path_factory):
    """A client of the served run whose brand forbids the background of its first proposal."""
    run_dir, market_dir = served_run
    tmp = tmp_path_factory.mktemp("brand")
    product, elements = first_proposal(run_dir)
    brand = tmp / "brand.yaml"
    brand.write_text(f"forbidden_elements: [{elements[2]}]\n")
    config = ServeConfig(run_dir=run_dir, market_dir=market_dir, token=TOKEN, brand_file=brand,
                         database_url=f"sqlite:///{tmp / 'decisions.sqlite'}")
    with TestClient(create_app(config, ServedRun(config)), raise_server_exceptions=False) as client:
        yield client, product, elements


def test_scoring_a_combination_the_brand_refuses_answers_422_with_the_reason(branded):
    client, product, elements = branded
    response = client.post("/v1/score", json={"product_id": product, "elements": elements}, headers=AUTH)
    assert response.status_code == 422
    assert "forbidden_elements" in response.json()["message"] and elements[2] in response.json()["message"]


def test_proposals_keep_to_the_brand(branded):
    client, product, elements = branded
    response = client.post("/v1/propose", json={"product_id": product, "k": 3}, headers=AUTH)
    assert response.status_code == 200, response.text
    creatives = response.json()["creatives"]
    assert creatives and all(elements[2] not in c["elements"] for c in creatives)
    assert [c["rank"] for c in creatives] == list(range(1, len(creatives) + 1))
    for creative in creatives:  # each one scores: the brand allows it
        scored = client.post("/v1/score", json={"product_id": product, "elements": creative["elements"]},
                             headers=AUTH)
        assert scored.status_code == 200, scored.text


def test_the_schema_documents_422_for_scoring_and_proposing(branded):
    client, _, _ = branded
    paths = client.get("/openapi.json", headers=AUTH).json()["paths"]
    for route in ("/v1/score", "/v1/propose"):
        assert "brand" in paths[route]["post"]["responses"]["422"]["description"]


def test_a_bad_brand_file_stops_the_server_before_it_starts(served_run, tmp_path):
    run_dir, market_dir = served_run
    brand = tmp_path / "brand.yaml"
    brand.write_text("forbidden_elements: [no-such-element]\n")
    with pytest.raises(InputError, match="does not have"):
        ServedRun(ServeConfig(run_dir=run_dir, market_dir=market_dir, token=TOKEN, brand_file=brand))
