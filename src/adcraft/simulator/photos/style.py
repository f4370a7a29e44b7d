"""What a product photo shows (:class:`PhotoStyle`) and the error for an impossible photo request."""

from __future__ import annotations

from dataclasses import dataclass

from adcraft.errors import InputError

RGB = tuple[int, int, int]

PHOTO_PATTERNS: tuple[str, ...] = ("plain", "stripes", "dots", "block")


class PhotoInputError(InputError, ValueError):
    """A photo request names an unknown category or an impossible style (also a ``ValueError``)."""


@dataclass(frozen=True)
class PhotoStyle:
    """What product a photo shows: colours, surface pattern, gloss and proportions.

    ``base_color`` is the main material, ``accent_color`` the pattern, trims and secondary panels,
    ``detail_color`` the hardware (caps, laces, frames, legs, metal). ``width`` and ``height``
    stretch the silhouette (1.0 is the category's typical shape), ``variant`` picks one of the
    category's three silhouettes (e.g. wine, sports or pump bottle; taken modulo 3) and ``gloss`` in
    [0, 1] scales the specular highlight. ``pattern`` ("plain", "stripes", "dots", "block") is printed
    in the accent colour on the main body.
    """

    base_color: RGB
    accent_color: RGB
    detail_color: RGB = (40, 40, 44)
    pattern: str = "plain"
    gloss: float = 0.3
    width: float = 1.0
    height: float = 1.0
    variant: int = 0

    def __post_init__(self) -> None:
        for name in ("base_color", "accent_color", "detail_color"):
            value = getattr(self, name)
            if len(value) != 3 or any(not 0 <= int(v) <= 255 for v in value):
                raise PhotoInputError(f"PhotoStyle.{name} must be three integers in 0..255, got {value!r}")
        if self.pattern not in PHOTO_PATTERNS:
            raise PhotoInputError(
                f"PhotoStyle.pattern {self.pattern!r} is unknown; use one of {', '.join(PHOTO_PATTERNS)}"
            )
        if not 0.0 <= self.gloss <= 1.0:
            raise PhotoInputError(f"PhotoStyle.gloss must be in [0, 1], got {self.gloss}")
        for name in ("width", "height"):
            if not 0.6 <= getattr(self, name) <= 1.5:
                raise PhotoInputError(f"PhotoStyle.{name} must be in [0.6, 1.5], got {getattr(self, name)}")
        if self.variant < 0:
            raise PhotoInputError(f"PhotoStyle.variant must be >= 0, got {self.variant}")
