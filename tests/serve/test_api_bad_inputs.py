"""A corpus of bad requests: each gets the right status, a message naming the problem, and writes nothing."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from .test_api import AUTH, editing_client
from .test_limits import png_header_only

PRODUCT = "p0000"
OTHER = "p0001"
GOOD = ["t_p0000_0", "h03", "bg05", "tpl04", "font02", "tc02"]


def png(size=(24, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, format="PNG")
    return buffer.getvalue()


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


def with_element(slot: int, element: str) -> list[str]:
    elements = list(GOOD)
    elements[slot] = element
    return elements


@dataclass
class Bad:
    name: str
    path: str
    status: int | set[int]
    message: str
    json: object = None
    content: bytes | None = None
    files: dict | None = None
    data: dict | None = None
    method: str = "post"
    headers: dict = field(default_factory=dict)


def upload(image: bytes, text: str = "a white sneaker", **fields) -> dict:
    return {"files": {"image": ("upload.png", image, "image/png")}, "data": {"text": text, **fields}}


CORPUS = [
    Bad("malformed JSON", "/v1/score", 422, "JSON", content=b'{"product_id": "p0000", "elements": [',
        headers={"Content-Type": "application/json"}),
    Bad("JSON that is not an object", "/v1/score", 422, "body: Input should be an object", json=["p0000"]),
    Bad("empty body", "/v1/score", 422, "empty", content=b"", headers={"Content-Type": "application/json"}),
    Bad("not JSON at all", "/v1/score", 415, "application/json", content=b"product_id=p0000",
        headers={"Content-Type": "text/plain"}),
    Bad("missing product_id", "/v1/score", 422, "product_id: Field required", json={"elements": GOOD}),
    Bad("missing elements", "/v1/score", 422, "elements: Field required", json={"product_id": PRODUCT}),
    Bad("product_id a number", "/v1/score", 422, "product_id: Input should be a valid string",
        json={"product_id": 7, "elements": GOOD}),
    Bad("elements a string", "/v1/score", 422, "body.elements: Input should be a valid array",
        json={"product_id": PRODUCT, "elements": "t_p0000_0,h03"}),
    Bad("element a number", "/v1/score", 422, "elements.1: Input should be a valid string",
        json={"product_id": PRODUCT, "elements": ["t_p0000_0", 3, "bg05", "tpl04", "font02", "tc02"]}),
    Bad("unknown product", "/v1/score", 404, "unknown product 'nope'", json={"product_id": "nope", "elements": GOOD}),
    Bad("unknown element", "/v1/score", 422, "unknown element 'h99'",
        json={"product_id": PRODUCT, "elements": with_element(1, "h99")}),
    Bad("element of another slot", "/v1/score", 422, "belongs to slot 'background', not 'highlight'",
        json={"product_id": PRODUCT, "elements": with_element(1, "bg05")}),
    Bad("element of another product", "/v1/score", 422, "belongs to product 'p0001'",
        json={"product_id": PRODUCT, "elements": with_element(0, "t_p0001_0")}),
    Bad("too few elements", "/v1/score", 422, "one element per slot", json={"product_id": PRODUCT,
                                                                             "elements": GOOD[:-1]}),
    Bad("too many elements", "/v1/score", 422, "one element per slot",
        json={"product_id": PRODUCT, "elements": GOOD + ["tc02"]}),
    Bad("no elements", "/v1/score", 422, "elements: List should have at least 1 item",
        json={"product_id": PRODUCT, "elements": []}),
    Bad("extra field", "/v1/score", 422, "extra: Extra inputs are not permitted",
        json={"product_id": PRODUCT, "elements": GOOD, "extra": 1}),
    Bad("huge product_id", "/v1/score", 422, "product_id: String should have at most 200 characters",
        json={"product_id": "p" * 100_000, "elements": GOOD}),
    Bad("huge context", "/v1/score", 422, "context", json={"product_id": PRODUCT, "elements": GOOD,
                                                           "context": "x" * 10_000}),
    Bad("context a list", "/v1/score", 422, "context", json={"product_id": PRODUCT, "elements": GOOD,
                                                             "context": [1, 2]}),
    Bad("k = 0", "/v1/propose", 422, "k: Input should be greater than or equal to 1",
        json={"product_id": PRODUCT, "k": 0}),
    Bad("k negative", "/v1/propose", 422, "greater than or equal to 1", json={"product_id": PRODUCT, "k": -3}),
    Bad("k huge", "/v1/propose", 422, "k must be at most 20", json={"product_id": PRODUCT, "k": 10**9}),
    Bad("k a string", "/v1/propose", 422, "k: Input should be a valid integer", json={"product_id": PRODUCT,
                                                                                      "k": "3"}),
    Bad("k a float", "/v1/propose", 422, "k: Input should be a valid integer", json={"product_id": PRODUCT,
                                                                                     "k": 2.5}),
    Bad("propose unknown product", "/v1/propose", 404, "unknown product", json={"product_id": "zzz", "k": 2}),
    Bad("propose missing product", "/v1/propose", 422, "product_id: Field required", json={"k": 2}),
    Bad("edit: empty text", "/v1/edit", 422, "'text' is required and may not be empty", **upload(png(), text="  ")),
    Bad("edit: missing image", "/v1/edit", 422, "'image' is required", data={"text": "a shoe"},
        files={"other": ("x.txt", b"x", "text/plain")}),
    Bad("edit: image given as text", "/v1/edit", 422, "'image' is required",
        data={"text": "a shoe", "image": "not a file"}, files={"other": ("x.txt", b"x", "text/plain")}),
    Bad("edit: not an image", "/v1/edit", 422, "not an image file", **upload(b"%PDF-1.4 hello")),
    Bad("edit: GIF", "/v1/edit", 422, "only PNG, JPEG and WebP", **upload(gif())),
    Bad("edit: truncated PNG", "/v1/edit", 422, "truncated or corrupt", **upload(png((64, 64))[:120])),
    Bad("edit: zero-byte file", "/v1/edit", 422, "empty file", **upload(b"")),
    Bad("edit: oversized image", "/v1/edit", 422, "over the limit", **upload(png_header_only(3000, 3000))),
    Bad("edit: huge text", "/v1/edit", 422, "at most 2,000", **upload(png(), text="word " * 1000)),
    Bad("edit: JSON body", "/v1/edit", {400, 422}, "'image' is required", json={"text": "a shoe"}),
    Bad("edit: two images", "/v1/edit", 400, "Too many files",
        files=[("image", ("a.png", png(), "image/png")), ("image", ("b.png", png(), "image/png"))],
        data={"text": "a shoe"}),
    Bad("score upload without product", "/v1/score", 422, "'product_id' is required", **upload(png())),
    Bad("bad creative id", "/v1/creatives/a..b.png", 422, "not a valid creative id", method="get"),
    Bad("unknown creative id", "/v1/creatives/zz-9.png", 404, "no creative 'zz-9'", method="get"),
    Bad("creative without .png", "/v1/creatives/p0000-1", 404, "Not Found", method="get"),
]


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file under the folders with the SHA-256 of its content."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


@pytest.fixture(scope="module")
def client(served_run, tmp_path_factory) -> TestClient:
    with editing_client(served_run, tmp_path_factory.mktemp("db"), max_image_pixels=1_000_000) as test_client:
        yield test_client


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 25 and len({case.name for case in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_bad_request(client, served_run, case: Bad):
    before = snapshot(*served_run)
    kwargs = {"headers": {**AUTH, **case.headers}}
    for name in ("json", "content", "files", "data"):
        if getattr(case, name) is not None:
            kwargs[name] = getattr(case, name)
    response = client.request(case.method.upper(), case.path, **kwargs)
    statuses = case.status if isinstance(case.status, set) else {case.status}
    assert response.status_code in statuses, response.text
    body = response.json()
    assert isinstance(body["message"], str) and case.message in body["message"], body
    assert len(body["message"]) <= 2100
    assert snapshot(*served_run) == before
