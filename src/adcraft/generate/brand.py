"""Brand guardrails: what a brand file allows a proposed creative to be, checked wherever proposals are made.

A brand file (YAML, the keys of ``BrandConfig``) constrains the elements of a proposal:

- ``allowed_elements`` (only these ids may be proposed) and ``forbidden_elements`` (never these);
- ``text_colours`` / ``background_colours``: palettes of ``#RRGGBB`` colours that a ``text_color``
  element's colour, and a ``background`` element's, must belong to (with a background palette, a
  background described in words is refused: it is not one of the brand's colours);
- ``fonts``: the allowed ``font`` elements, by element id or font family name;
- ``required_elements``: per slot, ids of which one must fill it (a legal line, a required highlight);
- ``min_contrast``: the least WCAG 2.x contrast ratio between the text colour and every colour the
  background is painted in (its ``#RRGGBB``, else the colours its words name, as the renderer reads
  them, ``render.background.parse_background``)::

      ratio = (L_light + 0.05) / (L_dark + 0.05),  from 1 (same colour) to 21 (black on white)

  with L the relative luminance of linearised sRGB (``render.text_layout.contrast_ratio``);
- ``max_title_length``: the most characters of the title as it is laid out (``visible_text``);
- ``protected_product_area``: the least share of the canvas the product photo covers in the rendered
  creative (its ``product_bbox``), checked after rendering.

``load_brand`` reads a file with the strict config reader (no aliases, no duplicate keys, no unknown keys)
and refuses, before any work starts, a brand that contradicts itself or leaves some product of the market
with no combination it allows. The combination generator only samples and searches what the brand allows
(``candidate_mask``, a ``CandidateMask`` of the policy), candidates are checked again whole
(``combination_problems``), and the pipeline checks each rendered proposal (``rendered_problems``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from adcraft.configuration import check_config, from_mapping, read_yaml
from adcraft.errors import InputError
from adcraft.generate.combo_policy import CandidateMask, PairRule, PolicyInputs, slot_candidates
from adcraft.market import Market
from adcraft.market.schema import slot_field
from adcraft.render.background import parse_background, parse_color
from adcraft.render.text_layout import RGB, contrast_ratio, visible_text

TITLE, BACKGROUND, FONT, TEXT_COLOR = "title", "background", "font", "text_color"
HEX_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")
MASK_ROWS = 4096  # products whose pair table is built at once (bounds the memory of ``candidate_mask``)


class BrandViolation(InputError):
    """A combination the brand does not allow (the API answers 422 with the reasons)."""


@dataclass(frozen=True)
class RequiredElements:
    """One of ``any_of`` (element ids) must fill ``slot`` in every proposal."""

    slot: str
    any_of: tuple[str, ...]

    def __post_init__(self) -> None:
        check_config(self)
        if not self.slot:
            raise InputError("required_elements: slot may not be empty")
        if not self.any_of:
            raise InputError(f"required_elements: slot {self.slot!r} lists no element (any_of is empty)")


@dataclass(frozen=True)
class BrandConfig:
    """What a brand allows a proposal to be (module docstring); a brand file's keys are these fields.

    ``None`` leaves a rule out; a list given empty is refused (it would allow nothing)."""

    allowed_elements: tuple[str, ...] | None = None
    forbidden_elements: tuple[str, ...] = ()
    text_colours: tuple[str, ...] | None = None
    background_colours: tuple[str, ...] | None = None
    fonts: tuple[str, ...] | None = None
    required_elements: tuple[RequiredElements, ...] = ()
    min_contrast: float | None = None
    max_title_length: int | None = None
    protected_product_area: float | None = None

    def __post_init__(self) -> None:
        check_config(self)
        for name in ("allowed_elements", "text_colours", "background_colours", "fonts"):
            if getattr(self, name) is not None and not getattr(self, name):
                raise InputError(f"{name} is empty: it would allow nothing (leave it out to allow everything)")
        for name in ("text_colours", "background_colours"):
            palette = getattr(self, name)
            if palette is not None:
                bad = [c for c in palette if not HEX_COLOUR.fullmatch(c)]
                if bad:
                    raise InputError(f"{name}: {bad[0]!r} is not a colour written #RRGGBB")
                object.__setattr__(self, name, tuple(dict.fromkeys(c.upper() for c in palette)))
        if self.min_contrast is not None and not 1.0 <= self.min_contrast <= 21.0:
            raise InputError(f"min_contrast must lie in [1, 21] (a WCAG contrast ratio), got {self.min_contrast}")
        if self.max_title_length is not None and self.max_title_length < 1:
            raise InputError(f"max_title_length must be at least 1 character, got {self.max_title_length}")
        if self.protected_product_area is not None and not 0.0 < self.protected_product_area <= 1.0:
            raise InputError("protected_product_area is a share of the canvas, in (0, 1]; got "
                             f"{self.protected_product_area}")
        self._refuse_contradictions()

    def _refuse_contradictions(self) -> None:
        forbidden = set(self.forbidden_elements)
        both = sorted(forbidden & set(self.allowed_elements or ()))
        if both:
            raise InputError(f"element {both[0]!r} is both in allowed_elements and in forbidden_elements")
        slots = [rule.slot for rule in self.required_elements]
        twice = sorted({s for s in slots if slots.count(s) > 1})
        if twice:
            raise InputError(f"required_elements names slot {twice[0]!r} twice: list its elements in one any_of")
        for rule in self.required_elements:
            banned = [e for e in rule.any_of if e in forbidden]
            if banned:
                raise InputError(f"required element {banned[0]!r} (slot {rule.slot!r}) is also in forbidden_elements")
            if self.allowed_elements is not None:
                missing = [e for e in rule.any_of if e not in self.allowed_elements]
                if missing:
                    raise InputError(f"required element {missing[0]!r} (slot {rule.slot!r}) is not in "
                                     "allowed_elements")
        if self.min_contrast is not None and self.text_colours and self.background_colours:
            best = max(contrast_ratio(parse_color(t), parse_color(b))
                       for t in self.text_colours for b in self.background_colours)
            if best < self.min_contrast:
                raise InputError(f"min_contrast {self.min_contrast:g} is reached by no pair of text_colours and "
                                 f"background_colours (the best pair reaches {best:.2f})")


def _hex(rgb: RGB) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


def background_colours(content: str) -> tuple[RGB, ...]:
    """The colours a background element is painted in: its ``#RRGGBB``, else the colours its words name
    (the renderer's reading, ``parse_background``; its default colour when the words name none)."""
    text = content.strip()
    if HEX_COLOUR.fullmatch(text):
        return (parse_color(text),)
    return tuple(parse_background(text).colors)


def colour_contrast(text_colour: str, background: str) -> float | None:
    """The WCAG 2.x contrast ratio of a text colour element's value with a background element's value: the
    lowest over the colours the background is painted in (1 to 21); None when the text colour is not a
    colour the renderer reads."""
    text = parse_color(text_colour)
    if text is None:
        return None
    return min(contrast_ratio(text, colour) for colour in background_colours(background))


@dataclass(frozen=True, eq=False)
class Brand:
    """A ``BrandConfig`` read from ``source`` (named in every message): checks elements, combinations and
    rendered creatives against it (module docstring)."""

    config: BrandConfig
    source: str = "brand"
    _verdicts: dict[tuple[str, str, str], str | None] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ elements and combinations

    def element_problem(self, element_id: str, slot: str, content: str) -> str | None:
        """Why the brand refuses an element in ``slot`` showing ``content`` (None: it allows it)."""
        key = (element_id, slot, content)
        if key not in self._verdicts:
            self._verdicts[key] = self._element_problem(element_id, slot, content)
        return self._verdicts[key]

    def _element_problem(self, element_id: str, slot: str, content: str) -> str | None:
        config = self.config
        if config.allowed_elements is not None and element_id not in config.allowed_elements:
            return f"element {element_id!r} is not in allowed_elements"
        if element_id in config.forbidden_elements:
            return f"element {element_id!r} is in forbidden_elements"
        for rule in config.required_elements:
            if rule.slot == slot and element_id not in rule.any_of:
                return f"slot {slot!r} must hold one of {list(rule.any_of)}, not {element_id!r}"
        if slot == TEXT_COLOR and config.text_colours is not None:
            rgb = parse_color(content)
            if rgb is None or _hex(rgb) not in config.text_colours:
                return f"text colour {content!r} (element {element_id!r}) is not in text_colours"
        if slot == BACKGROUND and config.background_colours is not None:
            text = content.strip()
            if not HEX_COLOUR.fullmatch(text):
                return f"background {element_id!r} is described in words, not one of background_colours"
            if text.upper() not in config.background_colours:
                return f"background colour {text!r} (element {element_id!r}) is not in background_colours"
        if slot == FONT and config.fonts is not None:
            families = {f.casefold() for f in config.fonts}
            if element_id not in config.fonts and content.strip().casefold() not in families:
                return f"font {content!r} (element {element_id!r}) is not in fonts"
        if slot == TITLE and config.max_title_length is not None:
            length = len(visible_text(content))
            if length > config.max_title_length:
                return (f"title {element_id!r} has {length} characters; max_title_length is "
                        f"{config.max_title_length}")
        return None

    def pair_problem(self, text_colour: str, background: str) -> str | None:
        """Why a text colour does not go with a background (``min_contrast``), or None."""
        if self.config.min_contrast is None:
            return None
        ratio = colour_contrast(text_colour, background)
        if ratio is None or ratio >= self.config.min_contrast:
            return None
        return (f"text colour {text_colour!r} on background {background!r} has contrast {ratio:.2f}; "
                f"min_contrast is {self.config.min_contrast:g}")

    def combination_problems(self, market: Market, product_id: str, elements: Sequence[str]) -> tuple[str, ...]:
        """Every reason the brand refuses the combination ``elements`` (one id per slot of ``market``, in slot
        order) of a product; empty when it allows it."""
        slots = market.slots
        if len(elements) != len(slots):
            return (f"a combination needs one element per slot {list(slots)}; got {len(elements)}",)
        contents: dict[str, str] = {}
        problems = []
        for slot, element_id in zip(slots, elements):
            try:
                content = market.element_content(element_id)
            except KeyError:
                problems.append(f"unknown element {str(element_id)[:80]!r}")
                continue
            contents[slot] = content
            problem = self.element_problem(element_id, slot, content)
            if problem is not None:
                problems.append(problem)
        if TEXT_COLOR in contents and BACKGROUND in contents:
            problem = self.pair_problem(contents[TEXT_COLOR], contents[BACKGROUND])
            if problem is not None:
                problems.append(problem)
        return tuple(problems)

    def check_combination(self, market: Market, product_id: str, elements: Sequence[str]) -> None:
        """``BrandViolation`` naming the reasons when the brand refuses the combination."""
        problems = self.combination_problems(market, product_id, elements)
        if problems:
            raise BrandViolation(f"the brand guardrails of {self.source} refuse this combination: "
                                 + "; ".join(problems))

    def rendered_problems(self, product_bbox: Sequence[int], canvas: tuple[int, int], title: str | None
                          ) -> tuple[str, ...]:
        """Every reason the brand refuses a rendered creative: the product photo's share of the canvas
        (``protected_product_area``) and the title as laid out (``max_title_length``)."""
        config, problems = self.config, []
        if config.protected_product_area is not None:
            x0, y0, x1, y1 = (int(v) for v in product_bbox)
            share = max(0, x1 - x0) * max(0, y1 - y0) / float(canvas[0] * canvas[1])
            if share < config.protected_product_area:
                problems.append(f"the product covers {share:.1%} of the canvas; protected_product_area is "
                                f"{config.protected_product_area:.1%}")
        if config.max_title_length is not None and title is not None:
            length = len(visible_text(title))
            if length > config.max_title_length:
                problems.append(f"the title shows {length} characters; max_title_length is {config.max_title_length}")
        return tuple(problems)

    def creative_problems(self, market: Market, product_id: str, elements: Sequence[str],
                          product_bbox: Sequence[int]) -> tuple[str, ...]:
        """Every reason the brand refuses a rendered creative: its combination's and the drawing's (the product
        box at the market's canvas size, the title element's text as laid out)."""
        slots = market.slots
        title = None
        if TITLE in slots and len(elements) == len(slots):
            try:
                title = market.element_content(elements[slots.index(TITLE)])
            except KeyError:
                title = None
        return (self.combination_problems(market, product_id, elements)
                + self.rendered_problems(product_bbox, tuple(market.config.canvas), title))

    def check_rendered(self, market: Market, product_id: str, elements: Sequence[str],
                       product_bbox: Sequence[int]) -> None:
        """``BrandViolation`` naming the reasons when the brand refuses a rendered creative."""
        problems = self.creative_problems(market, product_id, elements, product_bbox)
        if problems:
            raise BrandViolation(f"the brand guardrails of {self.source} refuse this creative: " + "; ".join(problems))

    def mark_rendered(self, market: Market, index: Path) -> None:
        """Add ``brand_compliant`` and ``brand_problems`` to a table of rendered creatives (``product_id``,
        ``elements``, ``product_bbox``; ``adcraft render``'s ``rendered.parquet``), rewritten in place."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        from adcraft.atomic import write_parquet

        table = pq.read_table(index)
        problems = [self.creative_problems(market, p, list(e), list(b)) for p, e, b in zip(
            table.column("product_id").to_pylist(), table.column("elements").to_pylist(),
            table.column("product_bbox").to_pylist())]
        columns = brand_columns(problems)
        table = table.append_column("brand_compliant", pa.array(columns["brand_compliant"], pa.bool_()))
        write_parquet(index, table.append_column("brand_problems", pa.array(columns["brand_problems"], pa.string())))

    # ------------------------------------------------------------------ the policy's mask

    def candidate_mask(self, inputs: PolicyInputs, market: Market) -> CandidateMask:
        """The policy's ``CandidateMask`` of this brand: per slot, the candidates whose element it allows,
        and the ``min_contrast`` rule as a pair rule of the background and text colour slots (its first
        slot keeping only elements with an allowed partner for the product)."""
        slots = list(market.slots)
        facts = _element_facts(market)
        ids = inputs.element_ids
        ok = torch.tensor([self.element_problem(e, *facts[e]) is None for e in ids], dtype=torch.bool)
        allowed = [valid & ok[candidates] for candidates, valid in zip(inputs.candidates, inputs.valid)]
        if self.config.min_contrast is None or BACKGROUND not in slots or TEXT_COLOR not in slots:
            return CandidateMask(allowed)
        first, second = sorted((slots.index(BACKGROUND), slots.index(TEXT_COLOR)))
        codes, members = [], []
        for t in (first, second):
            rows = [i for i, e in enumerate(ids) if facts[e][0] == slots[t] and bool(ok[i])]
            code = torch.zeros(len(ids), dtype=torch.long)
            code[rows] = torch.arange(1, len(rows) + 1)
            codes.append(code)
            members.append([facts[ids[i]][1] for i in rows])
        compatible = torch.ones((len(members[0]) + 1, len(members[1]) + 1), dtype=torch.bool)
        for a, first_content in enumerate(members[0], start=1):
            for b, second_content in enumerate(members[1], start=1):
                text, background = ((second_content, first_content) if slots[first] == BACKGROUND
                                    else (first_content, second_content))
                compatible[a, b] = self.pair_problem(text, background) is None
        rule = PairRule(first, second, codes[0], codes[1], compatible)
        partnered = []
        for start in range(0, len(inputs.product_ids), MASK_ROWS):
            part = slice(start, start + MASK_ROWS)
            pairs = compatible[codes[0][inputs.candidates[first][part]].unsqueeze(2),
                               codes[1][inputs.candidates[second][part]].unsqueeze(1)]
            partnered.append((pairs & allowed[second][part].unsqueeze(1)).any(dim=2))
        allowed[first] = allowed[first] & torch.cat(partnered)
        return CandidateMask(allowed, (rule,))

    # ------------------------------------------------------------------ refusing a brand for a market

    def check(self, market: Market) -> Brand:
        """This brand, or ``InputError`` naming the file and the problem when it names elements or slots the
        market does not have, allows no element of some slot, sets a ``min_contrast`` no allowed pair
        reaches, or leaves some product with no combination it allows."""
        config, where = self.config, self.source
        facts = _element_facts(market)
        named = {"allowed_elements": config.allowed_elements or (), "forbidden_elements": config.forbidden_elements}
        named.update({f"required_elements ({rule.slot})": rule.any_of for rule in config.required_elements})
        for name, ids in named.items():
            unknown = [e for e in ids if e not in facts]
            if unknown:
                raise InputError(f"{where}: {name} names element {unknown[0]!r}, which the market's elements table "
                                 "does not have")
        for rule in config.required_elements:
            if rule.slot not in market.slots:
                raise InputError(f"{where}: required_elements names slot {rule.slot!r}, which the market does not "
                                 f"use (slots: {list(market.slots)})")
            elsewhere = [e for e in rule.any_of if facts[e][0] != rule.slot]
            if elsewhere:
                raise InputError(f"{where}: required element {elsewhere[0]!r} belongs to slot "
                                 f"{facts[elsewhere[0]][0]!r}, not {rule.slot!r}")
        verdicts = {e: self.element_problem(e, slot, content) for e, (slot, content) in facts.items()}
        for slot in market.slots:
            reasons = [verdicts[e] for e, (s, _) in facts.items() if s == slot]
            if reasons and all(r is not None for r in reasons):
                raise InputError(f"{where}: the brand allows no element of slot {slot!r} (for example: {reasons[0]})")
        contrast = config.min_contrast is not None and BACKGROUND in market.slots and TEXT_COLOR in market.slots
        if contrast:
            texts = {facts[e][1] for e, v in verdicts.items() if v is None and facts[e][0] == TEXT_COLOR}
            grounds = {facts[e][1] for e, v in verdicts.items() if v is None and facts[e][0] == BACKGROUND}
            ratios = [r for r in (colour_contrast(t, b) for t in texts for b in grounds) if r is not None]
            if ratios and max(ratios) < config.min_contrast:
                raise InputError(f"{where}: min_contrast {config.min_contrast:g} is reached by no allowed text colour "
                                 f"and background of the market (the best pair reaches {max(ratios):.2f})")
        for product_id, sets in slot_candidates(market).items():
            usable = []
            for slot, elements in zip(market.slots, sets):
                kept = [e for e in elements if verdicts[e] is None]
                if not kept:
                    raise InputError(f"{where}: product {product_id!r} has no element of slot {slot!r} that the "
                                     f"brand allows (for example: {verdicts[elements[0]]})")
                usable.append(kept)
            if contrast:
                slots = list(market.slots)
                texts, grounds = usable[slots.index(TEXT_COLOR)], usable[slots.index(BACKGROUND)]
                if all(self.pair_problem(facts[t][1], facts[b][1]) is not None for t in texts for b in grounds):
                    raise InputError(f"{where}: product {product_id!r} has no allowed text colour and background "
                                     f"with contrast at least min_contrast {config.min_contrast:g}")
        return self


def _element_facts(market: Market) -> dict[str, tuple[str, str]]:
    """element id -> (slot, what it shows: the text, value or image path its slot reads)."""
    table = market.elements
    out = {}
    columns = {name: table[name].tolist() if name in table else [None] * len(table)
               for name in ("text", "value", "image")}
    for row, (element_id, slot) in enumerate(zip(table["element_id"], table["slot"])):
        name = slot_field(slot)
        names = (name,) if name is not None else ("text", "value", "image")
        content = next((columns[n][row] for n in names if isinstance(columns[n][row], str)), "")
        out[element_id] = (slot, content)
    return out


def load_brand(path: str | Path, market: Market) -> Brand:
    """The brand file at ``path`` checked against ``market``; ``InputError`` naming the file and the problem
    for a file that is not a strict YAML mapping of ``BrandConfig``'s keys, contradicts itself or leaves some
    product of the market with no allowed combination (``Brand.check``)."""
    where = f"brand file {path}"
    try:
        config = from_mapping(BrandConfig, read_yaml(Path(path)), where=where)
    except InputError as error:  # a contradiction found by the config itself does not know the file
        message = str(error)
        raise InputError(message if str(path) in message else f"{where}: {message}") from None
    return Brand(config, where).check(market)


def brand_columns(problems: Sequence[Sequence[str]]) -> dict[str, list]:
    """The ``brand_compliant`` and ``brand_problems`` columns of ``creatives.parquet`` from each proposal's
    reasons (empty: compliant)."""
    return {"brand_compliant": [not p for p in problems], "brand_problems": ["; ".join(p) for p in problems]}


__all__ = ["Brand", "BrandConfig", "BrandViolation", "RequiredElements", "background_colours", "brand_columns",
           "colour_contrast", "load_brand"]
