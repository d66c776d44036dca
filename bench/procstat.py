"""CPU seconds and RSS of process trees, read from /proc (Linux), for the fleet benchmark.

The pure part parses `/proc/<pid>/stat` text into `ProcStat`; the shell walks a
`/proc` root (injectable, so it can be a committed fake tree) to find a process
and its descendants. A tree's CPU counts the live processes' own time plus the
time of children they have already reaped (`cutime`, `cstime`), so a PostgreSQL
backend that exits mid-run still counts: the total only grows, and the difference
of two readings is the CPU the tree used in between.

Do not use this for processes that are not reaped by their parent (daemonised
grandchildren re-parented to init): their time is lost when they exit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """One process's line of /proc/<pid>/stat: CPU in clock ticks, RSS in pages."""

    pid: int
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int
    rss_pages: int

    @property
    def ticks(self) -> int:
        """Own CPU and that of reaped children, in clock ticks."""
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str) -> ProcStat:
    """Parse the text of /proc/<pid>/stat (proc(5)); the command name may hold spaces and parentheses.

    Raises:
        ValueError: the text is not a stat line.
    """
    head, sep, rest = text.rpartition(")")
    if not sep:
        raise ValueError(f"not a /proc stat line: {text[:80]!r}")
    pid = int(head.split("(", 1)[0])
    fields = rest.split()
    # fields[0] is field 3 (state) of proc(5); field n is fields[n - 3]
    return ProcStat(
        pid=pid, ppid=int(fields[1]), utime=int(fields[11]), stime=int(fields[12]),
        cutime=int(fields[13]), cstime=int(fields[14]), rss_pages=int(fields[21]),
    )


def read_all(proc: Path = PROC) -> dict[int, ProcStat]:
    """Every process's stat, by pid; processes that exit while being read are skipped."""
    out: dict[int, ProcStat] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            out[int(entry.name)] = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError):
            continue
    return out


def tree(root: int, stats: dict[int, ProcStat]) -> list[ProcStat]:
    """`root` and all its live descendants (empty when root is gone)."""
    if root not in stats:
        return []
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(stats[pid])
        todo.extend(children.get(pid, ()))
    return out


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU seconds used so far and resident memory now of a set of process trees."""

    cpu_seconds: float
    rss_bytes: int
    processes: int


def usage(roots: Iterable[int], proc: Path = PROC) -> Usage:
    """CPU seconds (own + reaped children) and RSS summed over the trees rooted at `roots`."""
    stats = read_all(proc)
    members = {s.pid: s for root in roots for s in tree(root, stats)}
    ticks = sum(s.ticks for s in members.values())
    rss = sum(s.rss_pages for s in members.values()) * PAGE_BYTES
    return Usage(ticks / CLOCK_TICKS, rss, len(members))


def self_cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds, all threads, this process has used so far.

    On loopback the kernel's TCP work for both ends of a connection is mostly
    charged to the process that writes, so a client's system time holds some of
    the receiving server's network stack.
    """
    times = os.times()
    return times.user, times.system
