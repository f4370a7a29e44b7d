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
