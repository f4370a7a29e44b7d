"""What one request may cost: body size, image pixels, concurrency, time, and which ids may name a file."""

from __future__ import annotations

import asyncio
import io
import shutil
import struct
import time
import zlib
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageFile

from adcraft.errors import InputError
from adcraft.serve.app import create_app
from adcraft.serve.limits import decode_upload
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
