"""Alert evaluation at scale: 2,000 rules over 200,000 series per cycle, time per cycle and memory.

Run: `.venv/bin/python bench/alerting.py [--rules 2000] [--series 200000] [--cycles 5] [--quiet] [--restored 400]`

200,000 series (100 measurements × 2,000 hosts, two fields each) are fed to the
evaluator as the server's sample sink does; 2,000 threshold rules (20 per
measurement, a few absence rules among them) are evaluated for several cycles
with fresh values, about 1% of series beyond their thresholds: each cycle about
28,000 alerts become pending and as many are dropped (the worst case, churn).
`--quiet` keeps every value below the thresholds, the cost of a cycle in which
nothing changes. `--restored N` starts as after a restart, with N firing
alerts loaded back (one per threshold rule, in turn), half of them for hosts
that no longer report (their series never return). The anchor is the issue's target: under 1 s per cycle on one
core. CPU time per cycle, with the part spent in Python's garbage collector
during the evaluation (it varies with what the process allocated before).
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerting.evaluate import Alert, Evaluator, fingerprint
from alerting.rules import Rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=2000)
    parser.add_argument("--series", type=int, default=200_000)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--quiet", action="store_true", help="every value below the thresholds: nothing changes")
    parser.add_argument("--restored", type=int, default=0, help="firing alerts loaded back as after a restart")
    args = parser.parse_args()
    scale = 0.9 if args.quiet else 1.0
    collecting = _GcClock()
    measurements = 100
    hosts = args.series // measurements
    rng = random.Random(1)
    rules = []
    for i in range(args.rules):
        m = f"m{i % measurements}"
        if i % 100 == 99:
            rules.append(Rule(alert=f"Absent{i}", kind="absence", measurement=m, **{"for": "5m"}))
        else:
            rules.append(Rule(alert=f"R{i}", measurement=m, field="value" if i % 2 else "ratio", op=">",
                              threshold=0.99 + (i % 7) * 0.001, clear=0.9, **{"for": "1m"}, labels={"severity": "warning"}))
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    evaluator = Evaluator(rules, alerts=_restored(rules, args.restored, hosts, now - timedelta(hours=1)))
    per_cycle = []
    feed = []
    for cycle in range(args.cycles):
        started = time.process_time()
        for m in range(measurements):
            for h in range(hosts):
                evaluator.observe(f"m{m}", {"host": f"h{h}", "agency": f"a{h % 60}"},
                                  {"value": rng.random() * scale, "ratio": rng.random() * scale}, now)
        fed = time.process_time()
        with collecting:
            changed = len(evaluator.evaluate(now))  # the transitions are let go, as the server's engine does after a cycle
        done = time.process_time()
        feed.append(fed - started)
        per_cycle.append(done - fed)
        print(f"cycle {cycle + 1}: ingest {fed - started:5.2f} s, evaluate {done - fed:5.2f} s CPU "
              f"(garbage collection {collecting.last:4.2f} s), {changed:,} transitions, "
              f"{sum(a.status == 'firing' for a in evaluator.alerts.values()):,} firing")
        now += timedelta(seconds=30)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steady = per_cycle[1:] or per_cycle  # the first cycle also builds what later cycles keep
    best = min(steady)
    shape = (" (quiet)" if args.quiet else "") + (f" ({args.restored:,} restored alerts)" if args.restored else "")
    print(f"{args.rules:,} rules × {measurements * hosts:,} series{shape}: evaluate {best:.2f} s per cycle "
          f"(best of {args.cycles}; median {statistics.median(steady):.2f} s, worst {max(steady):.2f} s; first cycle {per_cycle[0]:.2f} s; "
          f"target < 1 s, ratio {best:.2f}); feeding the values {min(feed):.2f} s; peak RSS {rss:.0f} MiB")


def _restored(rules: list[Rule], count: int, hosts: int, since: datetime) -> dict[str, Alert]:
    """`count` firing alerts as the server loads them back after a restart: one per threshold rule in turn, every
    other one for a host that no longer reports."""
    thresholds = [rule for rule in rules if rule.kind == "threshold"]
    alerts = {}
    for i in range(count):
        rule = thresholds[i % len(thresholds)]
        host = f"gone{i}" if i % 2 else f"h{i % hosts}"
        labels = {"alertname": rule.alert, "host": host, "agency": f"a{i % hosts % 60}" if i % 2 == 0 else "a0", **rule.labels}
        fp = fingerprint(labels)
        alerts[fp] = Alert(fp, labels, {}, "firing", since, since, value=1.0)
    return alerts


class _GcClock:
    """CPU time Python's garbage collector spent inside the `with` block (`last`)."""

    def __init__(self) -> None:
        self.last = 0.0
        self._inside = False
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def __enter__(self) -> None:
        self.last, self._inside = 0.0, True

    def __exit__(self, *exc: object) -> None:
        self._inside = False

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if not self._inside:
            return
        if phase == "start":
            self._started = time.process_time()
        else:
            self.last += time.process_time() - self._started


if __name__ == "__main__":
    main()
