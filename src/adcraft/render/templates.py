"""Named layouts: where the product, the title and the highlight badge go on the canvas.

Boxes are relative (fractions of the canvas width and height, ``(left, top, right, bottom)``) so
one template serves every canvas size. In every template the title, badge and band boxes are
disjoint from the product box, and pixel boxes are rounded the same way for all of them, so no
text, badge or plate can ever land on the product.

========  =====================================================================
center    title band on top, product centred, badge at the bottom
left      text column on the left, product in the right half
right     the mirror of ``left``
banner    product on top, a tinted text band across the bottom (title + badge)
top       title and badge in the top band, product below
minimal   no text, the product large
========  =====================================================================

No template (None or "") means ``center``. An unknown name also falls back to ``center``, with a
logged warning, so a creative with an unexpected layout slot still renders.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

RelBox = tuple[float, float, float, float]
PixelBox = tuple[int, int, int, int]

DEFAULT_TEMPLATE = "center"


def to_pixels(box: RelBox, canvas: tuple[int, int]) -> PixelBox:
    """A relative box as a half-open pixel box ``[left, right) x [top, bottom)`` on ``canvas``."""
    width, height = canvas
    return (round(box[0] * width), round(box[1] * height), round(box[2] * width), round(box[3] * height))


def boxes_overlap(a: PixelBox | RelBox, b: PixelBox | RelBox) -> bool:
    """True when two half-open boxes share any area."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@dataclass(frozen=True)
class Template:
    """A layout: relative boxes for the product and, optionally, the title, badge and a tinted band."""

    name: str
    product: RelBox
    title: RelBox | None = None
    badge: RelBox | None = None
    band: RelBox | None = None

    def __post_init__(self) -> None:
        for label, box in (("title", self.title), ("badge", self.badge), ("band", self.band)):
            if box is not None and boxes_overlap(box, self.product):
                raise ValueError(f"template {self.name!r}: the {label} box overlaps the product box")


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template("center", product=(0.08, 0.22, 0.92, 0.81),
                 title=(0.06, 0.03, 0.94, 0.20), badge=(0.22, 0.83, 0.78, 0.96)),
        Template("left", product=(0.50, 0.06, 0.96, 0.94),
                 title=(0.05, 0.14, 0.47, 0.62), badge=(0.05, 0.66, 0.47, 0.82)),
        Template("right", product=(0.04, 0.06, 0.50, 0.94),
                 title=(0.53, 0.14, 0.95, 0.62), badge=(0.53, 0.66, 0.95, 0.82)),
        Template("banner", product=(0.06, 0.03, 0.94, 0.71), band=(0.0, 0.72, 1.0, 1.0),
                 title=(0.05, 0.74, 0.95, 0.87), badge=(0.25, 0.88, 0.75, 0.98)),
        Template("top", product=(0.06, 0.36, 0.94, 0.97),
                 title=(0.05, 0.03, 0.95, 0.24), badge=(0.25, 0.25, 0.75, 0.34)),
        Template("minimal", product=(0.05, 0.05, 0.95, 0.95)),
    )
}


def get_template(name: str | None) -> Template:
    """The template called ``name`` (case-insensitive); ``center`` if None/empty, or with a warning if unknown."""
    key = (name or "").strip().lower()
    if not key:
        return TEMPLATES[DEFAULT_TEMPLATE]
    if key in TEMPLATES:
        return TEMPLATES[key]
    logger.warning("unknown template %r; using %r (known: %s)", name, DEFAULT_TEMPLATE, ", ".join(TEMPLATES))
    return TEMPLATES[DEFAULT_TEMPLATE]
