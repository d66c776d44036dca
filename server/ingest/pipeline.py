"""The ingest pipeline's first half: validate one batch and enrich it from the credential, no database read.

A batch is acknowledged only after it is durable: written to the TSDB (or to
the TSDB spool on disk while the TSDB is down) and committed to the state
database together with its batch id. A re-sent batch id is acknowledged and
changes nothing. Host and agency always come from the agent's credential;
a batch that claims another host is refused.

The work is split in two for many small batches (ARCHITECTURE.md, "Ingest at
fleet scale"): `IngestPipeline.prepare` validates and encodes one batch on the
request's thread; `GroupStore.store` (server/ingest/store.py) stores every
batch that arrived together in one transaction and one TSDB write, from the
`GroupCommitter`'s writer thread.

`prepare` first tries the fast path (core/wire.py): pydantic checks the batch's
structure, types and sizes, and the encoder checks names, tag values and
timestamps once per distinct string. A batch the fast path cannot vouch for
(any error, an unusual timestamp form, a float beyond the int64 range) goes
through the batch model's own adapter and encoder, whose answer is the one given:
the same verdicts, messages and order as without the fast path
(tests/server/test_ingest_fast_path.py). `strict_batches` counts those.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.lineprotocol import field_keys_clears
from core.models import MAX_FUTURE, MAX_PAST
from core.wire import (
    BatchRecord,
    FastBatchRecord,
    FastSampleRecord,
    NameChecks,
    ObservationRecord,
    SampleRecord,
    UncheckedInputError,
    batch_adapter,
    fast_batch_adapter,
)
from server.errors import FieldError, ForbiddenError, UnprocessableError, field_errors
from server.history.base import EncodedBatch, HistoryWriter
from server.ingest.encode import (
    LineProtocolError,
    SeriesCache,
    SeriesLatest,
    TimestampWindowError,
    checked_field_prefix_clears,
    encode_batch,
)
from server.ingest.hooks import IngestHooks, Origin

log = logging.getLogger(__name__)

MAX_REPORTED_ERRORS = 10
SITE_MAP_TTL = timedelta(minutes=1)
@dataclass(frozen=True, slots=True)
class IngestResult:
    """What the server acknowledges."""

    batch_id: str
    duplicate: bool
    samples: int
    observations: int


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """One validated batch, encoded with its sender's tags, ready to be stored."""

    origin: Origin
    batch_id: str
    encoded: EncodedBatch
    latest: Mapping[str, SeriesLatest]
    observations: Sequence[ObservationRecord]
    samples: int
    received_at: datetime


class HostClaimError(Exception):
    """The batch names a host other than its credential's; `explain_claim` turns it into the 403 to answer."""

    def __init__(self, origin: Origin, claimed: str) -> None:
        super().__init__(claimed)
        self.origin = origin
        self.claimed = claimed


