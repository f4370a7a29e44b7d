"""The home goods: lamp and chair.

Each returns its parts in object units; the frame fit makes the units irrelevant.
"""

from __future__ import annotations

import math

from adcraft.simulator.photos.colors import mix, scale, to_color
from adcraft.simulator.photos.geometry import Shape, arc, ellipse, lathe, poly, rounded, rrect, spline, stroke
from adcraft.simulator.photos.shading import Part
from adcraft.simulator.photos.style import PhotoStyle


def lamp(st: PhotoStyle) -> list[Part]:
    shade_color, acc, det = to_color(st.base_color), to_color(st.accent_color), to_color(st.detail_color)
    sw, h = st.width, st.height
    rt, rb, sh = 0.25 * sw, 0.42 * sw, 0.42 * h
    shade = lathe([(0.0, rt), (sh, rb)], 0.18 * rt, 0.18 * rb)
    glow = mix((1.0, 0.86, 0.6), shade_color, 0.2)
    variant = st.variant % 3
    foot_y = sh + 0.58 * h
    if variant == 0:  # ceramic gourd base
        prof = [(sh + 0.06 * h, 0.05), (sh + 0.14 * h, 0.07), (sh + 0.32 * h, 0.24 * sw),
                (sh + 0.48 * h, 0.2 * sw), (foot_y, 0.1 * sw)]
        base = [Part(lathe(prof, 0.01, 0.02), acc, shade="cylinder", gloss=0.75)]
    elif variant == 1:  # metal stem on a disc foot
        base = [
            Part(rrect(-0.018, sh - 0.05, 0.018, foot_y - 0.03, 0.0), det, shade="cylinder", gloss=0.8),
            Part(ellipse(0, sh + 0.3 * h, 0.04, 0.03), det, shade="sphere", gloss=0.8),
            Part(lathe([(foot_y - 0.04, 0.2 * sw), (foot_y, 0.22 * sw)], 0.04 * sw, 0.045 * sw),
                 det, shade="cylinder", gloss=0.8),
        ]
    else:  # column base
        prof = [(sh + 0.12 * h, 0.1 * sw), (foot_y - 0.06, 0.1 * sw), (foot_y - 0.04, 0.15 * sw),
                (foot_y, 0.15 * sw)]
        base = [
            Part(rrect(-0.018, sh - 0.05, 0.018, sh + 0.14 * h, 0.0), det, shade="cylinder", gloss=0.8),
            Part(lathe(prof, 0.02, 0.03), acc, shade="cylinder", gloss=0.6),
        ]
    return [
        *base,
        Part(shade, shade_color, shade="cylinder", gloss=0.1, ambient=0.62, pattern=st.pattern,
             accent=acc, curve=0.18, block_at=0.8),
        Part(ellipse(0, 0.0, rt, 0.18 * rt), glow, shade="inside", ambient=0.75),
        Part(stroke(arc(0, sh, rb, 0.18 * rb, 0.0, math.pi, 40), 0.012), scale(shade_color, 0.8),
             shade="flat"),
    ]


