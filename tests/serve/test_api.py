"""The API's routes on a small optimize run: results, authentication and the startup check."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from adcraft.errors import InputError
from adcraft.rewards.contrastive import ImageScores
from adcraft.rewards.mil import MILModel
from adcraft.serve.app import create_app
from adcraft.serve.auth import LOGIN_COOKIE, LOGIN_POLICY, LOGIN_STYLE, Logins, check_startup, is_loopback, load_token
from adcraft.serve.config import ServeConfig
from adcraft.serve.state import ServedRun

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class BrightnessModel:
    """A stand-in contrastive model: brighter images score higher (enough to make the editor move)."""

    config = types.SimpleNamespace(alpha=1.0, beta=1.0)  # the weights the editor reads (US = utility + consistency)

    def score_parts(self, images, text):
        utility = np.array([np.asarray(im.convert("L"), dtype=float).mean() / 255 for im in images])
        consistency = np.full(len(images), 0.5)
        return ImageScores(score=utility + consistency, utility=utility, consistency=consistency)


def make_config(run_dir: Path, market_dir: Path, tmp: Path, **overrides) -> ServeConfig:
    settings = {"token": TOKEN, "database_url": f"sqlite:///{tmp / 'decisions.sqlite'}", **overrides}
    return ServeConfig(run_dir=run_dir, market_dir=market_dir, **settings)


@contextlib.contextmanager
def editing_client(served_run, tmp: Path, **overrides) -> Iterator[TestClient]:
    """A test client of an app over ``served_run`` whose editor uses :class:`BrightnessModel`."""
    config = make_config(*served_run, tmp, **overrides)
    served = ServedRun(config)
    served.contrastive_model = BrightnessModel()
    with TestClient(create_app(config, served), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def served(served_run, tmp_path_factory) -> ServedRun:
    run_dir, market_dir = served_run
    return ServedRun(make_config(run_dir, market_dir, tmp_path_factory.mktemp("db")))


@pytest.fixture(scope="module")
def client(served_run, served, tmp_path_factory) -> TestClient:
    run_dir, market_dir = served_run
    app = create_app(make_config(run_dir, market_dir, tmp_path_factory.mktemp("db")), served)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def first_proposal(run_dir: Path) -> tuple[str, list[str], str]:
    import pandas as pd

    row = pd.read_parquet(run_dir / "creatives.parquet").iloc[0]
    return row["product_id"], [str(e) for e in row["elements"]], row["image"]


def test_health_needs_no_token_and_lists_models(client):
    body = client.get("/health").json()
    assert body["ok"] is True and body["version"]
    assert body["models"] == {"reward": True, "combo": True, "ctr": False, "contrastive": False}


def test_score_matches_the_reward_model_and_attributions_add_up(client, served_run):
    run_dir, _ = served_run
    product, elements, _ = first_proposal(run_dir)
    response = client.post("/v1/score", json={"product_id": product, "elements": elements}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = MILModel.load(run_dir / "models" / "reward").predict([product], [elements])[0]
    assert body["predicted_ctr"] == pytest.approx(expected, rel=1e-5)
    assert [a["element_id"] for a in body["attributions"]] == elements
    total = body["baseline"] + sum(a["contribution"] for a in body["attributions"])
    assert total == pytest.approx(body["logit"], abs=1e-4)


def test_score_with_a_context_object_equals_its_text(client, served_run, served):
    run_dir, _ = served_run
    product, elements, _ = first_proposal(run_dir)
    context = served.reward.contexts[0][0]
    as_text = client.post("/v1/score", json={"product_id": product, "elements": elements, "context": context},
                          headers=AUTH).json()
    as_object = client.post("/v1/score", json={"product_id": product, "elements": elements,
                                               "context": json.loads(context)}, headers=AUTH).json()
    expected = served.reward.predict([product], [elements], [context])[0]
    assert as_text["predicted_ctr"] == pytest.approx(expected, rel=1e-5)
    assert as_object["predicted_ctr"] == pytest.approx(expected, rel=1e-5)


def test_repeated_scores_come_from_the_cache(client, served_run, served):
    run_dir, _ = served_run
    product, elements, _ = first_proposal(run_dir)
    client.post("/v1/score", json={"product_id": product, "elements": elements}, headers=AUTH)
    assert served.cached_score(product, elements, None) is not None


def test_propose_returns_k_distinct_rendered_creatives(client, served_run, served):
    product = served.market.products["product_id"].iloc[1]
    response = client.post("/v1/propose", json={"product_id": product, "k": 3}, headers=AUTH)
    assert response.status_code == 200, response.text
    creatives = response.json()["creatives"]
    assert len(creatives) == 3
    assert len({c["id"] for c in creatives}) == 3 and len({tuple(c["elements"]) for c in creatives}) == 3
    assert [c["rank"] for c in creatives] == [1, 2, 3]
    for creative in creatives:
        png = client.get(creative["image_url"], headers=AUTH)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(png.content))
        assert image.format == "PNG" and image.size == tuple(served.market.config.canvas)
        expected = served.reward.predict([product], [creative["elements"]])[0]
        assert creative["predicted_ctr"] == pytest.approx(expected, rel=1e-4)


def test_run_and_logged_creatives_are_served_from_their_files(client, served_run, served):
    run_dir, market_dir = served_run
    _, _, image = first_proposal(run_dir)
    response = client.get(f"/v1/creatives/{Path(image).stem}.png", headers=AUTH)
    assert response.status_code == 200 and response.content == (run_dir / image).read_bytes()
    logged = served.market.creatives.iloc[0]
    response = client.get(f"/v1/creatives/{logged['creative_id']}.png", headers=AUTH)
    assert response.status_code == 200 and response.content == (market_dir / logged["image"]).read_bytes()


def test_unknown_creative_is_404(client):
    response = client.get("/v1/creatives/no-such-creative.png", headers=AUTH)
    assert response.status_code == 404 and "no creative" in response.json()["message"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-0123456789"},
                                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}])
@pytest.mark.parametrize("method, path", [("post", "/v1/score"), ("post", "/v1/propose"), ("post", "/v1/edit"),
                                          ("get", "/v1/creatives/x.png"), ("get", "/docs"),
                                          ("get", "/openapi.json")])
def test_routes_refuse_a_missing_or_wrong_token(client, headers, method, path):
    response = getattr(client, method)(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["message"]


def test_a_browser_without_the_cookie_is_sent_to_the_login_form(client):
    client.cookies.clear()
    page = client.get("/", headers={"Accept": "text/html,application/xhtml+xml"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    api = client.get("/v1/review/products", headers={"Accept": "application/json"}, follow_redirects=False)
    assert api.status_code == 401


def test_cookie_login(client, served_run):
    run_dir, _ = served_run
    product, elements, _ = first_proposal(run_dir)
    form = client.get("/login")
    assert form.status_code == 200 and 'name="token"' in form.text
    client.cookies.clear()
    wrong = client.post("/login", data={"token": "not-the-token"}, follow_redirects=False)
    assert wrong.status_code == 401 and LOGIN_COOKIE not in wrong.cookies
    right = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=28800" in cookie
    try:
        response = client.post("/v1/score", json={"product_id": product, "elements": elements})
        assert response.status_code == 200
    finally:
        client.cookies.clear()
    assert client.post("/v1/score", json={"product_id": product, "elements": elements}).status_code == 401


def test_the_login_cookie_holds_a_random_id_not_the_token(client):
    client.cookies.clear()
    first = client.post("/login", data={"token": TOKEN}, follow_redirects=False).cookies[LOGIN_COOKIE]
    client.cookies.clear()
    second = client.post("/login", data={"token": TOKEN}, follow_redirects=False).cookies[LOGIN_COOKIE]
    client.cookies.clear()
    assert first != second and TOKEN not in first and len(first) >= 40
    forged = client.get("/v1/decisions", headers={"Cookie": f"{LOGIN_COOKIE}={TOKEN}"})
    assert forged.status_code == 401  # the token itself is no login id
    assert client.get("/v1/decisions", headers={"Cookie": f"{LOGIN_COOKIE}={first}"}).status_code == 200


def test_logout_ends_the_login_and_clears_the_cookie(client):
    client.cookies.clear()
    login_id = client.post("/login", data={"token": TOKEN}, follow_redirects=False).cookies[LOGIN_COOKIE]
    cookie = {"Cookie": f"{LOGIN_COOKIE}={login_id}"}
    assert client.get("/v1/decisions", headers=cookie).status_code == 200
    client.cookies.clear()
    out = client.post("/logout", headers=cookie, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert f'{LOGIN_COOKIE}=""' in out.headers["set-cookie"] and "max-age=0" in out.headers["set-cookie"].lower()
    assert client.get("/v1/decisions", headers=cookie).status_code == 401  # a copy of the cookie is worth nothing


def test_logins_expire_cannot_be_forged_and_stay_ended(monkeypatch):
    import adcraft.serve.auth as auth

    now = [1_000_000.0]
    monkeypatch.setattr(auth.time, "time", lambda: now[0])
    logins = Logins(TOKEN, ttl_s=60, max_ended=3)
    login = logins.start()
    nonce, expiry, signature = login.split(".")
    assert logins.is_valid(login) and int(expiry) == 1_000_060
    assert Logins(TOKEN, ttl_s=60).is_valid(login)  # a restarted server with the same token accepts it
    assert not Logins(TOKEN + "-new", ttl_s=60).is_valid(login)  # a new token ends every login
    other_last = "B" if signature.endswith("A") else "A"
    for forged in (f"{nonce}.{int(expiry) + 3600}.{signature}", f"x{nonce}.{expiry}.{signature}",
                   f"{nonce}.{expiry}.{signature[:-1]}{other_last}", f"{nonce}.{expiry}", "", None, "a.b.c",
                   "." * 200):
        assert not logins.is_valid(forged), forged
    now[0] += 61
    assert not logins.is_valid(login)
    logins = Logins(TOKEN, ttl_s=60, max_ended=3)
    ended = [logins.start() for _ in range(5)]
    for login in ended:
        logins.end(login)
    assert logins.ended_count() == 3 and not any(logins.is_valid(login) for login in ended[2:])


def test_pages_and_answers_carry_protective_headers(client):
    import base64
    import hashlib

    login = client.get("/login")
    policy = login.headers["content-security-policy"]
    assert policy == LOGIN_POLICY and "frame-ancestors 'none'" in policy and "script-src" not in policy
    style_hash = base64.b64encode(hashlib.sha256(LOGIN_STYLE.encode()).digest()).decode()
    assert f"<style>{LOGIN_STYLE}</style>" in login.text and f"'sha256-{style_hash}'" in policy
    assert "style=" not in login.text  # no inline style attribute, which the policy would block
    for response in (login, client.get("/health"), client.get("/v1/decisions", headers=AUTH),
                     client.get("/v1/nothing-here", headers=AUTH)):
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page = client.get("/", headers=AUTH)
    assert page.headers["content-security-policy"].count("frame-ancestors") == 1
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_docs_page_is_off_by_default_and_the_schema_is_served(client):
    off = client.get("/docs", headers=AUTH)
    assert off.status_code == 404 and "--docs" in off.json()["message"]
    schema = client.get("/openapi.json", headers=AUTH).json()
    paths = schema["paths"]
    assert {"/v1/score", "/v1/propose", "/v1/edit", "/v1/creatives/{creative_id}.png", "/health"} <= set(paths)
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    error = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path == "/health":
                assert "security" not in operation
                continue
            assert operation["security"] == [{"HTTPBearer": []}], (method, path)
            errors = {status: answer for status, answer in operation["responses"].items() if status >= "400"}
            assert {"401", "422", "500"} <= set(errors), (method, path)
            assert all(answer["content"]["application/json"]["schema"] == error for answer in errors.values())


def test_docs_page_when_turned_on(served_run, served, tmp_path):
    run_dir, market_dir = served_run
    client = TestClient(create_app(make_config(run_dir, market_dir, tmp_path, docs=True), served))
    assert client.get("/docs").status_code == 401
    page = client.get("/docs", headers=AUTH)
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_requests_get_an_id_and_one_json_log_line(client, caplog):
    with caplog.at_level(logging.INFO, logger="adcraft.serve.access"):
        response = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "adcraft.serve.access"]
    assert lines[-1]["path"] == "/health" and lines[-1]["status"] == 200 and lines[-1]["request_id"] == "abc-123"
    assert lines[-1]["method"] == "GET" and lines[-1]["ms"] >= 0


def test_edit_without_a_contrastive_model_says_what_to_train(client):
    png = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(png, format="PNG")
    response = client.post("/v1/edit", files={"image": ("a.png", png.getvalue(), "image/png")},
                           data={"text": "a shoe"}, headers=AUTH)
    assert response.status_code == 409
    assert "adcraft train contrastive" in response.json()["message"]
    response = client.post("/v1/score", files={"image": ("a.png", png.getvalue(), "image/png")},
                           data={"text": "a shoe", "product_id": "p0000"}, headers=AUTH)
    assert response.status_code == 409 and "adcraft train ctr" in response.json()["message"]


def test_edit_returns_a_png_that_scores_no_lower(served_run, tmp_path):
    market_dir = served_run[1]
    with editing_client(served_run, tmp_path) as client:
        photo = (market_dir / client.app.state.served.market.products["image"].iloc[0]).read_bytes()
        response = client.post("/v1/edit", files={"image": ("p.png", photo, "image/png")},
                               data={"text": "a shoe"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).format == "PNG"
    figures = json.loads(response.headers["x-adcraft-edit"])
    assert figures["score_after"] >= figures["score_before"]


def test_upload_scored_by_a_text_only_ctr_model(served_run, tmp_path):
    from adcraft.learning.training import TrainConfig
    from adcraft.rewards.ctr import CTRConfig, CTRTrainer
    from adcraft.rewards.encoding import EncodingConfig

    run_dir, market_dir = served_run
    served = ServedRun(make_config(run_dir, market_dir, tmp_path))
    served.ctr_model = CTRTrainer(CTRConfig(encoding=EncodingConfig(text_backbone="tiny", embedding_dim=8), hidden=8,
                                            train=TrainConfig(epochs=1, batch_size=1024))).fit(served.market)
    client = TestClient(create_app(make_config(run_dir, market_dir, tmp_path), served))
    png = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(png, format="PNG")
    product = served.market.products["product_id"].iloc[0]
    scores = []
    for text in ("Minimal sneaker", "Minimal sneaker for work and weekend"):
        response = client.post("/v1/score", files={"image": ("a.png", png.getvalue(), "image/png")},
                               data={"text": text, "product_id": product}, headers=AUTH)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == "ctr" and body["image_used"] is False and 0 < body["predicted_ctr"] < 1
        assert len(body["elements"]) == len(served.slots)
        scores.append(body["predicted_ctr"])
    assert scores[0] != scores[1]  # the uploaded text is read


def test_insecure_local_app_needs_no_token(served_run, served, tmp_path):
    run_dir, market_dir = served_run
    config = make_config(run_dir, market_dir, tmp_path, token=None, insecure_local=True)
    client = TestClient(create_app(config, served))
    product, elements, _ = first_proposal(run_dir)
    assert client.post("/v1/score", json={"product_id": product, "elements": elements}).status_code == 200


@pytest.mark.parametrize("host, token, insecure, refused", [
    ("0.0.0.0", None, False, "no API token"),
    ("127.0.0.1", None, False, "no API token"),
    ("0.0.0.0", None, True, "loopback"),
    ("192.168.1.5", TOKEN, True, "loopback"),
    ("0.0.0.0", "short", False, "at least"),
    ("127.0.0.1", None, True, None),
    ("localhost", None, True, None),
    ("::1", None, True, None),
    ("0.0.0.0", TOKEN, False, None),
])
def test_startup_check(tmp_path, host, token, insecure, refused):
    config = ServeConfig(run_dir=tmp_path, market_dir=tmp_path, host=host, token=token, insecure_local=insecure)
    if refused is None:
        check_startup(config)
    else:
        with pytest.raises(InputError, match=refused):
            check_startup(config)


def test_loopback_and_token_sources(tmp_path):
    assert is_loopback("127.0.0.2") and is_loopback("[::1]") and not is_loopback("10.0.0.1")
    assert not is_loopback("example.org")
    file = tmp_path / "token"
    file.write_text(f"{TOKEN}\n")
    assert load_token(file, {}) == TOKEN
    assert load_token(None, {"ADCRAFT_API_TOKEN": " abc "}) == "abc"
    assert load_token(None, {}) is None
    with pytest.raises(InputError, match="does not exist"):
        load_token(tmp_path / "missing", {})


def test_the_server_keeps_idle_connections_longer_than_clients_do(tmp_path):
    import httpx

    from adcraft.serve.app import uvicorn_settings

    # a client reusing a connection the server is closing at that moment sees a reset: the client must give up
    # on an idle connection first (httpx's default expiry; uvicorn's own default of 5 s ties with it)
    settings = uvicorn_settings(ServeConfig(run_dir=tmp_path, market_dir=tmp_path))
    assert settings["timeout_keep_alive"] > httpx.Limits().keepalive_expiry
    assert uvicorn_settings(ServeConfig(run_dir=tmp_path, market_dir=tmp_path, keep_alive_s=0.2))[
        "timeout_keep_alive"] == 1  # uvicorn counts whole seconds
    with pytest.raises(InputError, match="keep_alive_s must be positive"):
        ServeConfig(run_dir=tmp_path, market_dir=tmp_path, keep_alive_s=0)


def test_default_database_is_in_the_run_folder(tmp_path):
    config = ServeConfig(run_dir=tmp_path / "run", market_dir=tmp_path)
    assert config.database_url == f"sqlite:///{(tmp_path / 'run' / 'decisions.sqlite').resolve()}"


def test_live_renders_use_the_renderer_the_run_recorded(served_run, tmp_path):
    import json

    from adcraft.serve.state import run_render_config

    run_dir, _ = served_run
    assert run_render_config(run_dir).backend == "compositor"
    copy = tmp_path / "run"
    copy.mkdir()
    record = json.loads((run_dir / "run.json").read_text())
    record["config"]["render"] = {"backend": "diffusion", "diffusion": {"weights_dir": str(tmp_path / "none")}}
    (copy / "run.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="none"):
        run_render_config(copy)


def test_a_method_the_path_lacks_is_405_listing_every_method_it_has(client):
    response = client.delete("/v1/decisions", headers=AUTH)  # GET and POST are two routes of the same path
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
