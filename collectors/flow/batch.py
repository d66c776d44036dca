"""Decode many export datagrams at once: one numpy pass per exporter and template, not per datagram.

Decoding one datagram costs about 18 µs of fixed numpy overhead whatever its
size, so a 30-record v5 datagram decoded alone caps out below 2 M records/s.
`BatchDecoder` parses every datagram's headers and sets in Python (templates
and options applied in arrival order, exactly as `decode` would), defers their
flow data sets (`Decoded.blocks`), and then decodes all blocks of one exporter
and template with one `np.frombuffer`. A malformed datagram contributes
nothing: its blocks are only kept once it has parsed completely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from collectors.flow.decode import TemplateCache, decode
from collectors.flow.model import Decoded, DecodeError
from collectors.flow.records import FixedSets, concatenate_flows


class DecoderBugError(DecodeError):
    """The decoder raised something other than a DecodeError on a datagram: a bug, counted as malformed."""


@dataclass(frozen=True, slots=True)
class ExporterFlows:
    """The flow records and options records of one exporter in one batch."""

    exporter: str
    flows: np.ndarray
    options: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Per datagram, in order: its exporter (`senders`) and its `Decoded` (flows left empty, see
    `record_count`) or the error that dropped it; and per exporter, all its records."""

    senders: list[str]
    datagrams: list[Decoded | DecodeError]
    exporters: dict[str, ExporterFlows]
    failed_sets: tuple[tuple[str, str], ...] = ()  # (exporter, error): record groups a decoder bug left out


MAX_EXPORTERS = 4096  # distinct exporter addresses whose templates are kept (a city's routers are far fewer)
# The reckoned memory of the templates kept over all exporters (decode.template_bytes), about 8,000 templates.
# Without it the per-exporter bounds multiplied: 2,000 spoofed exporters of 50 random templates took 324 MB, and
# 4,096 exporters of 4,096 templates would take gigabytes (fuzz campaign). A city's exporters need a few MB.
MAX_TEMPLATE_BYTES = 48 << 20


class BatchDecoder:
    """Template caches per exporter plus batched decoding; belongs to one thread."""

    def __init__(self, *, max_exporters: int = MAX_EXPORTERS, max_template_bytes: int = MAX_TEMPLATE_BYTES) -> None:
        self._caches: dict[str, TemplateCache] = {}
        self.max_exporters = max_exporters
        self.max_template_bytes = max_template_bytes
        self.template_bytes = 0  # reckoned memory of all templates kept, over every exporter
        self.evicted_exporters = 0  # exporters whose templates were forgotten to stay within `max_exporters`
        self._evicted_templates = 0  # of caches since forgotten

    def cache(self, exporter: str) -> TemplateCache:
        cache = self._caches.get(exporter)
        if cache is None:
            if len(self._caches) >= self.max_exporters:  # spoofed sources: the oldest exporter's templates go
                self._forget(next(iter(self._caches)))
            cache = self._caches[exporter] = TemplateCache()
        return cache

    def _forget(self, exporter: str) -> None:
        """Drop one exporter's templates (it learns them again from its next template datagram), counted."""
        cache = self._caches.pop(exporter)
        self._evicted_templates += cache.evicted
        self.template_bytes -= cache.bytes
        self.evicted_exporters += 1

    def _learn(self, exporter: str, cache: TemplateCache, decoded: Decoded) -> None:
        """Apply what a datagram taught to its exporter's cache; past the total bound the oldest exporters go."""
        before = cache.bytes
        cache.apply(decoded)
        self.template_bytes += cache.bytes - before
        if self.template_bytes > self.max_template_bytes:
            for oldest in [e for e in self._caches if e != exporter]:
                self._forget(oldest)
                if self.template_bytes <= self.max_template_bytes:
                    break

    @property
    def evicted_templates(self) -> int:
        """Templates and domain contexts forgotten by the per-exporter bounds (not counting whole exporters)."""
        return self._evicted_templates + sum(c.evicted for c in self._caches.values())

    @property
    def templates(self) -> int:
        return sum(len(c) for c in self._caches.values())

    def decode(self, datagrams: Sequence[tuple[str, bytes]]) -> BatchResult:
        """Decode (exporter, datagram) pairs in order.

        A malformed datagram's `DecodeError` takes its place in `datagrams`; an
        exception of any other type (a decoder bug on hostile input) does too, as a
        `DecoderBugError` whose cause is the original.
        """
        sets = FixedSets()
        results: list[Decoded | DecodeError] = []
        options: dict[str, list[dict[str, Any]]] = {}
        for exporter, datagram in datagrams:
            cache = self.cache(exporter)
            try:
                decoded = decode(datagram, exporter, cache.mapping(), contexts=cache.contexts(), defer=True)
            except DecodeError as exc:
                results.append(exc)
                continue
            except Exception as exc:  # noqa: BLE001 - hostile input must not take the other datagrams down
                bug = DecoderBugError(f"decoder failed: {exc!r}")
                bug.__cause__ = exc
                results.append(bug)
                continue
            self._learn(exporter, cache, decoded)
            for block in decoded.blocks:
                sets.add(block, exporter)
            if decoded.options:
                options.setdefault(exporter, []).extend(decoded.options)
            # What it taught is in the cache now: a batch of template floods must not hold all their templates
            # a second time (an exporter's few re-announced templates are kept as they are: replace() costs µs).
            results.append(replace(decoded, templates={}) if len(decoded.templates) > 64 else decoded)
        parts: dict[str, list[np.ndarray]] = {}
        for exporter, flows in sets.decode():
            parts.setdefault(exporter, []).append(flows)
        failed = tuple((exporter, f"decoder failed: {exc!r}") for exporter, exc in sets.failed)
        exporters = {
            exporter: ExporterFlows(exporter, concatenate_flows(parts.get(exporter, [])), tuple(options.get(exporter, ())))
            for exporter in parts.keys() | options.keys()
        }
        return BatchResult([exporter for exporter, _ in datagrams], results, exporters, failed)

