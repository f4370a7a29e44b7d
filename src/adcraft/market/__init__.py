"""The market data contract (market-format.md, ``adcraft-market/1``): load, validate, write.

    market = load_market("path/to/MARKET")            # raises MarketValidationError
    problems = validate_market("path/to/MARKET")      # [] for a good market
    write_market(market, "copy", table_format="csv")  # atomic, validated first
"""

from adcraft.market.images import ImageLimits
from adcraft.market.io import load_market, validate_market, write_market
from adcraft.market.market import Market, MarketConfig
from adcraft.market.outputs import write_proposals, write_scores
from adcraft.market.problems import MarketValidationError, Problem
from adcraft.market.schema import FORMAT, IMAGE_SLOTS, TEXT_SLOTS, VALUE_SLOTS

__all__ = [
    "FORMAT",
    "IMAGE_SLOTS",
    "TEXT_SLOTS",
    "VALUE_SLOTS",
    "ImageLimits",
    "Market",
    "MarketConfig",
    "MarketValidationError",
    "Problem",
    "load_market",
    "validate_market",
    "write_market",
    "write_proposals",
    "write_scores",
]
