"""The limits a market must stay within, in one place.

Everything that sizes memory or time when a market is read, checked or optimised is bounded here,
and a market over a limit is refused when it is validated, with the file, row, column and limit
named. The limits are generous for real catalogues and logs; they exist so that one hostile or broken
file cannot make a run allocate gigabytes or run for hours.
"""

from __future__ import annotations

MAX_TABLE_BYTES = 4 * 1024**3
"""Size of one table file (Parquet or CSV); checked before the file is opened."""
MAX_CONFIG_BYTES = 1024**2
"""Size of ``market.json``."""
MAX_IMAGE_BYTES = 256 * 1024**2
"""Size of one image file; the pixel limit (``ImageLimits``) applies on top of it."""

MAX_PRODUCTS = 1_000_000
"""Rows of ``products``."""
MAX_ELEMENTS = 1_000_000
"""Rows of ``elements``."""
MAX_CREATIVES = 10_000_000
"""Rows of ``creatives``."""
MAX_LOG_ROWS = 500_000_000
"""Rows of ``impressions``, ``creative_stats`` and ``demand``."""
MAX_SLOTS = 64
"""Slots in ``market.json``."""

MAX_ID_CHARS = 256
"""Characters of an id (product, element, creative, impression) and of a slot name."""
MAX_TEXT_CHARS = 1_000
"""Characters of a text cell: titles, categories, element texts and values, periods."""
MAX_PATH_CHARS = 1_024
"""Characters of an image path."""
MAX_JSON_CHARS = 10_000
"""Characters of a JSON object cell (``products.attributes``, ``impressions.context``)."""
MAX_JSON_KEYS = 100
"""Keys of a JSON object cell, counted over all its nested objects."""
MAX_JSON_DEPTH = 4
"""Nesting depth of a JSON object cell (a flat object has depth 1)."""

MIN_CANVAS_PX = 32
"""Smallest side of the canvas (``market.json`` ``canvas``) a creative is rendered on."""
MAX_CANVAS_PX = 8192
"""Largest side of the canvas."""
