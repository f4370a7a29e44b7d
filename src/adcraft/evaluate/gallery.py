"""A static HTML page of creatives grouped by product (the demo's and the reports' picture wall).

A thumbnail shows the whole creative, whatever its aspect ratio: a fixed width, the height its own aspect ratio
gives, and a very tall one letterboxed (``object-fit: contain``) rather than cropped or stretched.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from adcraft.atomic import write_text


@dataclass(frozen=True)
class Card:
    """One creative on the page: an image path relative to the page, and caption lines."""

    image: str
    caption: tuple[str, ...] = ()
    badge: str | None = None


@dataclass(frozen=True)
class Section:
    """A product's row of cards."""

    title: str
    subtitle: str = ""
    cards: tuple[Card, ...] = field(default_factory=tuple)


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;background:#f6f6f4;color:#222}
h1{font-size:22px;margin:0 0 4px} .lead{color:#555;margin:0 0 20px;max-width:70em}
section{background:#fff;border-radius:10px;padding:14px 16px;margin:0 0 16px;box-shadow:0 1px 3px #0002}
h2{font-size:16px;margin:0} .sub{color:#666;font-size:13px;margin:2px 0 10px}
.row{display:flex;gap:12px;overflow-x:auto}
figure{margin:0;width:200px;flex:0 0 200px;position:relative}
figure img{width:200px;height:auto;max-height:300px;object-fit:contain;background:#fff;box-sizing:border-box;
  border-radius:6px;border:1px solid #ddd;display:block}
figcaption{font-size:12px;color:#444;margin-top:4px;line-height:1.35}
.cards{display:flex;gap:16px;flex-wrap:wrap;margin:0 0 16px}
.card{background:#fff;border-radius:10px;padding:12px 16px;box-shadow:0 1px 3px #0002}
.card b{font-size:20px;display:block} table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 8px;text-align:right} th:first-child,td:first-child{text-align:left}
.note{background:#fff6d6;border-radius:8px;padding:8px 12px;margin:0 0 16px}
.badge{position:absolute;top:6px;left:6px;background:#111c;color:#fff;font-size:11px;padding:2px 6px;border-radius:4px}
"""


def write_gallery(path: Path, title: str, lead: str, sections: list[Section], summary_html: str = "") -> Path:
    """Write a self-contained HTML page (inline CSS, images by relative path); atomic replace.

    ``summary_html`` is inserted after the lead as is: markup the caller built (and escaped) itself.
    """
    path = Path(path)
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{html.escape(title)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1><p class='lead'>{html.escape(lead)}</p>",
        summary_html,
    ]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        parts.append(f"<p class='sub'>{html.escape(section.subtitle)}</p><div class='row'>")
        for card in section.cards:
            badge = f"<span class='badge'>{html.escape(card.badge)}</span>" if card.badge else ""
            caption = "<br>".join(html.escape(line) for line in card.caption)
            parts.append(
                f"<figure>{badge}<img src='{html.escape(card.image, quote=True)}' loading='lazy' "
                f"alt='{html.escape(section.title, quote=True)}'><figcaption>{caption}</figcaption></figure>"
            )
        parts.append("</div></section>")
    parts.append("</body></html>")
    return write_text(path, "\n".join(parts))
