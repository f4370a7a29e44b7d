"""From a market's element ids to a rendered creative: the glue between the data contract and the renderer.

The renderer is the compositor unless a :class:`RenderConfig` selects the diffusion backend.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from adcraft.errors import InputError
from adcraft.market import Market
from adcraft.market.fonts import FONT_SLOT, font_file, is_font_path
from adcraft.render.backend import RenderConfig, build_renderer
from adcraft.render.compositor import Compositor, CreativeSpec, Placement, RenderedCreative

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
        self._font_files: dict[str, str] = {}

    def photo(self, relpath: str) -> Image.Image:
        """The product photo at ``relpath``, opened once (the compositor cuts it out)."""
        if relpath not in self._photos:
            self._photos[relpath] = self.market.open_image(relpath)
        return self._photos[relpath]

    def check_combination(self, product_id: str, element_ids: Sequence[str]) -> None:
        """``InputError`` unless ``element_ids`` is one usable element of ``product_id`` per slot of the market,
        in slot order (ids in messages are cut to 80 characters: they may come from outside)."""
        slots = self.market.config.slots
        if len(element_ids) != len(slots):
            raise InputError(f"a combination needs one element per slot {list(slots)} (in that order); "
                             f"got {len(element_ids)} elements")
        if product_id not in self._product_image:
            raise InputError(f"unknown product {product_id[:80]!r}")
        for slot, element_id in zip(slots, element_ids):
            if element_id not in self._elements:
                raise InputError(f"unknown element {element_id[:80]!r} for slot {slot!r}")
            element_slot, owner = self._elements[element_id]
            if element_slot != slot:
                raise InputError(f"element {element_id!r} belongs to slot {element_slot!r}, not {slot!r}")
            if isinstance(owner, str) and owner != product_id:
                raise InputError(f"element {element_id!r} belongs to product {owner!r}, not {product_id!r}")

    def font(self, element_id: str) -> str:
        """A ``font`` element as the compositor reads it: a family name as it is, a font file's path
        resolved inside the market's folder (``InputError`` naming the element if it leaves it: an
        absolute path, ``..``, a symbolic link leading out; or if there is no such file), never
        against the working directory."""
        value = self.market.element_content(element_id)
        if not is_font_path(value):
            return value
        if value not in self._font_files:
            try:
                self._font_files[value] = str(font_file(self.market.root, value))
            except InputError as error:
                raise InputError(f"element {element_id[:80]!r} (slot {FONT_SLOT}): {error}") from None
        return self._font_files[value]

    def spec(self, product_id: str, element_ids: Sequence[str], placement: Placement | None = None) -> CreativeSpec:
        """The compositor's input for one combination: one element id per slot, in the market's slot order, and
        where the product photo sits (``placement``; default: as large as fits, centred)."""
        self.check_combination(product_id, element_ids)
        content = {slot: self.font(element_id) if slot == FONT_SLOT else self.market.element_content(element_id)
                   for slot, element_id in zip(self.market.config.slots, element_ids)}
        photo = content.pop("product_image", None) or self._product_image[product_id]
        known = {slot: content.get(slot) for slot in RENDERED_SLOTS}
        extra = {slot: value for slot, value in content.items() if slot not in RENDERED_SLOTS}
        return CreativeSpec(product_image=self.photo(photo), extra=extra, placement=placement or Placement(), **known)

    def render(self, product_id: str, element_ids: Sequence[str], placement: Placement | None = None
               ) -> RenderedCreative:
        """Render one combination of a product at the market's canvas size, its photo placed by ``placement``."""
        spec = self.spec(product_id, element_ids, placement)
        return self.backend.render(spec, canvas=self.market.config.canvas)
