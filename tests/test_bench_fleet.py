"""bench/fleet.py keeps working: a 20-agent fleet for 10 s, and its pure parts on fixed inputs.

No speed is asserted here (issue 17's numbers come from the tool on a quiet machine);
the smoke run only checks that batches are acknowledged and nothing failed.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import subprocess
import sys
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest

from bench.fleetbatch import BatchTemplate, LineTemplate, host_networks, netstate_reading, wire_time
from bench.fleetreport import durations, named_durations, parse_exposition
from bench.http11 import LoopbackOnlyError, Pool, RequestTimeoutError, loopback_address
from bench.procstat import parse_stat, tree
from core.models import Sample
from tests.services import require_program

ROOT = Path(__file__).resolve().parent.parent
AT = datetime(2026, 12, 4, 8, 50, 54, 481719, tzinfo=UTC)
SAMPLES = (
    Sample(measurement="host_cpu", tags={"cpu": "0", "mode": "user"}, fields={"seconds_total": 12.13}, timestamp=AT),
    Sample(measurement="host_memory", fields={"total_bytes": 8_000_000_000, "available_bytes": 5_000_000_000}, timestamp=AT),
)


def test_smoke_run_acknowledges_batches_without_errors(tmp_path: Path) -> None:
    require_program("victoria-metrics")
    done = subprocess.run(
        [sys.executable, "bench/fleet.py", "--agents", "20", "--duration", "10", "--warmup", "5", "--store", "embedded",
         "--json", "--workdir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads(done.stdout)["runs"][0]
    assert run["agents"] == 20
    assert run["acknowledged"] > 0
    assert run["errors"] == 0, run["error_kinds"]
    assert run["anchor"]["acknowledged"] == run["anchor"]["offered"] > 0
    assert run["rogue_subnet"]["finding_seconds"] is not None, run["rogue_subnet"]
    assert run["server"]["cpu_seconds"] > 0


def test_batch_template_renders_what_the_shipper_sends() -> None:
    extra, observations = netstate_reading(*host_networks(300))
    template = BatchTemplate.build(SAMPLES + extra, observations)
    template.check(SAMPLES + extra, observations)  # raises when it differs from agent.shipping.encode_body
    batch = json.loads(gzip.decompress(template.body("b1", "fleet-00300", AT)))
    assert batch["batch_id"] == "b1" and batch["host"] == "fleet-00300"
    assert {s["timestamp"] for s in batch["samples"]} == {"2026-12-04T08:50:54.481719Z"}
    assert len(batch["observations"]) == 15
    assert {o["subject"] for o in batch["observations"] if o["kind"] == "route"} >= {"10.1.44.0/24", "2001:db8:12c::/64"}


def test_wire_time_matches_pydantic_with_and_without_microseconds() -> None:
    for at in (AT, AT.replace(microsecond=0)):
        assert f'"{wire_time(at)}"' in SAMPLES[0].model_copy(update={"timestamp": at}).model_dump_json()


def test_line_template_adds_host_and_agency_tags() -> None:
    body = gzip.decompress(LineTemplate.build(SAMPLES).body("fleet-00001", "fleet-01", AT)).decode()
    assert body.splitlines() == [
        "host_cpu,agency=fleet-01,cpu=0,host=fleet-00001,mode=user seconds_total=12.13 1796374254481719000",
        "host_memory,agency=fleet-01,host=fleet-00001 total_bytes=8000000000i,available_bytes=5000000000i 1796374254481719000",
    ]


@pytest.mark.parametrize("url", ["http://10.0.0.1:8080", "http://example.org", "https://127.0.0.1:8443", "http://0.0.0.0:80"])
def test_only_loopback_is_targeted(url: str) -> None:
    with pytest.raises(LoopbackOnlyError):
        loopback_address(url)


def test_loopback_addresses_are_accepted() -> None:
    assert loopback_address("http://127.0.0.1:8080/x") == ("127.0.0.1", 8080)
    assert loopback_address("http://localhost:9") == ("127.0.0.1", 9)
    assert loopback_address("http://[::1]:81") == ("::1", 81)


def test_parse_stat_with_a_command_holding_spaces_and_parentheses() -> None:
    line = "4242 (uvicorn (w) 1) S 4200 4242 4242 0 -1 4194560 2000 0 0 0 1234 567 89 10 20 0 5 0 100 400000000 25000 " + " ".join(["0"] * 30)
    stat = parse_stat(line)
    assert (stat.pid, stat.ppid, stat.utime, stat.stime, stat.cutime, stat.cstime, stat.rss_pages) == (4242, 4200, 1234, 567, 89, 10, 25000)
    assert stat.ticks == 1234 + 567 + 89 + 10
    assert [s.pid for s in tree(4200, {4200: parse_stat(line.replace("4242 (", "4200 (").replace(" 4200 ", " 1 ", 1)), 4242: stat})] == [4200, 4242]


BEFORE = """# HELP egovmon_inventory_full_pass_duration_seconds x
egovmon_inventory_full_pass_duration_seconds_bucket{le="0.5"} 1
egovmon_inventory_full_pass_duration_seconds_bucket{le="1.0"} 2
egovmon_inventory_full_pass_duration_seconds_bucket{le="+Inf"} 2
egovmon_inventory_full_pass_duration_seconds_count 2
egovmon_inventory_full_pass_duration_seconds_sum 1.2
egovmon_ingest_batches_total{result="accepted"} 10.0
"""
AFTER = BEFORE.replace('le="0.5"} 1', 'le="0.5"} 3').replace('le="1.0"} 2', 'le="1.0"} 5').replace(
    '"+Inf"} 2', '"+Inf"} 6').replace("_count 2", "_count 6").replace("_sum 1.2", "_sum 3.4")


def test_durations_over_the_window_from_two_scrapes() -> None:
    found = durations(parse_exposition(BEFORE), parse_exposition(AFTER))
    window = found["egovmon_inventory_full_pass_duration_seconds"]
    assert window["count"] == 4
    assert window["mean_seconds"] == pytest.approx(2.2 / 4)
    assert window["p99_le_seconds"] == float("inf")  # one of the four took longer than 1 s
    named = named_durations(found)
    assert named["full_reconcile"]["series"] == "egovmon_inventory_full_pass_duration_seconds"
    assert named["alert_cycle"] is None and named["state_export"] is None


def test_durations_of_a_histogram_labelled_by_task() -> None:
    series = 'egovmon_task_duration_seconds_{}{{task="{}"{}}} {}'
    def scrape(n: int) -> str:
        lines = []
        for task in ("alert_cycle", "inventory_full_pass"):
            lines += [series.format("bucket", task, ',le="0.5"', n), series.format("bucket", task, ',le="+Inf"', n),
                      series.format("count", task, "", n), series.format("sum", task, "", 0.2 * n)]
        return "\n".join(lines)
    named = named_durations(durations(parse_exposition(scrape(3)), parse_exposition(scrape(8))))
    assert named["alert_cycle"]["series"] == 'egovmon_task_duration_seconds{task="alert_cycle"}'
    assert named["alert_cycle"]["count"] == 5 and named["alert_cycle"]["mean_seconds"] == pytest.approx(0.2)
    assert named["alert_cycle"]["p99_le_seconds"] == 0.5
    assert named["full_reconcile"]["series"] == 'egovmon_task_duration_seconds{task="inventory_full_pass"}'
    assert named["state_export"] is None


class _Slow(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/slow":
            import time

            time.sleep(1.0)
        try:
            self.send_response(200 if self.path != "/shed" else 503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except BrokenPipeError:  # the client gave up (the timeout case)
            pass

    def log_message(self, *args: object) -> None:
        pass


def test_pool_keeps_connections_alive_and_times_out() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        async def scenario() -> None:
            pool = Pool(f"http://127.0.0.1:{server.server_address[1]}", 2)
            answers = [await pool.request("POST", "/echo", body=b"x%d" % i, timeout=5) for i in range(5)]
            assert [(a.status, a.body) for a in answers] == [(200, b"x%d" % i) for i in range(5)]
            assert pool.opened == 1
            assert (await pool.request("POST", "/shed", body=b"", timeout=5)).status == 503
            with pytest.raises(RequestTimeoutError):
                await pool.request("POST", "/slow", body=b"y", timeout=0.2)
            pool.close()

        asyncio.run(scenario())
    finally:
        server.shutdown()
        server.server_close()