def describe_validation_error(exc: ValidationError) -> tuple[str, str, list[FieldError]]:
    """(reason, message, first errors) for a batch that failed validation."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(e["type"] == "json_invalid" for e in errors):
        reason = "malformed_json"
    elif any(e["type"] == "too_long" and e["loc"] in (("samples",), ("observations",)) for e in errors):
        reason = "batch_too_large"
    else:
        reason = "validation"
    details = field_errors(errors, limit=MAX_REPORTED_ERRORS)
    first = details[0] if details else FieldError(loc="", msg="invalid", type="")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    where = f"{first['loc']}: " if first["loc"] else ""
    return reason, f"invalid batch: {where}{first['msg']}{more}", details


class IngestPipeline:
    """Validates and encodes batches (`prepare`, on any thread); `GroupStore` stores them."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        history: HistoryWriter | None,
        hooks: IngestHooks,
        clock: Callable[[], datetime],
    ) -> None:
        self._sessions = sessions
        self._history = history
        self._hooks = hooks
        self._clock = clock
        self._sites: dict[tuple[str, str], str | None] = {}  # (agency code, host name) → site
        self._sites_until: datetime | None = None
        self._sites_lock = threading.Lock()
        self._series = SeriesCache()  # series of the fast path: measurement and tags checked by `self._checks`
        self._strict_series = SeriesCache(limit=10_000)  # series of batches the fast path handed to the strict one
        self._checks = NameChecks()
        self.strict_batches = 0  # batches the fast path handed to the strict one (errors and unusual input)

    @property
    def series_cache(self) -> SeriesCache:
        """The line heads kept across batches (bounded; its `limit` may be lowered by tools and tests)."""
        return self._series

    def cache_clears(self) -> dict[str, int]:
        """Times each bounded cache of the encoding path was full and cleared, by cache."""
        return {
            "series": self._series.clears + self._strict_series.clears + self._checks.clears,
            "field_keys": field_keys_clears() + checked_field_prefix_clears(),
        }

    # -- on the request's thread ---------------------------------------------------------------

    def prepare(self, origin: Origin, payload: bytes) -> PreparedBatch:
        """Validate one JSON batch from an agent and encode it with the sender's tags; reads no database row
        (except the site map, once a minute).

        Raises:
            ApiError: a 4xx for anything wrong with the batch.
            HostClaimError: the batch names another host (see `explain_claim`).
        """
        now = self._clock()
        fast = self._prepare_fast(origin, payload, now)
        if fast is not None:
            return fast
        self.strict_batches += 1
        # The strict path: the batch model's own verdicts and messages, in the order they always came.
        try:
            batch = batch_adapter().validate_json(payload)
        except ValidationError as exc:
            reason, message, details = describe_validation_error(exc)
            raise _ValidationApiError(message, reason=reason, errors=details) from exc
        self._check_claim(origin, batch.get("host"))
        try:
            encoded, latest = self._encode(origin, batch.get("samples", []), now, checks=None)
        except TimestampWindowError as exc:
            raise UnprocessableError(str(exc), reason="timestamp_window") from exc
        except LineProtocolError as exc:
            raise UnprocessableError(str(exc), reason="validation") from exc
        return self._prepared(origin, batch, encoded, latest, now)

    def _prepare_fast(self, origin: Origin, payload: bytes, now: datetime) -> PreparedBatch | None:
        """The batch through `core.wire`'s fast path, or None when anything is wrong or unusual with it: the
        strict path then gives the answer (an error, or the same batch at the strict path's cost)."""
        try:
            batch = fast_batch_adapter().validate_json(payload)
        except ValidationError:
            return None
        try:
            encoded, latest = self._encode(origin, batch.get("samples", []), now, checks=self._checks)
        except (UncheckedInputError, TimestampWindowError, LineProtocolError):
            return None
        self._check_claim(origin, batch.get("host"))
        return self._prepared(origin, batch, encoded, latest, now)

    def _encode(
        self, origin: Origin, samples: Sequence[SampleRecord | FastSampleRecord], now: datetime, *, checks: NameChecks | None
    ) -> tuple[EncodedBatch, Mapping[str, SeriesLatest]]:
        extra_tags = {"host": origin.hostname, "agency": origin.agency_code}
        site = self._site(origin.agency_code, origin.hostname, now)
        if site:
            extra_tags["site"] = site
        # The fast and strict paths keep their series heads apart: only checked series enter the fast one's cache.
        return encode_batch(
            samples,
            extra_tags=extra_tags,
            now=now,
            with_points=self._history is None or bool(self._hooks.sample_sinks),
            cache=self._series if checks is not None else self._strict_series,
            sender=(origin.agent_id, site),  # a host moved to another site gets new series heads
            checks=checks,
        )

    @staticmethod
    def _check_claim(origin: Origin, claimed: str | None) -> None:
        if claimed is not None and claimed != origin.hostname:
            raise HostClaimError(origin, claimed)

    def _prepared(
        self, origin: Origin, batch: BatchRecord | FastBatchRecord, encoded: EncodedBatch, latest: Mapping[str, SeriesLatest], now: datetime
    ) -> PreparedBatch:
        observations = batch.get("observations", [])
        self._check_observation_times(observations, now)
        return PreparedBatch(origin, batch["batch_id"], encoded, latest, observations, len(batch.get("samples", [])), now)

    def explain_claim(self, claim: HostClaimError) -> ForbiddenError:
        """The 403 for a batch naming another host. The same answer whoever owns the named host, so an agent's
        credential cannot probe which host names other agencies have (Article 25)."""
        return ForbiddenError(
            f"this credential sends for host {claim.origin.hostname!r}, not {claim.claimed!r}", reason="host_mismatch"
        )

    def sites_known(self) -> bool:
        """True while the site map is fresh: `prepare` then reads no database at all (safe on the event loop)."""
        return self._sites_until is not None and self._sites_until > self._clock()

    def _site(self, agency: str, hostname: str, now: datetime) -> str | None:
        """The site the sender's agency registered its host at in the inventory (`site` tag on its points).

        Host names are per agency (two agencies may each register a `web-1` at different sites): the sender's
        agency comes from its credential, and another agency's registration of the same name never applies.
        The whole (agency, name) → site map is read at once and kept a minute, so a
        fleet costs one query a minute, not one per host; a registration or a
        move shows on the points within a minute.
        """
        if self._sites_until is None or self._sites_until <= now:
            from server.agencies.models import Agency  # noqa: PLC0415 - the inventory is optional for ingest
            from server.inventory.models import HostEntry  # noqa: PLC0415 - the inventory is optional for ingest

            with self._sites_lock:
                if self._sites_until is None or self._sites_until <= now:
                    with self._sessions() as session:
                        rows = session.execute(select(Agency.code, HostEntry.name, HostEntry.site)
                                               .join(Agency, Agency.id == HostEntry.agency_id))
                        self._sites = {(code, name): site for code, name, site in rows}
                    self._sites_until = now + SITE_MAP_TTL
        return self._sites.get((agency, hostname))

    @staticmethod
    def _check_observation_times(observations: Sequence[ObservationRecord], now: datetime) -> None:
        oldest, newest = now - MAX_PAST, now + MAX_FUTURE
        for index, obs in enumerate(observations):
            at = obs["observed_at"]
            if at < oldest or at > newest:
                raise UnprocessableError(
                    f"observations.{index}.observed_at {at.isoformat()} is outside the accepted window",
                    reason="timestamp_window",
                )

class _ValidationApiError(UnprocessableError):
    """A 422 that carries the per-field errors."""

    def __init__(self, message: str, *, reason: str, errors: list[FieldError]) -> None:
        super().__init__(message, reason=reason)
        self.errors = errors
        if reason == "malformed_json":
            self.status_code = 400


__all__ = ["HostClaimError", "IngestPipeline", "IngestResult", "PreparedBatch", "describe_validation_error"]