def chair(st: PhotoStyle) -> list[Part]:
    fabric, acc, wood = to_color(st.base_color), to_color(st.accent_color), to_color(st.detail_color)
    W, H = st.width, st.height
    variant = st.variant % 3
    seat_back, seat_front = 0.55 * H, 0.66 * H
    bw, fw = 0.34 * W, 0.42 * W

    def leg(x0: float, y0: float, x1: float, y1: float, w: float) -> Shape:
        return poly([(x0 - w, y0), (x0 + w, y0), (x1 + w * 0.6, y1), (x1 - w * 0.6, y1)])

    back_legs = leg(-bw + 0.04, seat_back, -bw + 0.02, 0.95 * H + 0.1, 0.022) + leg(
        bw - 0.04, seat_back, bw - 0.02, 0.95 * H + 0.1, 0.022)
    front_legs = leg(-fw + 0.05, seat_front, -fw + 0.02, H + 0.12, 0.03) + leg(
        fw - 0.05, seat_front, fw - 0.02, H + 0.12, 0.03)
    seat_top = poly(rounded([(-bw, seat_back), (bw, seat_back), (fw, seat_front), (-fw, seat_front)], 0.04))
    parts = [Part(back_legs, scale(wood, 0.75), shade="cylinder", gloss=0.35)]
    if variant == 1:  # moulded shell on splayed wooden legs with a wire base
        shell = poly(spline([
            (-0.36 * W, 0.03), (0.0, 0.0), (0.36 * W, 0.03), (0.4 * W, 0.14 * H), (0.37 * W, 0.36 * H),
            (0.38 * W, seat_back + 0.02), (0.42 * W, seat_front), (0.32 * W, seat_front + 0.07),
            (0.0, seat_front + 0.08), (-0.32 * W, seat_front + 0.07), (-0.42 * W, seat_front),
            (-0.38 * W, seat_back + 0.02), (-0.37 * W, 0.36 * H), (-0.4 * W, 0.14 * H),
        ], closed=True))
        crease = spline([(-0.33 * W, seat_back - 0.01), (0.0, seat_back + 0.02), (0.33 * W, seat_back - 0.01)])
        lip = spline([(-0.4 * W, seat_front + 0.01), (0.0, seat_front + 0.05), (0.4 * W, seat_front + 0.01)])
        wires = stroke([(-fw + 0.05, H - 0.05), (bw - 0.04, seat_back + 0.2), (-bw + 0.04, seat_back + 0.2),
                        (fw - 0.05, H - 0.05)], 0.012)
        parts = [
            Part(leg(-bw + 0.06, seat_back, -bw - 0.02, 0.95 * H + 0.1, 0.02)
                 + leg(bw - 0.06, seat_back, bw + 0.02, 0.95 * H + 0.1, 0.02), scale(wood, 0.75),
                 shade="cylinder", gloss=0.35),
            Part(wires, to_color((60, 60, 62)), shade="puffy", gloss=0.8, relief=0.1),
            Part(leg(-fw + 0.08, seat_front, -fw - 0.03, H + 0.12, 0.025)
                 + leg(fw - 0.08, seat_front, fw + 0.03, H + 0.12, 0.025), wood, shade="cylinder", gloss=0.35),
            Part(shell, fabric, shade="puffy", relief=1.4, gloss=st.gloss),
            Part(stroke(crease, 0.05), scale(fabric, 0.8), shade="puffy", relief=0.3, opacity=0.55, clip=shell),
            Part(stroke(lip, 0.025), scale(fabric, 1.1), shade="puffy", relief=0.2, opacity=0.6, clip=shell),
        ]
        return parts
    if variant == 2:  # wooden frame with slats and a seat pad
        posts = (stroke([(-bw + 0.03, seat_back), (-bw + 0.01, 0.02)], 0.055)
                 + stroke([(bw - 0.03, seat_back), (bw - 0.01, 0.02)], 0.055))
        slats = [op for y in (0.03, 0.18, 0.33) for op in rrect(-bw, y * H, bw, y * H + 0.115, 0.025)]
        parts += [
            Part(posts, wood, shade="cylinder", gloss=0.35),
            Part(slats, scale(wood, 1.05), shade="puffy", relief=0.2, gloss=0.3),
        ]
    else:  # upholstered dining chair
        parts += [
            Part(rrect(-bw, 0.0, bw, seat_back + 0.02, 0.09, 0.0), fabric, shade="puffy", relief=1.0,
                 folds=0.02, gloss=st.gloss, pattern=st.pattern, accent=acc, block_at=0.0, pattern_scale=1.2),
            Part(stroke(rrect(-bw + 0.01, 0.01, bw - 0.01, seat_back + 0.2, 0.08, 0.0)[0].pts[:-20], 0.012),
                 scale(fabric, 0.8), shade="flat", opacity=0.6, clip=rrect(-bw, 0.0, bw, seat_back, 0.09, 0.0)),
        ]
    seat_color = acc if variant == 2 else scale(fabric, 1.06)
    parts += [
        Part(front_legs, wood, shade="cylinder", gloss=0.35),
        Part(rrect(-fw, seat_front - 0.02, fw, seat_front + 0.07, 0.03), scale(seat_color, 0.82),
             shade="puffy", relief=0.3, gloss=st.gloss),
        Part(seat_top, seat_color, shade="puffy", relief=0.9, gloss=st.gloss, folds=0.02),
    ]
    return parts
