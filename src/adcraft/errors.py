"""Exceptions a user can act on. The CLI turns ``InputError`` into one line and exit status 2."""

from __future__ import annotations


class AdcraftError(Exception):
    """Base class of every error adcraft raises on purpose."""


class InputError(AdcraftError):
    """The user's input (a market, an image, a config, an argument) breaks a rule; exit status 2."""


class MissingDependencyError(AdcraftError):
    """An optional part needs an extra that is not installed (``pip install adcraft[extra]``)."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the package '{package}': install it with "
            f"`pip install adcraft[{extra}]`."
        )
        self.package = package
        self.extra = extra
