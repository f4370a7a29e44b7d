"""The turned and glass goods: mug, bottle, perfume and vase.

Each returns its parts in object units; the frame fit makes the units irrelevant.
"""

from __future__ import annotations

import math

from adcraft.simulator.photos.colors import WHITE, Color, contrast, mix, scale, shadow, to_color
from adcraft.simulator.photos.geometry import arc, bbox, cut, ellipse, lathe, poly, radius_at, rounded, rrect, stroke
from adcraft.simulator.photos.shading import Part
from adcraft.simulator.photos.style import PhotoStyle


def _turned_rim(r: float, e: float, y: float, color: Color, gloss: float, wall: float) -> list[Part]:
    """The open top of a turned vessel: the lip and the darker inside wall."""
    inner = r - wall
    return [
        Part(ellipse(0, y, r, e), scale(color, 1.08), shade="flat", gloss=gloss * 0.5),
        Part(ellipse(0, y + wall * 0.15, inner, e * inner / r), scale(color, 0.55), shade="inside",
             gloss=gloss * 0.4, ambient=0.3),
    ]


def mug(st: PhotoStyle) -> list[Part]:
    base, acc = to_color(st.base_color), to_color(st.accent_color)
    h, r = 1.0 * st.height, 0.44 * st.width
    profile = [
        [(0.0, r), (h, r)],
        [(0.0, r), (0.5 * h, 0.92 * r), (h, 0.82 * r)],
        [(0.0, 0.88 * r), (0.5 * h, r), (h, 0.86 * r)],
    ][st.variant % 3]
    e = 0.2 * profile[0][1]
    r_mid = radius_at(profile, 0.45 * h)
    handle_rx, handle_ry = 0.17 + 0.08 * st.width, 0.28 * h
    hx, thick = r_mid + handle_rx * 0.45, 0.09
    handle = ellipse(hx, 0.47 * h, handle_rx + thick / 2, handle_ry + thick / 2) + cut(
        ellipse(hx, 0.47 * h, handle_rx - thick / 2, handle_ry - thick / 2))
    return [
        Part(handle, base, shade="puffy", gloss=st.gloss, relief=0.6),
        Part(lathe(profile, e, e * 1.15), base, shade="cylinder", gloss=st.gloss,
             pattern=st.pattern, accent=acc, curve=0.2, block_at=0.55),
        *_turned_rim(profile[0][1], e, 0.0, base, st.gloss, 0.035),
    ]


def _label_text(x0: float, y0: float, x1: float, y1: float, ink: Color) -> list[Part]:
    """Two or three bars of "print" that make a band read as a label."""
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    return [
        Part(rrect(cx - 0.34 * w, y0 + 0.28 * h, cx + 0.34 * w, y0 + 0.46 * h, 0.02), ink, shade="flat"),
        Part(rrect(cx - 0.22 * w, y0 + 0.58 * h, cx + 0.22 * w, y0 + 0.68 * h, 0.01), ink, shade="flat"),
    ]


def bottle(st: PhotoStyle) -> list[Part]:
    base, acc, det = to_color(st.base_color), to_color(st.accent_color), to_color(st.detail_color)
    h = 1.0 * st.height
    variant = st.variant % 3
    if variant == 0:  # wine bottle: long neck, foil capsule, paper label
        r = 0.23 * st.width
        profile = [(0.0, 0.055), (0.22 * h, 0.06), (0.33 * h, 0.1), (0.42 * h, 0.9 * r),
                   (0.48 * h, r), (h, r)]
        body = lathe(profile, 0.01, 0.035)
        capsule = lathe([(0.0, 0.062), (0.2 * h, 0.066)], 0.012, 0.012)
        band = rrect(-r * 1.1, 0.58 * h, r * 1.1, 0.86 * h, 0.0)
        label_color = acc
        parts = [
            Part(body, base, shade="cylinder", gloss=st.gloss, ambient=0.3),
            Part(capsule, det, shade="cylinder", gloss=0.7),
            Part(ellipse(0, 0.0, 0.062, 0.012), scale(det, 1.15), shade="flat"),
        ]
        label_box = (-0.6 * r, 0.58 * h, 0.6 * r, 0.86 * h)
    elif variant == 1:  # sports bottle: screw cap with a carry loop
        r = 0.24 * st.width
        profile = [(0.12 * h, 0.13), (0.17 * h, 0.17), (0.25 * h, r), (0.55 * h, 0.93 * r),
                   (0.62 * h, r), (h, r)]
        body = lathe(profile, 0.02, 0.045)
        cap = rrect(-0.14, 0.02 * h, 0.14, 0.14 * h, 0.025)
        loop = stroke(arc(0.0, 0.02 * h, 0.07, 0.06, math.pi, 2 * math.pi, 30), 0.035)
        ridges = [op for k in range(-3, 4) for op in stroke([(0.035 * k, 0.03 * h), (0.035 * k, 0.13 * h)], 0.008)]
        band = rrect(-r * 1.1, 0.66 * h, r * 1.1, 0.9 * h, 0.0)
        label_color = acc
        parts = [
            Part(loop, det, shade="puffy", gloss=0.4, relief=0.3),
            Part(body, base, shade="cylinder", gloss=st.gloss, pattern=st.pattern, accent=acc,
                 curve=0.15, block_at=0.5),
            Part(cap, det, shade="cylinder", gloss=0.5),
            Part(ridges, shadow(det), shade="flat", clip=cap),
        ]
        label_box = (-0.6 * r, 0.66 * h, 0.6 * r, 0.9 * h)
    else:  # pump bottle: collar, stem and nozzle
        r = 0.26 * st.width
        profile = [(0.33 * h, 0.15), (0.37 * h, 0.8 * r), (0.43 * h, r), (h, 0.97 * r)]
        body = lathe(profile, 0.03, 0.05)
        head = rrect(-0.1, 0.06 * h, 0.1, 0.13 * h, 0.02)
        nozzle = stroke([(0.05, 0.085 * h), (0.22, 0.08 * h), (0.26, 0.095 * h)], 0.035)
        stem = rrect(-0.025, 0.12 * h, 0.025, 0.25 * h, 0.0)
        collar = rrect(-0.13, 0.23 * h, 0.13, 0.36 * h, 0.025)
        band = rrect(-r * 1.1, 0.56 * h, r * 1.1, 0.84 * h, 0.0)
        label_color = mix(acc, WHITE, 0.15)
        parts = [
            Part(nozzle, det, shade="puffy", gloss=0.5, relief=0.3),
            Part(stem, scale(det, 1.2), shade="cylinder", gloss=0.6),
            Part(head, det, shade="cylinder", gloss=0.6),
            Part(body, base, shade="cylinder", gloss=st.gloss, pattern=st.pattern, accent=acc,
                 curve=0.15, block_at=0.35),
            Part(collar, det, shade="cylinder", gloss=0.6),
        ]
        label_box = (-0.6 * r, 0.56 * h, 0.6 * r, 0.84 * h)
    parts.append(Part(band, label_color, shade="cylinder", gloss=0.1, clip=body, ambient=0.45))
    parts += _label_text(*label_box, contrast(label_color))
    return parts


