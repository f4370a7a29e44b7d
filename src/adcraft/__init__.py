"""adcraft: demand-driven e-commerce creative optimisation.

Learns what sells from a market's catalogue, candidate creative elements and logs, proposes better
creatives rendered as images, and estimates their lift offline before anything goes live.
"""

__version__ = "0.1.0"
