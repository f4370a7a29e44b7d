"""Turning user images into the RGB pixels the encoders and the attribute functions read.

Creatives and product cut-outs often carry transparency; both the encoders and the visual
attributes see them as they would appear on a white page, so transparent pixels are composited
onto white before anything else happens.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from adcraft.errors import InputError

WHITE = (255, 255, 255)


def check_images(images: Sequence[Image.Image]) -> None:
    """Raise ``InputError`` unless every item is a non-empty ``PIL.Image.Image``."""
    if isinstance(images, Image.Image):
        raise InputError("expected a list of images, got a single image: wrap it in a list.")
    for index, image in enumerate(images):
        if not isinstance(image, Image.Image):
            raise InputError(
                f"image {index} is a {type(image).__name__}; expected a PIL.Image.Image "
                "(open files with PIL.Image.open or use encode_image_files)."
            )
        if image.width == 0 or image.height == 0:
            raise InputError(f"image {index} is empty ({image.width}x{image.height} pixels).")


def to_rgb(image: Image.Image) -> Image.Image:
    """Return an RGB copy of ``image``, transparent pixels composited onto white."""
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        page = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(page, rgba).convert("RGB")
    return image.convert("RGB")


def resize_center_crop(image: Image.Image, crop_size: int, resize_size: int) -> Image.Image:
    """Bicubic-resize so the shorter side is ``resize_size``, then crop the central square.

    The classic ImageNet evaluation transform (resize to 256, crop 224), written with Pillow only.
    """
    width, height = image.size
    scale = resize_size / min(width, height)
    new_size = (max(crop_size, round(width * scale)), max(crop_size, round(height * scale)))
    resized = image.resize(new_size, Image.Resampling.BICUBIC)
    left = round((new_size[0] - crop_size) / 2)
    top = round((new_size[1] - crop_size) / 2)
    return resized.crop((left, top, left + crop_size, top + crop_size))
