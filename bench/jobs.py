"""The platform-wide jobs at fleet size: full reconciliation pass, alert cycle, state export.

Run: `PYTHONPATH=$PWD .venv/bin/python bench/jobs.py [--hosts 10000] [--netstate 0.05] [--store sqlite|pg] [--rounds 3]`

`bench/fleet.py` reads these durations from a live server's /metrics while it carries a fleet; this
script measures them alone, on a store seeded as that fleet leaves it, so a change to one job can be
compared quickly. It seeds `--hosts` hosts in 50 agencies, each with the latest values of the batch the
real `HostCollector` sends on this machine (about 31 series), and a `--netstate` share of them with the
observed facts of the 15-observation netstate set of bench/fleetbatch.py (a /24 and a /64 of its own, so
each opens findings). Then, `--rounds` times, it moves every series' timestamp 15 s on (as a fleet
reporting every 15 s does between two cycles) and times, in the process's own CPU and wall time:

- the full reconciliation pass (`InventorySink.full_pass`),
- the alert cycle of the jobs process (`AlertingEngine.cycle` in shared mode: the feed of every value
  newer than the last cycle from the database, evaluation, storage),
- the state export's read (`collect_state`: findings, alerts, scorecard and their changes).

The first round includes the cold start (the first feed, the findings opened); the last is the steady state.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # the project, not bench/ (bench/inventory.py would shadow it)

from sqlalchemy import insert, update  # noqa: E402

from bench.fleetbatch import collect_host_samples, host_networks, netstate_reading  # noqa: E402
from inventory.observed import facts  # noqa: E402
from server.agencies.models import Agency  # noqa: E402
from server.app import _start, create_app  # noqa: E402
from server.history.state import collect_state  # noqa: E402
from server.hosts.models import Host, LatestSeries  # noqa: E402
from server.ingest.encode import series_key  # noqa: E402
from server.inventory import service as inventory_service  # noqa: E402
from server.settings import Settings  # noqa: E402

AGENCIES = 50


def seed(sessions, *, hosts: int, netstate_share: float, now: datetime) -> None:
    samples = collect_host_samples()
    series = {}
    for s in samples:
        series[series_key(s.measurement, s.tags)] = s
    ns = int(now.timestamp() * 1e9)
    with sessions() as session, session.begin():
        session.execute(insert(Agency), [{"id": a + 1, "code": f"agency-{a:02d}", "name": f"部门 {a}", "created_at": now} for a in range(AGENCIES)])
        session.execute(insert(Host), [{"id": h + 1, "agency_id": h % AGENCIES + 1, "hostname": f"host-{h:05d}", "created_at": now,
                                        "last_seen_at": now} for h in range(hosts)])
        rows = [{"host_id": h + 1, "series_key": key, "measurement": s.measurement, "tags": dict(s.tags), "fields": dict(s.fields),
                 "ts_ns": ns} for h in range(hosts) for key, s in series.items()]
        for start in range(0, len(rows), 20_000):
            session.execute(insert(LatestSeries), rows[start : start + 20_000])
        every = max(1, round(1 / netstate_share)) if netstate_share > 0 else 0
        found = []
        for h in range(0, hosts, every) if every else ():
            _, observations = netstate_reading(*host_networks(h))
            for o in observations:
                found += facts({**o.model_dump(mode="json"), "observed_at": now.isoformat()}, host=f"host-{h:05d}", agency=f"agency-{h % AGENCIES:02d}")
        inventory_service.record_facts(session, found)
    print(f"seeded {hosts} hosts, {hosts * len(series)} latest series, {len(found)} observed facts")


def timed(work, profile: bool = False):
    profiler = cProfile.Profile() if profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    result = profiler.runcall(work) if profiler else work()
    spent = time.process_time() - cpu, time.perf_counter() - wall, result
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--netstate", type=float, default=0.05)
    parser.add_argument("--store", choices=("sqlite", "pg"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", choices=("full_pass", "alert_cycle", "state_export"),
                        help="print cProfile's top functions of that job in the last round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="egovmon-jobs-") as tmp:
        workdir = Path(tmp)
        postgres = None
        url = None
        if args.store == "pg":
            from tests.services import start_postgres

            postgres = start_postgres(workdir)
            url = postgres.url()
        try:
            settings = Settings.model_validate({"data_dir": str(workdir / "data"),
                                                "server": {"workers": 2, "database_url": url}, "alerting": {"evaluation_interval_seconds": 15}})
            app = create_app(settings, role="jobs")
            _start(app)
            now = datetime.now(UTC)
            clock = {"now": now}
            app.state.clock = lambda: clock["now"]
            app.state.inventory._clock = app.state.clock  # noqa: SLF001 - the bench moves time on
            app.state.alerting._clock = app.state.clock  # noqa: SLF001
            seed(app.state.sessions, hosts=args.hosts, netstate_share=args.netstate, now=now)
            print(f"store {args.store}, {len(app.state.alerting.rules)} alert rules")
            print(f"{'round':>5} {'full pass cpu/wall s':>22} {'alert cycle cpu/wall s':>24} {'state export cpu/wall s':>25}  findings changed")
            since = None
            for round_ in range(1, args.rounds + 1):
                clock["now"] += timedelta(seconds=15)
                with app.state.sessions() as session, session.begin():
                    session.execute(update(LatestSeries).values(ts_ns=LatestSeries.ts_ns + 15_000_000_000))
                last = round_ == args.rounds
                fp = timed(app.state.inventory.full_pass, last and args.profile == "full_pass")
                ac = timed(app.state.alerting.cycle, last and args.profile == "alert_cycle")

                def export() -> int:
                    with app.state.sessions() as session:
                        return len(collect_state(session, since=since, now=clock["now"]))  # noqa: B023 - called within this iteration

                se = timed(export, last and args.profile == "state_export")
                since = clock["now"]
                print(f"{round_:>5} {fp[0]:>10.2f} / {fp[1]:<10.2f} {ac[0]:>11.2f} / {ac[1]:<11.2f} {se[0]:>12.2f} / {se[1]:<11.2f}  "
                      f"{len(fp[2] or [])}")
        finally:
            if postgres is not None:
                postgres.stop()


if __name__ == "__main__":
    main()