def perfume(st: PhotoStyle) -> list[Part]:
    liquid, acc, det = to_color(st.base_color), to_color(st.accent_color), to_color(st.detail_color)
    glass = mix(liquid, WHITE, 0.6)
    w, h = 0.36 * st.width, 1.0 * st.height
    variant = st.variant % 3
    top = 0.36 * h
    if variant == 0:  # rectangular flacon
        body = rrect(-w, top, w, h, 0.05)
        inner = rrect(-w + 0.05, top + 0.12 * h, w - 0.05, h - 0.05, 0.03)
        shade = "flat"
    elif variant == 1:  # round flacon
        body = ellipse(0, (top + h) / 2, w * 1.05, (h - top) / 2)
        inner = ellipse(0, (top + h) / 2 + 0.04, w * 1.05 - 0.06, (h - top) / 2 - 0.08)
        shade = "sphere"
    else:  # tall tapered flacon
        body = poly(rounded([(-0.7 * w, top), (0.7 * w, top), (w, h), (-w, h)], 0.05))
        inner = poly(rounded([(-0.7 * w + 0.05, top + 0.12 * h), (0.7 * w - 0.05, top + 0.12 * h),
                              (w - 0.06, h - 0.05), (-w + 0.06, h - 0.05)], 0.03))
        shade = "cylinder"
    bx = bbox(body)
    streak = rrect(bx[0] + 0.05, top + 0.06, bx[0] + 0.09, h - 0.08, 0.02)
    edge = rrect(bx[2] - 0.06, top, bx[2], h, 0.0)
    cap_w = 0.12 + 0.06 * st.width
    cap = [
        rrect(-cap_w, 0.02 * h, cap_w, 0.29 * h, 0.02),
        ellipse(0, 0.16 * h, cap_w * 1.1, 0.15 * h),
        poly(rounded([(-cap_w * 0.8, 0.0), (cap_w * 0.8, 0.0), (cap_w * 1.2, 0.29 * h),
                      (-cap_w * 1.2, 0.29 * h)], 0.02)),
    ][variant]
    plate = rrect(-0.55 * w, 0.62 * h, 0.55 * w, 0.76 * h, 0.01)
    return [
        Part(rrect(-0.08, 0.26 * h, 0.08, top + 0.03, 0.01), det, shade="cylinder", gloss=0.8),
        Part(body, glass, shade=shade, gloss=0.9, ambient=0.6),
        Part(inner, liquid, shade=shade, gloss=0.35, ambient=0.5, color_bottom=scale(liquid, 0.8)),
        Part(edge, WHITE, shade="flat", opacity=0.35, clip=body),
        Part(streak, WHITE, shade="flat", opacity=0.6, clip=body),
        Part(plate, det, shade="flat", gloss=0.6, opacity=0.9),
        *_label_text(-0.55 * w, 0.62 * h, 0.55 * w, 0.76 * h, contrast(det)),
        Part(cap, acc, shade="sphere" if variant == 1 else "cylinder", gloss=0.85),
    ]


def vase(st: PhotoStyle) -> list[Part]:
    base, acc = to_color(st.base_color), to_color(st.accent_color)
    h, r = 1.0 * st.height, 0.36 * st.width
    profile = [
        [(0.0, 0.45 * r), (0.08 * h, 0.36 * r), (0.22 * h, 0.34 * r), (0.48 * h, 0.9 * r),
         (0.7 * h, r), (0.9 * h, 0.78 * r), (h, 0.55 * r)],
        [(0.0, 0.66 * r), (0.05 * h, 0.6 * r), (0.5 * h, 0.64 * r), (0.95 * h, 0.62 * r), (h, 0.58 * r)],
        [(0.0, 0.6 * r), (0.07 * h, 0.5 * r), (0.38 * h, r), (0.75 * h, 0.86 * r), (h, 0.45 * r)],
    ][st.variant % 3]
    e = 0.2 * profile[0][1]
    return [
        Part(lathe(profile, e, 0.2 * profile[-1][1]), base, shade="cylinder", gloss=st.gloss,
             pattern=st.pattern, accent=acc, curve=0.2, block_at=0.62, pattern_scale=0.9),
        *_turned_rim(profile[0][1], e, 0.0, base, st.gloss, 0.03),
    ]
