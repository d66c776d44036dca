"""Source NAT: MASQUERADE/SNAT rules in nft or iptables, or proof of it in the conntrack table.

Rules come from `nft -j list ruleset` and `iptables-save`/`ip6tables-save` (also
their -legacy variants), listing commands only. Without any of them,
/proc/net/nf_conntrack: an entry whose reply goes to another address than the
original source proves source NAT happened; its absence proves nothing
(`conclusive` false).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from collectors.netstate.errors import ParseError, load_json
from collectors.netstate.models import Nat
from collectors.netstate.shell import gather, run
from core.jsontypes import JsonValue

MAX_CONNTRACK_LINES: Final = 200_000  # a busy gateway's table is far larger; no proof in these stays inconclusive
# Listing commands for NAT rules, in order of preference: (argv, source name, parser name).
NAT_COMMANDS: Final = (
    (("nft", "-j", "list", "ruleset"), "nft", "nft"),
    (("iptables-save",), "iptables", "iptables"),
    (("ip6tables-save",), "iptables", "iptables"),
    (("iptables-legacy-save",), "iptables", "iptables"),
    (("ip6tables-legacy-save",), "iptables", "iptables"),
)


def _has_snat_expr(node: JsonValue) -> bool:
    if isinstance(node, dict):
        if "masquerade" in node or "snat" in node:
            return True
        xt = node.get("xt")
        if isinstance(xt, dict) and xt.get("name") in ("MASQUERADE", "SNAT"):
            return True  # iptables-nft rules shown through nft's xt compatibility expression
        return any(_has_snat_expr(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_snat_expr(value) for value in node)
    return False


def nft_has_source_nat(text: str) -> bool:
    """Whether `nft -j list ruleset` holds a rule with masquerade or snat (native or xt).

    Raises:
        ParseError: the text is not nft's JSON.
    """
    doc = load_json(text, "nft -j list ruleset")
    items = doc.get("nftables") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise ParseError("nft -j list ruleset: expected {\"nftables\": [...]}")
    return any(isinstance(item, dict) and isinstance(rule := item.get("rule"), dict) and _has_snat_expr(rule.get("expr"))
               for item in items)


_IPTABLES_SNAT = re.compile(r"\s-j\s+(MASQUERADE|SNAT)(\s|$)")


def iptables_has_source_nat(text: str) -> bool:
    """Whether `iptables-save` output has a MASQUERADE or SNAT rule in its *nat table."""
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
        elif table == "nat" and line.startswith("-A ") and _IPTABLES_SNAT.search(line):
            return True
    return False


_CT_TUPLE = re.compile(r"\bsrc=(\S+) dst=(\S+)")


def conntrack_shows_source_nat(lines: Iterable[str]) -> bool:
    """Whether a /proc/net/nf_conntrack entry was source-NATed: its reply goes to another address.

    Each line holds the original tuple (src, dst) then the reply tuple; without
    source NAT the reply's dst is the original src. Stops at the first proof.
    """
    for line in lines:
        tuples = _CT_TUPLE.findall(line)
        if len(tuples) >= 2 and tuples[1][1] != tuples[0][0]:
            return True
    return False


# -- shell ------------------------------------------------------------------------------

def _conntrack_nat(root: Path) -> Nat:
    path = root / "proc/net/nf_conntrack"
    try:
        with path.open(encoding="ascii", errors="replace") as lines:
            present = conntrack_shows_source_nat(itertools.islice(lines, MAX_CONNTRACK_LINES))
    except (FileNotFoundError, PermissionError):
        return Nat(present=False, source="unknown", conclusive=False)
    return Nat(present=present, source="proc", conclusive=present)


async def detect_nat(
    root: Path, *, tool: Callable[[str], str | None], warn_once: Callable[[str, str], None],
) -> Nat:
    """Source NAT from every listing tool there is (all at once); conntrack when none answers.

    `tool` gives a command's path, or None when it is absent or must not be used (not live);
    `warn_once(key, message)` reports a tool that failed, which is then left out of the answer.
    """
    available = [(path, argv, source, parser) for argv, source, parser in NAT_COMMANDS
                 if (path := tool(argv[0])) is not None]
    outputs = await gather(*(run((path, *argv[1:])) for path, argv, _, _ in available))
    answered: list[str] = []
    for (_, argv, source, parser), done in zip(available, outputs, strict=True):
        if done.returncode != 0:
            warn_once(argv[0], f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[:200]}")
            continue
        try:
            found = nft_has_source_nat(done.stdout) if parser == "nft" else iptables_has_source_nat(done.stdout)
        except ParseError as exc:
            warn_once(argv[0], str(exc))
            continue
        if found:
            return Nat(present=True, source=source, conclusive=True)
        answered.append(source)
    if answered:
        return Nat(present=False, source=answered[0], conclusive=True)
    return await asyncio.to_thread(_conntrack_nat, root)
