"""The review page end to end in headless Chromium: log in, see the creatives, approve one, restart, still there.

Runs the real ``adcraft serve`` command in a subprocess and drives Debian's ``/usr/bin/chromium`` with
Playwright (never a browser Playwright downloads). Skipped when that browser is absent.
"""

from __future__ import annotations

import csv
import io
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
START_TIMEOUT_S = 120
NOTE = 'Bolder title <b>works</b> & "sells"'

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"needs Debian's Chromium at {CHROMIUM} (apt install chromium)"),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """``adcraft serve`` in a subprocess, its output in ``log``."""

    def __init__(self, run_dir: Path, market_dir: Path, port: int, token_file: Path, database_url: str,
                 log: Path) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        command = [sys.executable, "-c", "from adcraft.cli import main; main()", "serve", "--run", str(run_dir),
                   "--market", str(market_dir), "--port", str(port), "--token-file", str(token_file),
                   "--database-url", database_url]
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"adcraft serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        self.stop()
        raise AssertionError(f"adcraft serve did not answer within {START_TIMEOUT_S} s:\n{self.log.read_text()}")

    def stop(self) -> int:
        """SIGTERM, then wait for a graceful exit."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _images_loaded(page) -> list[dict]:
    page.wait_for_function("() => document.images.length > 0 && [...document.images].every(i => i.complete)")
    return page.eval_on_selector_all("img", "images => images.map(i => ({src: i.src, alt: i.alt, "
                                            "width: i.naturalWidth}))")


# Each image's natural size, content box, object-fit and its box against its card's.
MEASURE_IMAGES = """images => images.map(image => {
  const style = getComputedStyle(image), box = image.getBoundingClientRect();
  const card = image.parentElement.getBoundingClientRect();
  const px = name => parseFloat(style[name]) || 0;
  return {src: image.src, natural: [image.naturalWidth, image.naturalHeight], fit: style.objectFit,
    content: [box.width - px("borderLeftWidth") - px("borderRightWidth") - px("paddingLeft") - px("paddingRight"),
              box.height - px("borderTopWidth") - px("borderBottomWidth") - px("paddingTop") - px("paddingBottom")],
    inside: box.left >= card.left - 0.5 && box.right <= card.right + 0.5};
})"""


def shown_whole(measured: dict) -> tuple[float, float, float]:
    """``(share of the image visible, displayed aspect / natural aspect, displayed width in px)`` of one image
    of ``MEASURE_IMAGES``, from the CSS object-fit rules: fill stretches the image to the box, contain and
    scale-down fit it inside, cover and none may overflow the box (what overflows is cut off)."""
    (natural_w, natural_h), (box_w, box_h), fit = measured["natural"], measured["content"], measured["fit"]
    fits = {"fill": None, "contain": min(box_w / natural_w, box_h / natural_h),
            "scale-down": min(1.0, box_w / natural_w, box_h / natural_h),
            "cover": max(box_w / natural_w, box_h / natural_h), "none": 1.0}
    scale = fits[fit]
    shown_w, shown_h = (box_w, box_h) if scale is None else (natural_w * scale, natural_h * scale)
    visible = min(1.0, box_w / shown_w) * min(1.0, box_h / shown_h)
    return visible, (shown_w / shown_h) / (natural_w / natural_h), min(shown_w, box_w)


def assert_whole_creatives(page) -> None:
    """Every image on ``page`` shows all of the creative, undistorted, inside its card, at a readable size."""
    for measured in page.eval_on_selector_all("img", MEASURE_IMAGES):
        visible, distortion, width = shown_whole(measured)
        assert visible > 0.995 and abs(distortion - 1.0) < 0.02, measured
        assert measured["inside"] and width >= 60, measured


def test_thumbnails_show_the_whole_creative_whatever_its_shape(tmp_path: Path) -> None:
    from importlib.resources import files

    from PIL import Image
    from playwright.sync_api import sync_playwright

    from adcraft.evaluate.gallery import Card, Section, write_gallery

    shapes = {"wide.png": (1200, 300), "banner.png": (1200, 628), "square.png": (512, 512), "tall.png": (300, 1200)}
    for name, size in shapes.items():
        Image.new("RGB", size, "#c33").save(tmp_path / name)
    write_gallery(tmp_path / "report.html", "report", "", [Section("p1", "", tuple(Card(n, ("c",)) for n in shapes))])
    css = files("adcraft.serve").joinpath("static", "review.css").read_text(encoding="utf-8")
    (tmp_path / "review.css").write_text(css, encoding="utf-8")
    cards = "".join(f"<li class='card'><img src='{name}' alt='{name}'></li>" for name in shapes)
    (tmp_path / "review.html").write_text("<!doctype html><link rel='stylesheet' href='review.css'>"
                                          f"<section class='product'><ul class='cards'>{cards}</ul></section>")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name in ("report.html", "review.html"):
                page.goto((tmp_path / name).as_uri())
                loaded = _images_loaded(page)
                assert len(loaded) == len(shapes) and all(image["width"] > 0 for image in loaded)
                assert_whole_creatives(page)
                heights = page.eval_on_selector_all("img", "all => all.map(i => i.getBoundingClientRect().height)")
                assert max(heights) <= 400, heights  # a tall creative is letterboxed, not a page-long thumbnail
        finally:
            browser.close()


def test_shown_whole_tells_a_cropped_or_stretched_image_apart() -> None:
    wide = {"natural": [1200, 300], "content": [200, 200], "inside": True}
    assert shown_whole({**wide, "fit": "contain"})[:2] == (1.0, 1.0)
    assert shown_whole({**wide, "fit": "cover"})[0] == pytest.approx(0.25)
    assert shown_whole({**wide, "fit": "fill"})[1] == pytest.approx(0.25)


def test_approve_a_proposal_restart_and_find_it_again(served_run: tuple[Path, Path], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    run_dir, market_dir = served_run
    token = secrets.token_urlsafe(32)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    database_url = f"sqlite:///{tmp_path / 'decisions.sqlite'}"
    port, log = _free_port(), tmp_path / "serve.log"
    proposals = pd.read_parquet(run_dir / "creatives.parquet")
    products = pd.read_parquet(run_dir / "products.parquet")
    chosen = proposals.sort_values(["product_id", "rank"]).iloc[1]  # rank 2 of the first product
    chosen_id = Path(chosen["image"]).stem

    server = Server(run_dir, market_dir, port, token_file, database_url, log)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                context = browser.new_context()
                page = context.new_page()
                elsewhere: list[str] = []
                page.on("request", lambda r: None if r.url.startswith(server.base) else elsewhere.append(r.url))
                first = page.goto(server.base + "/")  # no token: sent to the login form, no review data
                assert first.url == server.base + "/login" and page.locator("input[name=token]").count() == 1
                assert first.request.redirected_from is not None and first.request.redirected_from.url.endswith("/")

                errors: list[str] = []  # from here on: script errors, CSP refusals, failed loads (but the favicon)
                page.on("console", lambda message: errors.append(f"{message.text} ({message.location.get('url')})")
                        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico")
                        else None)
                page.on("pageerror", lambda error: errors.append(str(error)))
                page.fill("input[name=token]", token)
                page.click("button[type=submit]")
                page.wait_for_selector("body[data-loaded=true]")
                assert page.url.rstrip("/") == server.base

                images = _images_loaded(page)
                assert len(images) == len(proposals) + products["current_creative_id"].notna().sum()
                assert all(image["width"] > 0 for image in images), images
                assert all(image["alt"].strip() for image in images)
                assert_whole_creatives(page)
                assert page.eval_on_selector_all("textarea", "areas => areas.every(a => a.labels.length > 0)")
                assert page.locator("section.product").count() == len(products)

                card = page.locator(f'li[data-creative-id="{chosen_id}"]')
                card.locator("textarea").fill(NOTE)
                card.locator("button[data-decision=approve]").click()
                state = card.locator(".decision-state.approve")
                state.wait_for()
                assert NOTE in state.inner_text()  # shown as text: the markup in the note stays letters
                assert card.locator(".decision-state b").count() == 0

                # uvicorn shuts down gracefully, then re-raises the signal: -SIGTERM is a clean exit too
                assert server.stop() in (0, -signal.SIGTERM), log.read_text()
                assert log.read_text().count("Application shutdown complete") == 1
                server = Server(run_dir, market_dir, port, token_file, database_url, log)

                page.reload()
                page.wait_for_selector("body[data-loaded=true]")
                assert all(image["width"] > 0 for image in _images_loaded(page))
                card = page.locator(f'li[data-creative-id="{chosen_id}"]')
                assert "Approved" in card.locator(".decision-state.approve").inner_text()
                assert NOTE in card.locator(".decision-state").inner_text()
                assert card.locator("textarea").input_value() == NOTE
                assert page.locator(".decision-state.approve").count() == 1

                href = page.get_attribute("#export-csv", "href")
                export = context.request.get(server.base + "/" + href)
                assert export.ok
                rows = list(csv.DictReader(io.StringIO(export.text())))
                assert [(r["product_id"], r["creative_id"], r["note"]) for r in rows] == [
                    (chosen["product_id"], chosen_id, NOTE)]
                bundle = context.request.get(server.base + "/" + page.get_attribute("#export-bundle", "href"))
                assert bundle.ok
                with zipfile.ZipFile(io.BytesIO(bundle.body())) as archive:
                    assert f"images/{chosen_id}.png" in archive.namelist()
                    assert [r["creative_name"] for r in csv.DictReader(
                        io.StringIO(archive.read("creatives.csv").decode("utf-8")))] == [chosen_id]
                assert not errors, errors
                assert not elsewhere, elsewhere
            finally:
                browser.close()
    finally:
        server.stop()
