"""The review router in a bare FastAPI app: the page, its JSON endpoints and the export."""

from __future__ import annotations

import io
import json
import re
from importlib.resources import files
from pathlib import Path

import pandas as pd
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from adcraft.serve.decisions import EXPORT_COLUMNS, sqlite_url
from adcraft.serve.review import build_review_router
from adcraft.serve.run_view import RunView


def allow_all() -> None:
    """No-op stand-in for the server's token check."""


@pytest.fixture
def client(served_run: tuple[Path, Path], tmp_path: Path):
    app = FastAPI()
    router = build_review_router(RunView.load(*served_run), sqlite_url(tmp_path / "decisions.sqlite"), allow_all)
    app.include_router(router)
    with TestClient(app) as client:
        yield client


def _products(client: TestClient) -> list[dict]:
    response = client.get("/v1/review/products", params={"limit": 100})
    assert response.status_code == 200
    return response.json()["products"]


def test_the_page_and_its_assets_are_served_with_a_strict_policy(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert 'src="review/review.js"' in page.text and 'href="review/review.css"' in page.text
    assert client.get("/review/review.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/review/review.css").headers["content-type"].startswith("text/css")
    assert client.get("/review/secret.py").status_code == 404


def test_static_files_reach_no_other_origin_and_never_parse_data_as_markup() -> None:
    static = files("adcraft.serve").joinpath("static")
    for name in ("review.html", "review.js", "review.css"):
        text = static.joinpath(name).read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE), name
    script = static.joinpath("review.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


def test_products_are_paged_with_current_creative_and_proposals(client: TestClient, served_run) -> None:
    run_dir, _ = served_run
    expected = pd.read_parquet(run_dir / "products.parquet")["product_id"].tolist()
    first = client.get("/v1/review/products", params={"offset": 0, "limit": 2}).json()
    rest = client.get("/v1/review/products", params={"offset": 2, "limit": 100}).json()
    assert first["total"] == len(expected) and first["limit"] == 2
    assert [p["product_id"] for p in first["products"] + rest["products"]] == expected
    product = first["products"][0]
    assert product["current"]["image_id"] == product["current"]["creative_id"]
    assert [p["rank"] for p in product["proposals"]] == sorted(p["rank"] for p in product["proposals"])
    top = product["proposals"][0]
    assert top["image_id"] == Path(top["image"]).stem and top["decision"] is None
    assert top["estimated_lift"]["low"] <= top["estimated_lift"]["lift"] <= top["estimated_lift"]["high"]
    assert all(c["slot"] in first["slots"] and isinstance(c["credit"], float) for c in top["changes"])


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"offset": "x"}])
def test_bad_paging_is_refused(client: TestClient, params: dict) -> None:
    response = client.get("/v1/review/products", params=params)
    assert response.status_code == 422 and response.json()["detail"]


def test_a_decision_is_stored_and_shown_with_its_product(client: TestClient) -> None:
    proposal = _products(client)[1]["proposals"][0]
    body = {"product_id": proposal["product_id"], "creative_id": proposal["creative_id"], "decision": "approve",
            "note": "<img src=x onerror=alert(1)>"}
    response = client.post("/v1/decisions", json=body)
    assert response.status_code == 201
    saved = response.json()
    assert saved["decision"] == "approve" and saved["note"] == body["note"] and saved["rank"] == proposal["rank"]
    assert saved["decided_at"].endswith("+00:00")
    shown = _products(client)[1]["proposals"][0]["decision"]
    assert shown == saved
    assert client.get("/v1/decisions").json()["decisions"] == [saved]
    client.post("/v1/decisions", json={**body, "decision": "reject", "note": ""})
    assert [d["decision"] for d in client.get("/v1/decisions").json()["decisions"]] == ["reject"]
    history = client.get("/v1/decisions", params={"history": True}).json()["decisions"]
    assert [d["decision"] for d in history] == ["reject", "approve"]
    other = _products(client)[0]["product_id"]
    assert client.get("/v1/decisions", params={"product_id": other}).json()["decisions"] == []


