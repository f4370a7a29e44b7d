"""The worn and carried goods: watch, headphones, backpack, handbag, sneaker, t-shirt, dress, sunglasses.

Each returns its parts in object units; the frame fit makes the units irrelevant.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from adcraft.simulator.photos.colors import DARK, WHITE, contrast, luma, mix, scale, shadow, to_color
from adcraft.simulator.photos.geometry import Shape, arc, cut, dashes, ellipse, poly, rounded, rrect, spline, stroke
from adcraft.simulator.photos.shading import Part
from adcraft.simulator.photos.style import PhotoStyle


def watch(st: PhotoStyle) -> list[Part]:
    strap, dial, metal = to_color(st.base_color), to_color(st.accent_color), to_color(st.detail_color)
    variant = st.variant % 3
    sw = 0.36 * st.width
    R = 0.3 * (0.6 + 0.4 * st.width)
    h = 0.7 + 0.5 * st.height
    cy = h / 2
    top = poly(rounded([(-sw / 2, cy), (sw / 2, cy), (0.44 * sw, 0.0), (-0.44 * sw, 0.0)], 0.05))
    bottom = poly(rounded([(-sw / 2, cy), (sw / 2, cy), (0.44 * sw, h), (-0.44 * sw, h)], 0.12))
    parts: list[Part] = []
    if variant == 1:  # metal bracelet
        links = [op for y in np.arange(0.04, h, 0.05) for op in stroke([(-sw, y), (sw, y)], 0.008)]
        parts += [
            Part(top, metal, shade="cylinder", gloss=0.8),
            Part(bottom, metal, shade="cylinder", gloss=0.8),
            Part(links, shadow(metal), shade="flat", clip=top + bottom),
            Part(rrect(-0.16 * sw, 0, 0.16 * sw, h, 0), scale(metal, 1.12), shade="flat",
                 clip=top + bottom, opacity=0.6),
        ]
    else:  # leather or rubber strap with holes, stitching, keeper and buckle
        stitch = []
        for s in (-1, 1):
            stitch += dashes(np.array([(s * 0.4 * sw, 0.03), (s * 0.45 * sw, cy - R)]), 0.03, 0.02, 0.006)
            stitch += dashes(np.array([(s * 0.45 * sw, cy + R), (s * 0.4 * sw, h - 0.05)]), 0.03, 0.02, 0.006)
        holes = [op for y in (h - 0.21, h - 0.145, h - 0.08) for op in ellipse(0, y, 0.018, 0.018)]
        gloss = 0.35 if variant == 0 else 0.15
        parts += [
            Part(rrect(-0.6 * sw, 0.0, 0.6 * sw, 0.1, 0.03) + cut(rrect(-0.45 * sw, 0.025, 0.45 * sw, 0.075, 0.02)),
                 metal, shade="puffy", gloss=0.8, relief=0.2),
            Part(top, strap, shade="puffy", gloss=gloss, relief=0.7),
            Part(bottom, strap, shade="puffy", gloss=gloss, relief=0.7),
            Part(rrect(-0.55 * sw, 0.16, 0.55 * sw, 0.22, 0.01), scale(strap, 0.85), shade="puffy",
                 gloss=gloss, relief=0.2),
            Part(holes, DARK, shade="flat"),
        ]
        if variant == 0:
            parts.append(Part(stitch, mix(strap, WHITE, 0.45), shade="flat"))
    lugs = [op for sx in (-1, 1) for sy in (-1, 1)
            for op in rrect(sx * 0.36 * sw - 0.03, cy + sy * R * 0.95 - 0.06, sx * 0.36 * sw + 0.03,
                            cy + sy * R * 0.95 + 0.06, 0.015)]
    if variant == 2:
        case = rrect(-R, cy - R, R, cy + R, 0.08)
        face = rrect(-0.78 * R, cy - 0.78 * R, 0.78 * R, cy + 0.78 * R, 0.05)
        bezel = rrect(-0.9 * R, cy - 0.9 * R, 0.9 * R, cy + 0.9 * R, 0.07)
    else:
        case = ellipse(0, cy, R, R)
        bezel = ellipse(0, cy, 0.9 * R, 0.9 * R)
        face = ellipse(0, cy, 0.8 * R, 0.8 * R)
    ink = contrast(dial)
    markers = []
    for k in range(12):
        a = k * math.pi / 6
        d = np.array([math.sin(a), -math.cos(a)])
        length = 0.14 if k % 3 == 0 else 0.08
        p0, p1 = d * 0.7 * R, d * (0.7 - length) * R
        markers += stroke([(p0[0], cy + p0[1]), (p1[0], cy + p1[1])], 0.022 if k % 3 == 0 else 0.012)

    def hand(angle: float, length: float, width: float) -> Shape:
        d = np.array([math.sin(angle), -math.cos(angle)])
        n = np.array([d[1], -d[0]]) * width / 2
        tip, tail = d * length, -d * 0.08 * R
        return poly([tail + n + (0, cy), tip + n * 0.3 + (0, cy), tip - n * 0.3 + (0, cy), tail - n + (0, cy)])

    sec = to_color((200, 40, 40)) if luma(dial) > 0.3 else to_color((230, 120, 40))
    return parts + [
        Part(lugs, metal, shade="puffy", gloss=0.8, relief=0.1),
        Part(rrect(R * 0.9, cy - 0.045, R + 0.06, cy + 0.045, 0.015), metal, shade="cylinder", gloss=0.8),
        Part(case, metal, shade="sphere", gloss=0.9, ambient=0.45),
        Part(bezel, mix(metal, DARK, 0.25), shade="sphere", gloss=0.7, ambient=0.5),
        Part(face, dial, shade="flat", ambient=0.5),
        Part(markers + hand(math.radians(305), 0.45 * R, 0.05) + hand(math.radians(60), 0.66 * R, 0.035), ink,
             shade="flat"),
        Part(stroke([(0, cy + 0.12 * R), (0.25 * R, cy - 0.62 * R)], 0.008), sec, shade="flat"),
        Part(ellipse(0, cy, 0.025, 0.025), metal, shade="sphere", gloss=0.8),
        Part(ellipse(-0.25 * R, cy - 0.35 * R, 0.55 * R, 0.35 * R), WHITE, shade="flat", opacity=0.12,
             clip=face),
    ]


def headphones(st: PhotoStyle) -> list[Part]:
    shell, acc, det = to_color(st.base_color), to_color(st.accent_color), to_color(st.detail_color)
    X, h = 0.36 * st.width, st.height
    cup_y, rx, ry = 0.7 * h, 0.14, 0.21 * h
    band_y = 0.44 * h
    metal = mix(det, WHITE, 0.35)
    band = stroke(arc(0, band_y, X, band_y - 0.02, math.pi, 2 * math.pi, 80), 0.08)
    pad = stroke(arc(0, band_y, X - 0.05, band_y - 0.075, 1.2 * math.pi, 1.8 * math.pi, 60), 0.075)
    parts = [
        Part(band, shell, shade="puffy", gloss=st.gloss, relief=0.35),
        Part(pad, shadow(det), shade="puffy", gloss=0.15, relief=0.45),
    ]
    # puffy and flat parts of the two sides share one part; ellipsoid shading needs one cup per part
    sliders: Shape = []
    yokes: Shape = []
    cushions: Shape = []
    rings: Shape = []
    cups = []
    for s in (-1, 1):
        cx = s * X
        sliders += rrect(cx - 0.014, band_y - 0.03, cx + 0.014, cup_y - ry - 0.02, 0.007)
        yokes += stroke(arc(cx, cup_y, rx + 0.035, ry + 0.035, 1.15 * math.pi, 1.85 * math.pi, 40), 0.024)
        cushions += ellipse(cx - s * 0.085, cup_y + 0.005, 0.085, ry * 0.97)
        rings += ellipse(cx, cup_y, 0.3 * rx, 0.3 * ry) + cut(ellipse(cx, cup_y, 0.2 * rx, 0.2 * ry))
        cups += [
            Part(ellipse(cx, cup_y, rx, ry), shell, shade="sphere", gloss=st.gloss, ambient=0.4),
            Part(ellipse(cx + s * 0.008, cup_y, 0.74 * rx, 0.74 * ry), scale(shell, 0.93), shade="sphere",
                 gloss=st.gloss, ambient=0.55),
        ]
    parts += [
        Part(sliders, metal, shade="puffy", gloss=0.9, relief=0.08),
        Part(yokes, metal, shade="puffy", gloss=0.8, relief=0.15),
        Part(cushions, shadow(det), shade="puffy", gloss=0.15, relief=0.6),
        *cups,
        Part(rings, acc, shade="flat", gloss=0.5),
    ]
    return parts


def backpack(st: PhotoStyle) -> list[Part]:
    base, acc, det = to_color(st.base_color), to_color(st.accent_color), to_color(st.detail_color)
    bw, h = 0.78 * st.width, 1.0 * st.height
    half = bw / 2
    straps = []
    for s in (-1, 1):
        straps += stroke(spline([(s * 0.3 * bw, 0.12 * h), (s * 0.56 * bw, 0.38 * h),
                                 (s * 0.55 * bw, 0.7 * h), (s * 0.42 * bw, 0.9 * h)]), 0.085)
    body = rrect(-half, 0.05 * h, half, h, 0.85 * half, 0.1)
    r_top = 0.85 * half
    zip_path = np.vstack([
        [(-half + 0.06, 0.5 * h)],
        arc(0, 0.05 * h + r_top, r_top - 0.06, r_top - 0.06, math.pi, 2 * math.pi, 40),
        [(half - 0.06, 0.5 * h)],
    ])
    pocket = rrect(-0.68 * half, 0.56 * h, 0.68 * half, 0.94 * h, 0.09)
    pull = rrect(0.3 * half, 0.6 * h, 0.36 * half, 0.7 * h, 0.01)
    return [
        Part(straps, shadow(base), shade="puffy", relief=0.4),
        Part(stroke([(-0.09, 0.1 * h), (-0.06, 0.0), (0.06, 0.0), (0.09, 0.1 * h)], 0.035), det,
             shade="puffy", relief=0.2),
        Part(body, base, shade="puffy", gloss=st.gloss, relief=1.3, pattern=st.pattern, accent=acc,
             block_at=0.78, folds=0.03),
        Part(stroke(zip_path, 0.018), shadow(base), shade="flat"),
        Part(rrect(half * 0.62, 0.24 * h, half * 0.7, 0.34 * h, 0.01), det, shade="cylinder", gloss=0.6),
        Part(pocket, acc if st.pattern == "plain" else scale(base, 0.9), shade="puffy", gloss=st.gloss,
             relief=0.8),
        Part(stroke([(-0.6 * half, 0.6 * h), (0.6 * half, 0.6 * h)], 0.016), DARK, shade="flat"),
        Part(pull, det, shade="cylinder", gloss=0.6),
        Part(rrect(-0.08, 0.4 * h, 0.08, 0.47 * h, 0.015), mix(det, WHITE, 0.3), shade="puffy",
             relief=0.15),
    ]


def handbag(st: PhotoStyle) -> list[Part]:
    base, acc, det = to_color(st.base_color), to_color(st.accent_color), to_color(st.detail_color)
    W, h = 0.5 * st.width, st.height
    variant = st.variant % 3
    top = 0.36 * h
    if variant == 0:  # tote with two handles
        body = poly(rounded([(-W, top), (W, top), (0.86 * W, h), (-0.86 * W, h)], 0.08))

        def handle(drop: float) -> Shape:
            return stroke(spline([(-0.45 * W, top + drop), (-0.4 * W, 0.02), (0.4 * W, 0.02),
                                  (0.45 * W, top + drop)]), 0.05)

        tabs = [op for s in (-1, 1)
                for op in rrect(s * 0.45 * W - 0.04, top + 0.02, s * 0.45 * W + 0.04, top + 0.12, 0.01)]
        return [
            Part(handle(0.0), shadow(base), shade="puffy", gloss=st.gloss, relief=0.25),  # the back one
            Part(body, base, shade="puffy", gloss=st.gloss, relief=1.0, pattern=st.pattern, accent=acc,
                 block_at=0.72),
            Part(dashes(np.array([(-W + 0.04, top + 0.04), (W - 0.04, top + 0.04)]), 0.03, 0.02, 0.007),
                 mix(base, WHITE, 0.35), shade="flat"),
            Part(handle(0.06), base, shade="puffy", gloss=st.gloss, relief=0.25),
            Part(tabs, scale(base, 0.85), shade="puffy", relief=0.15, gloss=st.gloss),
        ]
    if variant == 1:  # satchel with flap, clasp and one handle
        body = rrect(-W, top, W, h, 0.09)
        flap_y = top + 0.42 * (h - top)
        flap = poly(np.vstack([[(-W, top)], spline([(-W, top + 0.02), (-0.95 * W, flap_y - 0.05),
                                                    (-0.7 * W, flap_y), (0.7 * W, flap_y),
                                                    (0.95 * W, flap_y - 0.05), (W, top + 0.02)]),
                               [(W, top)]]))
        flap_color = acc if st.pattern != "plain" else scale(base, 0.9)
        return [
            Part(stroke(spline([(-0.3 * W, top), (-0.25 * W, top - 0.22), (0.25 * W, top - 0.22),
                                (0.3 * W, top)]), 0.05), base, shade="puffy", gloss=st.gloss, relief=0.25),
            Part(body, base, shade="puffy", gloss=st.gloss, relief=1.0),
            Part(flap + rrect(-W, top, W, top + 0.05, 0.02), flap_color, shade="puffy", gloss=st.gloss,
                 relief=0.7),
            Part(dashes(spline([(-0.9 * W, flap_y - 0.06), (-0.68 * W, flap_y - 0.03),
                                (0.68 * W, flap_y - 0.03), (0.9 * W, flap_y - 0.06)]),
                        0.03, 0.02, 0.007), mix(flap_color, WHITE, 0.4), shade="flat"),
            Part(rrect(-0.07, flap_y - 0.04, 0.07, flap_y + 0.05, 0.015), det, shade="puffy", gloss=0.9,
                 relief=0.15),
        ]
    # half-moon bag with a top handle
    body = poly(arc(0, top, W, h - top, 0.0, math.pi, 80))
    return [
        Part(stroke(spline([(-0.5 * W, top), (-0.42 * W, 0.0), (0.42 * W, 0.0), (0.5 * W, top)]), 0.07),
             acc, shade="puffy", gloss=st.gloss, relief=0.3),
        Part(body, base, shade="puffy", gloss=st.gloss, relief=1.2, pattern=st.pattern, accent=acc,
             block_at=0.65),
        Part(stroke([(-0.9 * W, top + 0.035), (0.9 * W, top + 0.035)], 0.02), det, shade="flat"),
        Part(rrect(0.55 * W, top + 0.03, 0.6 * W, top + 0.12, 0.01), det, shade="cylinder", gloss=0.8),
    ]


def _rotate(parts: list[Part], degrees: float) -> list[Part]:
    a = math.radians(degrees)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])

    turned: dict[int, Shape] = {}  # a shape shared by several parts stays shared

    def turn(shape: Shape | None) -> Shape | None:
        if shape is None:
            return None
        if id(shape) not in turned:
            turned[id(shape)] = [replace(op, pts=op.pts @ rot.T) for op in shape]
        return turned[id(shape)]

    return [replace(p, shape=turn(p.shape), clip=turn(p.clip)) for p in parts]


def sneaker(st: PhotoStyle) -> list[Part]:
    upper_c, acc, det = to_color(st.base_color), to_color(st.accent_color), to_color(st.detail_color)
    L, H = st.width, 1.1 * st.height
    variant = st.variant % 3
    collar = -0.1 * H if variant == 2 else 0.06 * H
    sole_top = 0.33 * H
    upper = poly(spline([
        (0.05 * L, sole_top + 0.02), (0.005 * L, 0.22 * H), (0.02 * L, collar + 0.05 * H), (0.08 * L, collar),
        (0.2 * L, collar + 0.05 * H), (0.3 * L, 0.05 * H), (0.35 * L, 0.0), (0.42 * L, 0.03 * H),
        (0.56 * L, 0.13 * H), (0.75 * L, 0.2 * H), (0.92 * L, 0.24 * H), (0.995 * L, 0.3 * H),
        (0.97 * L, sole_top + 0.02), (0.5 * L, sole_top + 0.03),
    ], closed=True))
    sole_h = (0.13 if variant == 1 else 0.1) * H
    sole = poly(spline([
        (0.02 * L, sole_top - 0.01), (0.5 * L, sole_top + 0.005), (0.86 * L, sole_top - 0.005),
        (0.975 * L, sole_top - 0.02), (1.005 * L, sole_top + 0.04), (0.985 * L, sole_top + sole_h),
        (0.5 * L, sole_top + sole_h + 0.005), (0.04 * L, sole_top + sole_h), (0.0, sole_top + 0.05),
    ], closed=True))
    outsole = rrect(0.0, sole_top + sole_h - 0.03, 1.0 * L, sole_top + sole_h + 0.02, 0.02)
    block = st.pattern != "plain"
    sole_color = acc if (block and variant == 0) else mix(WHITE, acc, 0.06)
    toe = ellipse(1.0 * L, 0.34 * H, 0.2 * L, 0.13 * H)
    heel = poly(spline([(0.0, 0.12 * H), (0.17 * L, 0.16 * H), (0.2 * L, 0.36 * H), (0.0, 0.36 * H)],
                       closed=True))
    parts = [
        Part(rrect(0.29 * L, -0.03 * H, 0.4 * L, 0.2 * H, 0.03), scale(upper_c, 0.92), shade="puffy",
             relief=0.2),
        Part(upper, upper_c, shade="puffy", gloss=st.gloss, relief=0.55, folds=0.02),
        Part(toe, acc if block else scale(upper_c, 0.95), shade="puffy", gloss=st.gloss, clip=upper,
             relief=0.4),
        Part(heel, acc if block else shadow(upper_c), shade="puffy", gloss=st.gloss, clip=upper, relief=0.4),
        Part(stroke(spline([(0.04 * L, collar + 0.03 * H), (0.1 * L, collar + 0.015 * H),
                            (0.2 * L, collar + 0.065 * H), (0.29 * L, 0.07 * H)]), 0.025 * H),
             shadow(upper_c), shade="puffy", relief=0.1),
    ]
    if variant == 1:  # court shoe: three side stripes
        for k in range(3):
            x = 0.42 * L + k * 0.06 * L
            parts.append(Part(poly([(x, 0.09 * H + k * 0.03 * H), (x + 0.035 * L, 0.11 * H + k * 0.03 * H),
                                    (x - 0.04 * L, sole_top + 0.01), (x - 0.075 * L, sole_top)]),
                              acc, shade="puffy", relief=0.15, clip=upper))
    else:  # runner: a curved side logo
        top_curve = spline([(0.22 * L, 0.27 * H), (0.45 * L, 0.26 * H), (0.72 * L, 0.16 * H)], n=20)
        low_curve = spline([(0.72 * L, 0.16 * H), (0.45 * L, 0.3 * H), (0.2 * L, 0.29 * H)], n=20)
        parts.append(Part(poly(np.vstack([top_curve, low_curve])), acc if not block else det,
                          shade="puffy", relief=0.15, clip=upper))
    if variant == 2:
        parts.append(Part(ellipse(0.2 * L, 0.06 * H, 0.045 * L, 0.045 * L), acc, shade="puffy", relief=0.1))
    lace_line = spline([(0.33 * L, 0.05 * H), (0.45 * L, 0.09 * H), (0.6 * L, 0.155 * H)], n=20)
    laces, eyelets = [], []
    for t in np.linspace(0.05, 0.95, 5):
        i = int(t * (len(lace_line) - 1))
        p = lace_line[i]
        d = lace_line[min(i + 1, len(lace_line) - 1)] - lace_line[max(i - 1, 0)]
        nrm = np.array([d[1], -d[0]]) / np.linalg.norm(d)
        laces += stroke([p - nrm * 0.035 - d * 0.3, p + nrm * 0.035 + d * 0.3], 0.022)
        eyelets += ellipse(*(p + nrm * 0.045), 0.01, 0.01)
    parts += [
        Part(eyelets, shadow(upper_c), shade="flat"),
        Part(laces, det, shade="puffy", gloss=0.3, relief=0.1),
        Part(sole, sole_color, shade="puffy", gloss=0.2, relief=0.25),
        Part(outsole, scale(mix(det, to_color((90, 70, 50)), 0.3), 0.8), shade="puffy", relief=0.15),
        Part(dashes(np.array([(0.06 * L, sole_top - 0.02), (0.9 * L, sole_top - 0.02)]), 0.02, 0.015, 0.006),
             shadow(upper_c), shade="flat", clip=upper),
        Part(stroke([(0.04 * L, sole_top + 0.045 * H), (0.96 * L, sole_top + 0.045 * H)], 0.008),
             scale(sole_color, 0.8), shade="flat", clip=sole),
    ]
    return _rotate(parts, -17.0 - 8.0 * (st.width - 0.85) / 0.3)


def tshirt(st: PhotoStyle) -> list[Part]:
    base, acc = to_color(st.base_color), to_color(st.accent_color)
    W, H = st.width, st.height
    variant = st.variant % 3
    nw = 0.11
    hem = 0.95 * H
    if variant == 1:  # long sleeves
        sleeve = [(0.6 * W, 0.78 * H), (0.49 * W, 0.8 * H), (0.32 * W, 0.3)]
    else:
        sleeve = [(0.54 * W, 0.3), (0.42 * W, 0.39), (0.32 * W, 0.31)]
    right = [(nw, 0.0), (0.3 * W, 0.04), *sleeve, (0.33 * W, hem)]
    left = [(-x, y) for x, y in reversed(right)]
    outline = rounded(right + left, 0.025)
    back_neck = spline([(-nw, 0.0), (0.0, 0.025), (nw, 0.0)], n=12)
    front_neck = ([(-nw, 0.0), (0.0, 0.2), (nw, 0.0)] if variant == 2
                  else spline([(-nw, 0.0), (-0.07, 0.08), (0.0, 0.1), (0.07, 0.08), (nw, 0.0)], n=12))
    body = poly(outline) + cut(poly(np.vstack([back_neck, [(nw, -0.2), (-nw, -0.2)]])))
    sleeve_end = np.array(sleeve[:2])
    hem_stitch = []
    for s in (-1, 1):
        a, b = sleeve_end * (s, 1)
        inward = np.array(sleeve[2]) * (s, 1) - (a + b) / 2
        d = inward / np.linalg.norm(inward) * 0.035
        hem_stitch += dashes(np.array([a + d, b + d]), 0.02, 0.015, 0.006)
    hem_stitch += dashes(np.array([(-0.31 * W, hem - 0.04), (0.31 * W, hem - 0.04)]), 0.02, 0.015, 0.006)
    return [
        Part(body, base, shade="puffy", relief=0.8, folds=0.06, pattern=st.pattern, accent=acc,
             block_at=0.55, gloss=st.gloss),
        Part(poly(np.vstack([back_neck[::-1], front_neck[1:-1]])), scale(base, 0.62), shade="inside",
             ambient=0.6),
        Part(stroke(front_neck, 0.035), scale(base, 0.94) if st.pattern == "plain" else acc,
             shade="puffy", relief=0.1),
        Part(hem_stitch, shadow(base), shade="flat", opacity=0.7, clip=body),
    ]


def dress(st: PhotoStyle) -> list[Part]:
    base, acc = to_color(st.base_color), to_color(st.accent_color)
    W, H = st.width, st.height
    variant = st.variant % 3
    waist_y = 0.36
    hem = (1.05 if variant == 2 else 0.9) * H
    flare = (0.32 if variant == 2 else 0.42) * W
    right = spline([(0.12, waist_y), (0.17 * W, waist_y + 0.1), (0.72 * flare, waist_y + 0.62 * (hem - waist_y)),
                    (flare, hem)], n=14)
    left = np.stack([-right[::-1, 0], right[::-1, 1]], axis=1)
    skirt = poly(np.vstack([right, arc(0, hem, flare, 0.05, 0.0, math.pi, 40), left]))
    inside: Shape = []
    if variant == 1:  # cap sleeves and a round neck
        half = [(-0.12, waist_y + 0.01), (-0.15, 0.17), (-0.2, 0.2), (-0.25, 0.11), (-0.17, 0.02), (-0.07, 0.0)]
        bodice = poly(rounded(half + [(-x, y) for x, y in reversed(half)], 0.025))
        inside = poly(np.vstack([[(-0.07, 0.0)], spline([(-0.07, 0.0), (0.0, 0.07), (0.07, 0.0)], n=10)[1:],
                                 [(0.0, 0.012)]]))
        straps: Shape = []
    else:  # sleeveless with straps and a sweetheart or V neckline
        neck = [(0.0, 0.16)] if variant == 0 else [(0.0, 0.22)]
        bodice = poly([(-0.12, waist_y + 0.01), (-0.15, 0.18), (-0.13, 0.1), (-0.05, 0.11), *neck,
                       (0.05, 0.11), (0.13, 0.1), (0.15, 0.18), (0.12, waist_y + 0.01)])
        straps = stroke([(-0.115, 0.11), (-0.1, 0.0)], 0.022) + stroke([(0.115, 0.11), (0.1, 0.0)], 0.022)
    skirt_color = acc if st.pattern == "block" else base
    pattern = "plain" if st.pattern == "block" else st.pattern
    parts = [
        Part(skirt, skirt_color, shade="puffy", relief=0.7, folds=0.04, pattern=pattern, accent=acc,
             gloss=st.gloss, fan=(0.0, waist_y - 0.3, 0.4, 11 + 4 * variant)),
        Part(bodice, base, shade="puffy", relief=0.5, folds=0.03, pattern=pattern, accent=acc, gloss=st.gloss),
        Part(rrect(-0.15, waist_y - 0.02, 0.15, waist_y + 0.035, 0.0), acc if st.pattern != "block" else base,
             shade="puffy", relief=0.12, clip=skirt + bodice, gloss=0.3),
    ]
    if straps:
        parts.insert(0, Part(straps, base, shade="puffy", relief=0.1))
    if inside:
        parts.append(Part(inside, scale(base, 0.6), shade="inside", ambient=0.6))
    return parts


def sunglasses(st: PhotoStyle) -> list[Part]:
    lens_color, tint2, frame = to_color(st.base_color), to_color(st.accent_color), to_color(st.detail_color)
    W, H = st.width, st.height
    variant = st.variant % 3
    cx, cy = 0.25 * W, 0.78
    half_width, rim = [(0.22, 0.06), (0.2, 0.03), (0.2, 0.025)][variant]
    shape = [
        [(-0.22, -0.16), (0.22, -0.17), (0.18, 0.15), (-0.17, 0.17)],  # wayfarer
        [],  # round
        [(-0.21, -0.15), (0.0, -0.17), (0.21, -0.14), (0.19, 0.1), (0.04, 0.21), (-0.13, 0.14)],  # aviator
    ][variant]

    def outline(side: int, k: float) -> np.ndarray:
        """The right (side 1) or left (side -1) lens, grown by ``k`` for its frame."""
        if variant == 1:
            return arc(side * cx, cy, 0.2 * W * k, 0.2 * H * k, n=80)
        pts = [(side * (x * W * k + cx), y * H * k + cy) for x, y in shape]
        return rounded(pts, 0.08 * k) if variant == 0 else spline(pts, closed=True)

    k_frame = 1.0 + rim / (half_width * W)
    hinge_x, hinge_y = cx + half_width * W * k_frame, cy - 0.1 * H
    temples: Shape = []
    w = 0.045 if variant == 0 else 0.03
    for s in (-1, 1):
        # the temples recede away from the camera, so they converge and thin out
        temples += stroke(spline([(s * hinge_x, hinge_y), (s * (hinge_x - 0.015), 0.42),
                                  (s * (hinge_x - 0.1), 0.16)]), w, 0.55 * w)
    parts = [Part(temples, shadow(frame), shade="puffy", gloss=0.6, relief=0.2)]
    bridge = spline([(-cx + 0.16, cy - 0.11 * H), (0.0, cy - 0.14 * H), (cx - 0.16, cy - 0.11 * H)])
    bars = stroke(bridge, 0.05 if variant == 0 else 0.025)
    if variant == 2:
        bars += stroke([(-cx + 0.1, cy - 0.16 * H), (cx - 0.1, cy - 0.16 * H)], 0.02)
    lenses = [poly(outline(s, 1.0)) for s in (-1, 1)]
    glints = [op for s in (-1, 1) for op in poly([(s * cx - 0.2, cy + 0.02), (s * cx - 0.02, cy - 0.2),
                                                      (s * cx + 0.04, cy - 0.2), (s * cx - 0.14, cy + 0.02)])]
    hinges = [op for s in (-1, 1)
              for op in rrect(s * hinge_x - 0.03, hinge_y - 0.025, s * hinge_x + 0.03, hinge_y + 0.03, 0.012)]
    parts += [
        Part(bars, frame, shade="puffy", gloss=0.7, relief=0.15),
        Part(poly(outline(-1, k_frame)) + poly(outline(1, k_frame)), frame, shade="puffy", gloss=0.7,
             relief=0.25),
        *(Part(lens, lens_color, shade="sphere", gloss=0.95, ambient=0.75, color_bottom=tint2) for lens in lenses),
        Part(glints, WHITE, shade="flat", opacity=0.22, clip=lenses[0] + lenses[1]),
        Part(hinges, mix(frame, WHITE, 0.35), shade="puffy", gloss=0.9, relief=0.1),
    ]
    return parts
