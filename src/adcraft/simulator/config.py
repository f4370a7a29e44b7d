"""Configuration of the market simulator."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from adcraft.configuration import check_config
from adcraft.market.limits import MAX_CANVAS_PX, MIN_CANVAS_PX
from adcraft.simulator.worlds import DEFAULT_WORLD, World

DEFAULT_SLOTS: tuple[str, ...] = ("title", "highlight", "background", "template", "font", "text_color")


@dataclass(frozen=True)
class SimulatorConfig:
    """Size and randomness of a simulated market.

    The defaults make the "default market" that ``make demo`` and the benchmarks use: 120 products,
    150k logged impressions over 14 days, 8 past creatives per product, in the ``realistic`` world.
    ``world`` picks what drives the clicks (``worlds``; ``docs/worlds.md``). The scales below
    ``base_ctr`` set the ``legacy`` world only; the other worlds calibrate their own sizes.
    """

    seed: int = 0
    world: World = DEFAULT_WORLD
    n_products: int = 120
    n_impressions: int = 150_000
    creatives_per_product: int = 8
    titles_per_product: int = 3
    days: int = 14
    start_ts: int = 1_767_225_600  # 2026-01-01T00:00:00Z
    canvas: tuple[int, int] = (512, 512)
    slots: tuple[str, ...] = DEFAULT_SLOTS
    photos: Path | None = None
    photo_size: int = 384
    # Logging policy: with probability `exploration` a uniformly random creative of the product's pool,
    # otherwise the house default creative, which the house replaces once, at `default_switch` of the log.
    exploration: float = 0.3
    default_switch: float = 0.5
    base_ctr: float = 0.03
    # Scales of the true click model's terms (logit units); see ``click_model`` for the formula.
    element_effect_scale: float = 0.25
    relevance_scale: float = 0.35
    legibility_scale: float = 0.25
    layout_length_scale: float = 0.2
    attribute_curvature: tuple[float, float] = (0.06, 0.16)
    context_scale: float = 0.15
    product_scale: float = 0.4
    render_workers: int = 1
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_config(self)
        checks = {
            "n_products": self.n_products >= 2,
            "n_impressions": self.n_impressions >= 1,
            "creatives_per_product": self.creatives_per_product >= 2,
            "titles_per_product": self.titles_per_product >= 1,
            "days": self.days >= 1,
            "exploration": 0.0 < self.exploration <= 1.0,
            "default_switch": 0.0 < self.default_switch <= 1.0,
            "base_ctr": 0.0 < self.base_ctr < 1.0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid simulator settings: {', '.join(bad)}")
        if not all(MIN_CANVAS_PX <= side <= MAX_CANVAS_PX for side in self.canvas):
            raise ValueError(f"canvas sides must lie in [{MIN_CANVAS_PX}, {MAX_CANVAS_PX}] pixels, got {self.canvas}")
        unknown = set(self.slots) - set(DEFAULT_SLOTS)
        if unknown or len(set(self.slots)) != len(self.slots) or not self.slots:
            raise ValueError(
                f"slots must be distinct names from {list(DEFAULT_SLOTS)}; got {list(self.slots)}"
            )
