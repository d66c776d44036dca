"""GETBULK walks (RFC 3416 §4.2.3): the pure bookkeeping of one step, and the loop over an engine.

A walk of `root` asks GETBULK from the last OID seen until an answer leaves the
subtree, says endOfMibView, or comes back empty. An agent that answers an OID
not greater than the one asked for would make the walk loop forever; that is
refused (`NonIncreasingOidError`), as is a walk longer than `max_varbinds`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from collectors.snmp.ber import Oid, VarBind, VarBindException, oid_text
from collectors.snmp.errors import NonIncreasingOidError, SnmpResponseError, WalkTooLongError

if TYPE_CHECKING:
    from collectors.snmp.engine import Device

DEFAULT_MAX_REPETITIONS = 50
DEFAULT_MAX_VARBINDS = 200_000
TOO_BIG = 1


class BulkEngine(Protocol):
    """What a walk needs from a transport: one GETBULK and one GET."""

    async def bulk(self, device: Device, oids: Sequence[Oid], max_repetitions: int) -> tuple[VarBind, ...]:
        """One GetBulkRequest (non-repeaters 0); the varbinds of the response in wire order.

        Raises:
            SnmpError: a subclass saying what failed (timeout, auth, decode, error-status).
        """
        ...

    async def get(self, device: Device, oids: Sequence[Oid]) -> tuple[VarBind, ...]:
        """One GetRequest."""
        ...


def in_subtree(oid: Oid, root: Oid) -> bool:
    """True when oid lies strictly under root."""
    return len(oid) > len(root) and oid[:len(root)] == root


def advance(root: Oid, last: Oid, varbinds: Sequence[VarBind]) -> tuple[list[VarBind], Oid | None]:
    """One GETBULK answer of a walk of root that asked after `last`: (varbinds kept, next OID or None when done).

    Raises:
        NonIncreasingOidError: an OID in the answer is not greater than the one before it.
    """
    kept: list[VarBind] = []
    for oid, value in varbinds:
        if value is VarBindException.END_OF_MIB_VIEW or not in_subtree(oid, root):
            return kept, None
        if oid <= last:
            raise NonIncreasingOidError(f"agent answered {oid_text(oid)} after {oid_text(last)} (not increasing)")
        if isinstance(value, VarBindException):  # noSuchObject/Instance inside a walk: skip the varbind
            last = oid
            continue
        kept.append((oid, value))
        last = oid
    if not varbinds:
        return kept, None
    return kept, last


async def walk(
    engine: BulkEngine, device: Device, root: Oid, *,
    max_repetitions: int = DEFAULT_MAX_REPETITIONS, max_varbinds: int = DEFAULT_MAX_VARBINDS,
) -> list[VarBind]:
    """Every varbind under root, in OID order; halves max-repetitions when the agent says tooBig.

    Raises:
        NonIncreasingOidError, WalkTooLongError, SnmpError: see the module docstring and the engine.
    """
    out: list[VarBind] = []
    last: Oid | None = root
    repetitions = max_repetitions
    while last is not None:
        try:
            answer = await engine.bulk(device, (last,), repetitions)
        except SnmpResponseError as exc:
            if exc.status == TOO_BIG and repetitions > 1:
                repetitions = max(1, repetitions // 2)
                continue
            raise
        kept, last = advance(root, last, answer)
        out.extend(kept)
        if len(out) > max_varbinds:
            raise WalkTooLongError(f"walk of {oid_text(root)} on {device.name} passed {max_varbinds} varbinds")
    return out


async def walk_columns(
    engine: BulkEngine, device: Device, roots: Sequence[Oid], *,
    max_repetitions: int = DEFAULT_MAX_REPETITIONS, max_varbinds: int = DEFAULT_MAX_VARBINDS,
) -> dict[Oid, list[VarBind]]:
    """Walk several columns in lockstep, one GETBULK carrying every unfinished column (as snmptable does).

    max-repetitions is shared out so one answer holds about `max_repetitions` varbinds;
    a column that ends drops out of the next request. Returns the varbinds per root.

    Raises:
        NonIncreasingOidError, WalkTooLongError, SnmpError: as `walk`.
    """
    out: dict[Oid, list[VarBind]] = {root: [] for root in roots}
    active: dict[Oid, Oid] = {root: root for root in roots}  # root -> last OID seen
    total = 0
    budget = max_repetitions
    while active:
        columns = list(active.items())
        repetitions = max(1, budget // len(columns))
        try:
            answer = await engine.bulk(device, [last for _, last in columns], repetitions)
        except SnmpResponseError as exc:
            if exc.status == TOO_BIG and budget > 1:
                budget = max(1, budget // 2)
                continue
            raise
        total += _advance_columns(columns, answer, out, active)
        if total > max_varbinds:
            raise WalkTooLongError(f"walk of {len(roots)} columns on {device.name} passed {max_varbinds} varbinds")
    return out


def _advance_columns(
    columns: list[tuple[Oid, Oid]], answer: Sequence[VarBind], out: dict[Oid, list[VarBind]], active: dict[Oid, Oid]
) -> int:
    """Share one GETBULK answer out to the columns (root, last OID) asked for, in wire order: their varbinds go to
    `out`, and `active` keeps each unfinished column's last OID (a finished one is removed). Returns varbinds kept.

    Raises:
        NonIncreasingOidError: as `advance`.
    """
    kept_total = 0
    width = len(columns)
    for position, (root, last) in enumerate(columns):
        mine = answer[position::width]
        if not mine and answer:
            continue  # a truncated answer (RFC 3416 §4.2.3) reached no varbind of this column: ask again
        kept, following = advance(root, last, mine)
        out[root].extend(kept)
        kept_total += len(kept)
        if following is None:
            del active[root]
        else:
            active[root] = following
    return kept_total
