"""From a market's element ids to a rendered creative: the glue between the data contract and the renderer.

The renderer is the compositor unless a :class:`RenderConfig` selects the diffusion backend.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from adcraft.errors import InputError
from adcraft.market import Market
from adcraft.render.backend import RenderConfig, build_renderer
from adcraft.render.compositor import Compositor, CreativeSpec, RenderedCreative

RENDERED_SLOTS: tuple[str, ...] = ("title", "highlight", "background", "template", "font", "text_color")


class MarketRenderer:
    """Renders combinations of a market's elements; opens each product photo once.

    ``config`` picks the background backend (default: the compositor); ``compositor`` (default: one
    made from ``config.compositor``) places the product and draws the text for either backend.
    """

    def __init__(self, market: Market, compositor: Compositor | None = None,
                 config: RenderConfig | None = None) -> None:
        self.market = market
        self.config = config or RenderConfig()
        self.compositor = compositor or Compositor(self.config.compositor)
        self.backend = build_renderer(self.config, self.compositor)
        self._product_image = dict(zip(market.products["product_id"], market.products["image"]))
        el = market.elements
        self._elements = {
            e: (slot, owner) for e, slot, owner in zip(el["element_id"], el["slot"], el["product_id"])
        }
        self._photos: dict[str, Image.Image] = {}

    def photo(self, relpath: str) -> Image.Image:
        """The product photo at ``relpath``, opened once (the compositor cuts it out)."""
        if relpath not in self._photos:
            self._photos[relpath] = self.market.open_image(relpath)
        return self._photos[relpath]

    def spec(self, product_id: str, element_ids: Sequence[str]) -> CreativeSpec:
        """The compositor's input for one combination: one element id per slot, in the market's slot order."""
        slots = self.market.config.slots
        if len(element_ids) != len(slots):
            raise InputError(
                f"a combination needs one element per slot {list(slots)}; "
                f"got {len(element_ids)}: {list(element_ids)}"
            )
        if product_id not in self._product_image:
            raise InputError(f"unknown product '{product_id}'")
        content: dict[str, str] = {}
        for slot, element_id in zip(slots, element_ids):
            if element_id not in self._elements:
                raise InputError(f"unknown element '{element_id}' for slot '{slot}'")
            element_slot, owner = self._elements[element_id]
            if element_slot != slot:
                raise InputError(f"element '{element_id}' belongs to slot '{element_slot}', not '{slot}'")
            if isinstance(owner, str) and owner != product_id:
                raise InputError(f"element '{element_id}' belongs to product '{owner}', not '{product_id}'")
            content[slot] = self.market.element_content(element_id)
        photo = content.pop("product_image", None) or self._product_image[product_id]
        known = {slot: content.get(slot) for slot in RENDERED_SLOTS}
        extra = {slot: value for slot, value in content.items() if slot not in RENDERED_SLOTS}
        return CreativeSpec(product_image=self.photo(photo), extra=extra, **known)

    def render(self, product_id: str, element_ids: Sequence[str]) -> RenderedCreative:
        """Render one combination of a product at the market's canvas size."""
        spec = self.spec(product_id, element_ids)
        return self.backend.render(spec, canvas=self.market.config.canvas)
