"""Which renderer paints a creative's background: the compositor (default) or a diffusion model.

Both backends place the product the same way, never alter its pixels and draw the title and the
highlight the same way; they differ in the background. ``compositor`` draws the background prompt
procedurally (Pillow + NumPy, :mod:`adcraft.render.background`); ``diffusion`` paints it with Stable
Diffusion 1.5 and a Canny ControlNet from local weights, as CAIG does (:mod:`adcraft.render.diffusion`).

A YAML ``render`` section's keys are :class:`RenderConfig`'s fields::

    backend: diffusion
    diffusion:
      weights_dir: /models/sd15       # holds stable-diffusion-v1-5/ and controlnet-canny/
      steps: 20
      seed: 0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

from adcraft.configuration import check_config
from adcraft.errors import InputError
from adcraft.render.compositor import Compositor, CompositorConfig, CreativeSpec, RenderedCreative
from adcraft.render.diffusion import DiffusionConfig, DiffusionRenderer, check_weights, import_diffusion

Backend = Literal["compositor", "diffusion"]
BACKENDS: tuple[str, ...] = get_args(Backend)


class CreativeRenderer(Protocol):
    """Anything that renders a :class:`CreativeSpec` on a canvas of (width, height) pixels."""

    def render(self, spec: CreativeSpec, canvas: tuple[int, int] = (512, 512)) -> RenderedCreative: ...


@dataclass(frozen=True)
class RenderConfig:
    """How creatives are rendered: ``backend`` (compositor | diffusion) and each backend's settings.

    ``compositor`` also serves the diffusion backend for the product's placement and the text layers.
    """

    backend: Backend = "compositor"
    compositor: CompositorConfig = field(default_factory=CompositorConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)

    def __post_init__(self) -> None:
        check_config(self)
        if self.backend not in BACKENDS:
            raise InputError(f"RenderConfig.backend must be one of {list(BACKENDS)}, got {self.backend!r}")

    def check_available(self) -> None:
        """Raise :class:`InputError` now if the chosen backend cannot run (missing weights or packages).

        Jobs call this before any work, so a run configured for a backend it cannot use is refused up front
        instead of failing after training.
        """
        if self.backend == "diffusion":
            check_weights(self.diffusion)
            import_diffusion()


def build_renderer(config: RenderConfig | None = None, compositor: Compositor | None = None) -> CreativeRenderer:
    """The renderer ``config`` selects; ``compositor`` (default: one made from ``config.compositor``) places
    the product and draws the text for either backend."""
    config = config or RenderConfig()
    compositor = compositor or Compositor(config.compositor)
    if config.backend == "diffusion":
        return DiffusionRenderer(config.diffusion, compositor)
    return compositor
