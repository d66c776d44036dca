"""The catalogue of probe kinds: every module of this package declares one kind as `KIND = ProbeKind(...)`.

Adding a kind is one new module here (its check settings, its runner, its
reason texts) and its test; the agent's settings schema, the collector, the
reason texts and `egovmon probe check` pick it up with no other change
(tests/probes/test_kinds.py checks every module of the package). The modules
are found and imported when the catalogue is first asked for, not at import.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import typing
from collections.abc import Mapping

from probes.kind import CheckSettings, ProbeKind
from probes.result import COMMON_REASONS


class CatalogueError(Exception):
    """A module of `probes.kinds` does not declare a usable kind (a programming error, found at start)."""


def _declared(module_name: str) -> ProbeKind[CheckSettings]:
    module = importlib.import_module(f"{__name__}.{module_name}")
    kind = getattr(module, "KIND", None)
    if not isinstance(kind, ProbeKind):
        raise CatalogueError(f"probes.kinds.{module_name} has no KIND = ProbeKind(...)")
    if typing.get_args(kind.check.model_fields["kind"].annotation) != (kind.name,):
        raise CatalogueError(f"probes.kinds.{module_name}: {kind.check.__name__}.kind must be Literal[{kind.name!r}]")
    return kind


@functools.cache
def catalogue() -> Mapping[str, ProbeKind[CheckSettings]]:
    """Every kind by name, in name order. Raises CatalogueError for a module without a proper KIND."""
    kinds: dict[str, ProbeKind[CheckSettings]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        kind = _declared(info.name)
        if kind.name in kinds:
            raise CatalogueError(f"probe kind {kind.name!r} is declared twice")
        kinds[kind.name] = kind
    return kinds


@functools.cache
def reasons() -> Mapping[str, tuple[str, str]]:
    """Every reason code -> (Simplified Chinese, English): the shared ones and each kind's own.

    Raises CatalogueError when a kind gives a code another kind or the shared
    table already has, with other texts (one code, one meaning).
    """
    table = dict(COMMON_REASONS)
    for kind in catalogue().values():
        for code, texts in kind.reasons.items():
            if table.setdefault(code, texts) != texts:
                raise CatalogueError(f"probe kind {kind.name}: reason {code!r} already means {table[code]}")
    return table
