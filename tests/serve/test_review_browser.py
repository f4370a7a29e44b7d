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
                assert not errors, errors
                assert not elsewhere, elsewhere
            finally:
                browser.close()
    finally:
        server.stop()
