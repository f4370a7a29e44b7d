import re

from adcraft.evaluate.gallery import Card, Section, write_gallery


def test_gallery_escapes_text_and_links_images(tmp_path):
    page = write_gallery(
        tmp_path / "index.html",
        "Demo <b>",
        "lead & more",
        [Section(title="p1 · Mug <script>", subtitle="mug", cards=(Card("a/b.png", ("CTR 3%",), "new"),))],
    )
    text = page.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "src='a/b.png'" in text and "CTR 3%" in text
    assert not list(tmp_path.glob(".*.tmp"))


def css_rule(css: str, selector: str) -> str:
    """The declarations of ``selector``'s rule in ``css`` ("" when there is none)."""
    found = re.search(r"(?:^|[}\s])" + re.escape(selector) + r"\s*\{([^}]*)\}", css)
    return re.sub(r"\s+", "", found.group(1)) if found else ""


def test_thumbnails_keep_the_whole_creative(tmp_path):
    text = write_gallery(tmp_path / "index.html", "t", "", [Section("p", cards=(Card("a.png"),))]).read_text()
    rule = css_rule(text, "figure img")
    assert "object-fit:contain" in rule and "height:auto" in rule, rule  # never cover, never a fixed crop box
    assert "overflow:hidden" not in css_rule(text, "figure")
