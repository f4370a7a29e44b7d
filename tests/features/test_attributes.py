import time

import numpy as np
import pytest
from PIL import Image, ImageFilter

from adcraft.errors import InputError
from adcraft.features.attributes import (
    ATTRIBUTE_NAMES,
    attribute_matrix,
    compute_attributes,
    uniqueness,
)

RANGES = {
    "brightness": (0.0, 1.0),
    "contrast": (0.0, 0.5),
    "colourfulness": (0.0, 1.0),
    "sharpness": (0.0, 1.0),
    "symmetry": (0.0, 1.0),
    "product_area": (0.0, 1.0),
    "clutter": (0.0, 1.0),
}


def flat(value: int | tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> Image.Image:
    colour = (value,) * 3 if isinstance(value, int) else value
    return Image.new("RGB", size, colour)


def noise(seed: int = 0, shape: tuple[int, int] = (96, 128)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8))


def test_brightness_orders_grey_levels_and_equals_the_level() -> None:
    dark, light = compute_attributes(flat(50)), compute_attributes(flat(200))
    assert light["brightness"] > dark["brightness"]
    assert light["brightness"] == pytest.approx(200 / 255, abs=1e-4)
    assert dark["contrast"] == pytest.approx(0.0, abs=1e-6)


def test_contrast_is_luma_spread() -> None:
    halves = np.zeros((40, 40, 3), dtype=np.uint8)
    halves[:, 20:] = 255
    assert compute_attributes(Image.fromarray(halves))["contrast"] == pytest.approx(0.5, abs=1e-4)


def test_grey_has_no_colourfulness_and_saturated_colours_have_much() -> None:
    checker = np.zeros((32, 32, 3), dtype=np.uint8)
    checker[::2, ::2] = (255, 0, 0)
    checker[1::2, 1::2] = (255, 0, 0)
    checker[checker.sum(axis=2) == 0] = (0, 200, 0)
    grey = compute_attributes(noise().convert("L").convert("RGB"))["colourfulness"]
    pastel = compute_attributes(flat((200, 180, 170)))["colourfulness"]
    vivid = compute_attributes(Image.fromarray(checker))["colourfulness"]
    assert grey == pytest.approx(0.0, abs=1e-6)
    assert 0 < pastel < vivid and vivid > 0.8


def test_colourfulness_follows_hasler_susstrunk_formula() -> None:
    pixels = np.asarray(noise(3), dtype=np.float64)
    rg = pixels[..., 0] - pixels[..., 1]
    yb = 0.5 * (pixels[..., 0] + pixels[..., 1]) - pixels[..., 2]
    m = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    value = compute_attributes(noise(3))["colourfulness"]
    assert value == pytest.approx(np.tanh(m / 109), abs=1e-5)


