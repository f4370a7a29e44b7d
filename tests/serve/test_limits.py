"""What one request may cost: body size, image pixels, concurrency, time, and which ids may name a file."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import struct
import threading
import time
import zlib
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFile

from adcraft.errors import InputError
from adcraft.serve.app import MAX_ERRORS, create_app
from adcraft.serve.limits import decode_upload
from adcraft.serve.schemas import MAX_JSON_BODY_BYTES
from adcraft.serve.state import ServedRun, check_creative_id

from .test_api import AUTH, BrightnessModel, first_proposal, make_config


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` pixels but whose data is a few bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
            + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def served(served_run, tmp_path_factory) -> ServedRun:
    run_dir, market_dir = served_run
    served = ServedRun(make_config(run_dir, market_dir, tmp_path_factory.mktemp("db")))
    served.contrastive_model = BrightnessModel()
    return served


def app_with(served_run, served, tmp_path, **overrides):
    run_dir, market_dir = served_run
    return create_app(make_config(run_dir, market_dir, tmp_path, **overrides), served)


def test_body_over_the_limit_is_413_before_reading(served_run, served, tmp_path):
    client = TestClient(app_with(served_run, served, tmp_path, max_body_bytes=1000))
    response = client.post("/v1/score", content=b"{" + b" " * 5000 + b"}", headers=AUTH)
    assert response.status_code == 413 and "1,000 bytes" in response.json()["message"]


def test_streamed_body_over_the_limit_is_413(served_run, served, tmp_path):
    client = TestClient(app_with(served_run, served, tmp_path, max_body_bytes=1000))

    def chunks():
        for _ in range(10):
            yield b" " * 500

    response = client.post("/v1/score", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413 and "over the limit" in response.json()["message"]


def test_pixel_bomb_refused_before_decoding(monkeypatch):
    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with pytest.raises(InputError, match="over the limit"):
        decode_upload(png_header_only(8_000, 8_000), max_pixels=1_000_000)


def test_pixel_bomb_upload_is_422(served_run, served, tmp_path):
    client = TestClient(app_with(served_run, served, tmp_path))
    response = client.post("/v1/edit", files={"image": ("bomb.png", png_header_only(8_000, 8_000), "image/png")},
                           data={"text": "a shoe"}, headers=AUTH)
    assert response.status_code == 422 and "pixels" in response.json()["message"]


def test_image_under_the_limit_decodes():
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), "red").save(buffer, format="PNG")
    assert decode_upload(buffer.getvalue(), max_pixels=200).size == (20, 10)
    with pytest.raises(InputError, match="over the limit"):
        decode_upload(buffer.getvalue(), max_pixels=199)


def slow_score(seconds: float):
    def score(product_id, elements, context):
        time.sleep(seconds)
        raise InputError("slow stub done")

    return score


async def concurrent_scores(app, n: int, elements: list[str], product: str) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await asyncio.gather(*[
            client.post("/v1/score", json={"product_id": product, "elements": elements}, headers=AUTH)
            for _ in range(n)
        ])


def test_saturation_is_503_with_retry_after(served_run, tmp_path):
    run_dir, market_dir = served_run
    served = ServedRun(make_config(run_dir, market_dir, tmp_path))
    served.score = slow_score(0.5)
    app = app_with(served_run, served, tmp_path, max_concurrent=1, queue_timeout_s=0.05)
    product, elements, _ = first_proposal(run_dir)
    responses = asyncio.run(concurrent_scores(app, 3, elements, product))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [422, 503, 503]
    busy = [r for r in responses if r.status_code == 503]
    assert all(int(r.headers["retry-after"]) >= 1 for r in busy)
    assert "busy" in busy[0].json()["message"]


def test_slow_work_is_504_and_frees_its_slot_when_done(served_run, tmp_path):
    run_dir, market_dir = served_run
    served = ServedRun(make_config(run_dir, market_dir, tmp_path))
    served.score = slow_score(0.4)
    app = app_with(served_run, served, tmp_path, max_concurrent=1, request_timeout_s=0.1, queue_timeout_s=2.0)
    product, elements, _ = first_proposal(run_dir)
    first, second = asyncio.run(concurrent_scores(app, 2, elements, product))
    assert first.status_code == 504 and "longer than" in first.json()["message"]
    assert second.status_code == 504  # waited for the abandoned job's slot, then timed out itself


@pytest.mark.parametrize("creative_id, statuses", [
    ("..", {404, 422}), ("...", {422}), ("a..b", {422}), ("%2e%2e", {404, 422}),
    ("..%2F..%2Fetc%2Fpasswd", {404}), ("%2Fetc%2Fpasswd", {404}), ("-rf", {422}), (".hidden", {422}),
    ("a%00b", {422}), ("C:%5Cwindows", {422}), ("a%5C..%5Cb", {422}), ("x" * 300, {422}),
    ("%20", {422}), ("creatives%2Fp0000-1", {404}),
])
def test_traversal_ids_are_refused(served_run, served, tmp_path, creative_id, statuses):
    client = TestClient(app_with(served_run, served, tmp_path))
    response = client.get(f"/v1/creatives/{creative_id}.png", headers=AUTH)
    assert response.status_code in statuses
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("creative_id", ["p0000-1", "c_p0000_0", "live-0123abc", "P.1~2-3"])
def test_plain_ids_pass_the_check(creative_id):
    assert check_creative_id(creative_id) == creative_id


def test_run_with_an_image_link_leading_outside_is_refused(served_run, tmp_path):
    run_dir, market_dir = served_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    _, _, image = first_proposal(run_dir)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not for you")
    (copy / image).unlink()
    (copy / image).symlink_to(secret)
    with pytest.raises(InputError, match="outside"):
        ServedRun(make_config(copy, market_dir, tmp_path))


def test_missing_run_folder_is_refused(served_run, tmp_path):
    _, market_dir = served_run
    with pytest.raises(InputError, match="no such run folder"):
        ServedRun(make_config(Path(tmp_path / "nope"), market_dir, tmp_path))


def test_huge_json_bodies_get_a_small_answer_before_parsing(served_run, served, tmp_path, monkeypatch):
    import adcraft.serve.api as api
    import adcraft.serve.review as review

    def no_parsing(model, body):
        raise AssertionError("a body over the JSON limit was parsed")

    monkeypatch.setattr(api, "parse_json_body", no_parsing)
    monkeypatch.setattr(review, "parse_json_body", no_parsing)
    client = TestClient(app_with(served_run, served, tmp_path))
    product, elements, _ = first_proposal(served_run[0])
    context = ",".join(f'"k{i:x}":[0]' for i in range(500_000))  # 500k keys, each with an invalid value
    huge_context = f'{{"product_id":"{product}","elements":{json.dumps(elements)},"context":{{{context}}}}}'
    unknown_keys = "{" + ",".join(f'"unknown{i}":{i}' for i in range(300_000)) + "}"
    for path, body in (("/v1/score", huge_context), ("/v1/decisions", unknown_keys), ("/v1/propose", unknown_keys)):
        assert 4_000_000 < len(body) < 8 * 1024 * 1024
        response = client.post(path, content=body.encode(), headers={**AUTH, "Content-Type": "application/json"})
        assert response.status_code == 413 and len(response.content) < 1024, path
        assert f"at most {MAX_JSON_BODY_BYTES:,} bytes" in response.json()["message"]


def test_an_object_of_many_keys_is_refused_whole(served_run, served, tmp_path):
    client = TestClient(app_with(served_run, served, tmp_path))
    product, elements, _ = first_proposal(served_run[0])
    context = {f"k{i:x}": [0] for i in range(15_000)}  # under the JSON limit: parsed, then refused by its size
    unknown_keys = {f"u{i:x}": 0 for i in range(15_000)}
    for path, body, message in (
        ("/v1/score", {"product_id": product, "elements": elements, "context": context},
         "context has 15000 keys; at most 32"),
        ("/v1/decisions", unknown_keys, "the body has 15000 keys"),
        ("/v1/propose", unknown_keys, "the body has 15000 keys"),
    ):
        raw = json.dumps(body).encode()
        assert 100_000 < len(raw) < MAX_JSON_BODY_BYTES
        response = client.post(path, content=raw, headers={**AUTH, "Content-Type": "application/json"})
        assert response.status_code == 422 and len(response.content) < 1024, path
        answer = response.json()
        assert message in answer["message"] and len(answer["detail"]) == 1


def test_many_problems_are_listed_up_to_a_bound_and_counted(served_run, served, tmp_path):
    client = TestClient(app_with(served_run, served, tmp_path))
    long_key = "k" * 5000
    body = {"product_id": "p0000", "elements": [7] * 64, long_key: 1}
    response = client.post("/v1/score", json=body, headers=AUTH)
    assert response.status_code == 422 and len(response.content) < 4096
    answer = response.json()
    assert len(answer["detail"]) == MAX_ERRORS and "(and 55 more)" in answer["message"]
    assert all(len(json.dumps(error)) < 400 for error in answer["detail"])


async def stalled_request(app, path: str) -> httpx.Response:
    """A request whose body stops arriving after its first bytes."""

    async def stalling_body():
        yield b'{"product_id": '
        await asyncio.Event().wait()

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, content=stalling_body(), headers={**AUTH, "Content-Type": "application/json"})


@pytest.mark.parametrize("path", ["/v1/score", "/v1/decisions"])
def test_a_body_that_stops_arriving_is_408(served_run, served, tmp_path, path):
    app = app_with(served_run, served, tmp_path, body_timeout_s=0.2)
    response = asyncio.run(stalled_request(app, path))
    assert response.status_code == 408 and "did not arrive within 0.2 s" in response.json()["message"]
    assert response.headers["connection"] == "close"


@pytest.mark.parametrize("module, path", [("adcraft.serve.api", "/v1/score"),
                                          ("adcraft.serve.review", "/v1/decisions")])
def test_health_is_answered_while_a_body_is_being_parsed(served_run, served, tmp_path, monkeypatch, module, path):
    """Parsing runs on a worker thread: a parse held up on purpose does not hold up /health."""
    import importlib

    from adcraft.serve.schemas import parse_json_body

    started, release = threading.Event(), threading.Event()

    def held_parse(model, body):
        started.set()
        release.wait(timeout=30)
        return parse_json_body(model, body)

    monkeypatch.setattr(importlib.import_module(module), "parse_json_body", held_parse)
    app = app_with(served_run, served, tmp_path)

    async def scenario() -> tuple[int, bool, int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            slow = asyncio.create_task(client.post(path, json={"surprise": 1}, headers=AUTH))
            assert await asyncio.to_thread(started.wait, 30)
            health = await client.get("/health")
            parse_still_held = not slow.done()
            release.set()
            return health.status_code, parse_still_held, (await slow).status_code

    health_status, parse_still_held, slow_status = asyncio.run(scenario())
    assert health_status == 200 and parse_still_held and slow_status == 422


def test_the_app_works_again_after_a_shutdown(served_run, served, tmp_path):
    app = app_with(served_run, served, tmp_path)
    product = served.market.products["product_id"].iloc[0]
    for _ in range(2):  # each client starts the app and shuts it down, which stops the worker threads
        with TestClient(app) as client:
            response = client.post("/v1/propose", json={"product_id": product, "k": 1}, headers=AUTH)
            assert response.status_code == 200, response.text