@pytest.mark.parametrize("change, status, message", [
    ({"decision": "maybe"}, 422, "approve"),
    ({"note": "n" * 2001}, 422, "2000"),
    ({"decision": None}, 422, "decision"),
    ({"surprise": 1}, 422, "surprise"),
    ({"product_id": ""}, 422, "product_id"),
    ({"product_id": "no-such-product"}, 400, "no product"),
    ({"creative_id": "no-such-creative"}, 400, "no proposed creative"),
])
def test_bad_payloads_are_refused_with_a_message_and_store_nothing(client: TestClient, change: dict, status: int,
                                                                   message: str) -> None:
    proposal = _products(client)[0]["proposals"][0]
    body = {"product_id": proposal["product_id"], "creative_id": proposal["creative_id"], "decision": "approve",
            "note": ""}
    body = {key: value for key, value in {**body, **change}.items() if value is not None}
    response = client.post("/v1/decisions", json=body)
    assert response.status_code == status
    assert message in json.dumps(response.json()["detail"])
    assert client.get("/v1/decisions", params={"history": True}).json()["decisions"] == []


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    response = client.post("/v1/decisions", content="product_id=p&decision=approve",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 422
    assert client.get("/v1/decisions").json()["decisions"] == []


def _decide(client: TestClient) -> tuple[dict, dict]:
    products = _products(client)
    approved, rejected = products[0]["proposals"][0], products[1]["proposals"][0]
    for proposal, decision, note in ((approved, "approve", "=HYPERLINK(\"x\")"), (rejected, "reject", "no")):
        response = client.post("/v1/decisions", json={"product_id": proposal["product_id"], "decision": decision,
                                                      "creative_id": proposal["creative_id"], "note": note})
        assert response.status_code == 201
    return approved, rejected


def test_export_as_csv_holds_the_approved_creatives_only(client: TestClient) -> None:
    approved, _ = _decide(client)
    response = client.get("/v1/decisions/export", params={"format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    frame = pd.read_csv(io.StringIO(response.text))
    assert list(frame.columns) == list(EXPORT_COLUMNS)
    assert frame["creative_id"].tolist() == [approved["creative_id"]]
    assert json.loads(frame.loc[0, "elements"]) == approved["elements"]
    assert frame.loc[0, "image"] == approved["image"] and frame.loc[0, "rank"] == approved["rank"]
    assert frame.loc[0, "note"] == "'=HYPERLINK(\"x\")"  # a spreadsheet shows it, never runs it


def test_export_as_parquet_keeps_types(client: TestClient) -> None:
    approved, _ = _decide(client)
    response = client.get("/v1/decisions/export", params={"format": "parquet"})
    assert response.status_code == 200
    frame = pd.read_parquet(io.BytesIO(response.content))
    assert list(frame.columns) == list(EXPORT_COLUMNS)
    assert frame["creative_id"].tolist() == [approved["creative_id"]]
    assert list(frame.loc[0, "elements"]) == approved["elements"]
    assert frame.loc[0, "note"] == "=HYPERLINK(\"x\")"
    assert str(frame["decided_at"].dt.tz) == "UTC"
    assert frame.loc[0, "predicted_ctr"] == pytest.approx(approved["predicted_ctr"])


def test_an_unknown_export_format_is_refused(client: TestClient) -> None:
    response = client.get("/v1/decisions/export", params={"format": "xlsx"})
    assert response.status_code == 422 and "csv" in json.dumps(response.json()["detail"])


def test_every_route_depends_on_the_given_token_check(served_run, tmp_path: Path) -> None:
    def refuse() -> None:
        raise HTTPException(401, "no token")

    app = FastAPI()
    router = build_review_router(RunView.load(*served_run), sqlite_url(tmp_path / "d.sqlite"), refuse)
    app.include_router(router)
    with TestClient(app) as client:
        for route in router.routes:
            path = route.path.replace("{name}", "review.js")
            for method in route.methods:
                response = client.request(method, path, json={})
                assert response.status_code == 401, (method, path)