def test_mirror_symmetric_image_has_symmetry_one() -> None:
    for width in (40, 41):
        left = np.asarray(noise(1, (30, width // 2)))
        middle = np.asarray(noise(2, (30, width % 2)))
        symmetric = np.concatenate([left, middle, left[:, ::-1]], axis=1)
        assert compute_attributes(Image.fromarray(symmetric))["symmetry"] == pytest.approx(1.0)
    assert compute_attributes(noise())["symmetry"] < 0.8


def test_noise_is_more_cluttered_than_a_flat_image() -> None:
    assert compute_attributes(flat(128))["clutter"] == 0.0
    assert compute_attributes(noise())["clutter"] > 0.5


def test_blur_lowers_sharpness_and_matches_the_laplacian_variance() -> None:
    from scipy import ndimage

    image = noise(4)
    blurred = image.filter(ImageFilter.GaussianBlur(3))
    assert compute_attributes(blurred)["sharpness"] < compute_attributes(image)["sharpness"]
    pixels = np.asarray(blurred, dtype=np.float64)
    luma = pixels @ np.array([0.299, 0.587, 0.114])
    variance = ndimage.laplace(luma)[1:-1, 1:-1].var()
    expected = variance / (variance + 100)
    assert compute_attributes(blurred)["sharpness"] == pytest.approx(expected, rel=1e-4)


def test_product_area_equals_mask_fraction_and_clutter_ignores_the_product() -> None:
    pixels = np.full((60, 80, 3), 255, dtype=np.uint8)
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:40, 20:70] = True
    pixels[mask] = np.asarray(noise(5, (30, 50))).reshape(-1, 3)
    image = Image.fromarray(pixels)
    with_mask = compute_attributes(image, mask)
    assert with_mask["product_area"] == pytest.approx(mask.mean())
    # the busy product is inside the mask: outside it, only a thin ring touches the product's edge
    assert with_mask["clutter"] < 0.1 < compute_attributes(image)["clutter"]
    for encoded in (mask.astype(np.uint8) * 255, mask.astype(np.float32)):
        assert compute_attributes(image, encoded)["product_area"] == pytest.approx(mask.mean())


def test_product_area_without_mask_estimates_the_non_background_part() -> None:
    pixels = np.full((100, 100, 3), 250, dtype=np.uint8)
    pixels[20:60, 30:80] = (30, 60, 200)
    estimate = compute_attributes(Image.fromarray(pixels))["product_area"]
    assert estimate == pytest.approx(40 * 50 / 100**2)


def test_transparent_cut_out_is_judged_on_white() -> None:
    cut_out = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    cut_out.paste((10, 10, 10, 255), (10, 10, 30, 30))
    values = compute_attributes(cut_out)
    assert values["product_area"] == pytest.approx(0.16)
    assert values["brightness"] > 0.8


def test_values_stay_in_range_for_odd_images() -> None:
    images = [
        noise(6),
        flat(0),
        flat(255, (1, 1)),
        flat((0, 0, 255), (2, 5)),
        noise(7).convert("L"),
        noise(8).convert("P"),
        noise(9, (700, 300)),  # downscaled for analysis
        Image.new("RGBA", (20, 30), (255, 0, 0, 100)),
    ]
    for image in images:
        values = compute_attributes(image)
        assert tuple(values) == ATTRIBUTE_NAMES
        for name, (low, high) in RANGES.items():
            assert type(values[name]) is float
            assert low <= values[name] <= high, (image.size, image.mode, name, values[name])


def test_large_images_keep_exact_mask_area() -> None:
    mask = np.zeros((700, 900), dtype=bool)
    mask[:123, :456] = True
    values = compute_attributes(noise(10, (700, 900)), mask)
    assert values["product_area"] == pytest.approx(mask.mean())


def test_bad_masks_raise_input_error() -> None:
    with pytest.raises(InputError, match="shape"):
        compute_attributes(flat(0, (10, 8)), np.zeros((10, 8), dtype=bool))  # (height, width) is (8, 10)
    with pytest.raises(InputError, match="booleans or numbers"):
        compute_attributes(flat(0, (4, 4)), np.full((4, 4), "x"))
    with pytest.raises(InputError, match="PIL.Image"):
        compute_attributes(np.zeros((4, 4, 3)))  # type: ignore[arg-type]


def test_a_512_pixel_image_takes_well_under_20_ms() -> None:
    image = noise(11, (512, 512))
    compute_attributes(image)
    timings = []
    for _ in range(20):  # the best of 20 runs, so a busy machine does not fail the test
        started = time.perf_counter()
        compute_attributes(image)
        timings.append(time.perf_counter() - started)
    assert min(timings) < 0.020


def test_attribute_matrix_matches_per_image_values() -> None:
    images = [noise(12), flat(30), flat((250, 10, 10))]
    masks = [None, np.ones((48, 64), dtype=bool), None]
    matrix, names = attribute_matrix(images, masks)
    assert matrix.shape == (3, len(ATTRIBUTE_NAMES)) and names == list(ATTRIBUTE_NAMES)
    for row, (image, mask) in enumerate(zip(images, masks, strict=True)):
        expected = compute_attributes(image, mask)
        np.testing.assert_allclose(matrix[row], [expected[n] for n in names], rtol=1e-6)
    with pytest.raises(InputError, match="masks"):
        attribute_matrix(images, masks[:2])


def test_uniqueness_within_groups() -> None:
    base = np.array([1.0, 0.0, 0.0])
    features = np.stack([base, 2 * base, base, [0.0, 1.0, 0.0], [0.0, 0.0, 5.0], [0.0, 0.0, 1.0]])
    groups = ["shoes", "shoes", "shoes", "shoes", "bags", "hats"]
    scores = uniqueness(features, groups)
    # the three parallel shoes each see one orthogonal peer out of three
    np.testing.assert_allclose(scores[:3], 1 - 2 / 3)
    assert scores[3] == pytest.approx(1.0)  # orthogonal to all its peers
    assert scores[4] == scores[5] == 0.5  # alone in their group
    assert uniqueness(features, groups, singleton_value=0.0)[5] == 0.0
    # another group's members do not affect a group's scores
    alone = uniqueness(features[:4], groups[:4])
    np.testing.assert_allclose(alone, scores[:4])


def test_uniqueness_rejects_mismatched_inputs() -> None:
    with pytest.raises(InputError, match="groups"):
        uniqueness(np.ones((3, 2)), ["a", "b"])
    with pytest.raises(InputError, match="2-d"):
        uniqueness(np.ones(3), ["a", "b", "c"])
