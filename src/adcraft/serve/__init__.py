"""The HTTP API over an optimize run and the review page where people approve or reject its proposals.

    from adcraft.serve import ServeConfig, create_app
    app = create_app(ServeConfig(run_dir="OUT", market_dir="MARKET", token="..."))

Both names load on first use, so importing a submodule does not import the web framework.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from adcraft.serve.app import create_app

        return create_app
    if name == "ServeConfig":
        from adcraft.serve.config import ServeConfig

        return ServeConfig
    raise AttributeError(f"module 'adcraft.serve' has no attribute {name!r}")
