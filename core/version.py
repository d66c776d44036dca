"""egovmon's version: written once, in pyproject.toml, and read from the installed package's metadata."""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

UNKNOWN = "0+unknown"


@functools.cache
def version() -> str:
    """The installed egovmon's version (pyproject.toml's), or "0+unknown" in a checkout never installed with pip."""
    try:
        return _distribution_version("egovmon")
    except PackageNotFoundError:
        return UNKNOWN
