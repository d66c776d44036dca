"""The console's monitoring pages in headless Chromium, on a real `egovmon server` seeded by real sources:

- health's his-db-1: two HostCollector readings and a NetstateCollector reading of this machine, and two SNMP
  polls (SnmpCollector) of snmpsim serving the Huawei VRP 5720 recording (/work/shared/fixtures/snmp);
- police's jw-app-1: a HostCollector reading and the FlowCollector's summary of softflowd exporting the test pcap;
- real probes (ProbesCollector): health's HTTP checks of a local web server, one answered 200 and one 503, and a
  TCP check of a closed port; police's HTTP check of the 503 page.

Walked as admin, noc, security and health's agency user: overview (NOC wall), host page, devices, device page,
flows, probes; then, as the agency user, every GET page of the console (enumerated from its router) with police's
objects in the path (404) or none (police's names absent). Checked: the load chart draws exactly the seeded load1 values, the device page lists the recording's
interfaces, the flows page shows the exported conversations and the traffic outside the (empty) address plan,
and the agency user sees nothing of police on any page (police's host answers 404). A screenshot of every page
for every role is kept (EGOVMON_ARTIFACTS, else the test's temporary directory); any browser error fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from collectors.flow.collector import FlowCollector
from collectors.flow.settings import FlowSettings
from collectors.host import HostCollector
from collectors.netstate.collector import NetstateCollector
from collectors.snmp.collector import SnmpCollector
from collectors.snmp.settings import SnmpDeviceSettings, SnmpSettings
from core.collect import LOCAL, Reading
from probes.collector import ProbesCollector
from probes.settings import ProbesSettings
from server.ui.views import router as console_router
from tests.collectors.snmp.snmprec import SHARED
from tests.flowtraffic import SOFTFLOWD_OPTIONS, write_traffic
from tests.server.browser import logged_in_page
from tests.server.test_console import PASSWORD, _chromium
from tests.serverproc import RunningServer, start_server
from tests.services import (
    BinaryMissingError,
    free_port,
    missing,
    require_program,
    start_snmpsim,
    wait_until,
)

RECORDING = SHARED / "librenms_vrp_5720.snmprec"
DEVICE = "vrp-5720"


def _ship(server: RunningServer, headers: dict[str, str], batch: str, reading: Reading) -> None:
    body = {"batch_id": batch, "samples": [s.model_dump(mode="json") for s in reading.samples],
            "observations": [o.model_dump(mode="json") for o in reading.observations]}  # fmt: skip
    response = httpx.post(f"{server.url}/api/v1/ingest", headers=headers, json=body, timeout=30)
    assert response.status_code == 200, response.text


LOOP = asyncio.new_event_loop()  # one loop for every collection: the SNMP engine is bound to the loop it started on


def _collect(collector: object) -> Reading:
    return LOOP.run_until_complete(collector.collect(LOCAL, timeout=20))  # type: ignore[attr-defined]


class _Portal(BaseHTTPRequestHandler):
    """A local web server for the HTTP probes: /ok answers 200, anything else 503."""

    def do_GET(self) -> None:  # the standard library names it
        status = 200 if self.path == "/ok" else 503
        body = "门户正常".encode() if status == 200 else b"maintenance"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _probe(checks: list[dict[str, object]]) -> Reading:
    collector = ProbesCollector(ProbesSettings(allowed_ranges=["127.0.0.0/8"], checks=checks))
    try:
        return _collect(collector)
    finally:
        LOOP.run_until_complete(collector.aclose())


def _seed_probes(server: RunningServer, health_agent: dict[str, str], police_agent: dict[str, str]) -> None:
    """Health: portal-ok (200), portal-down (503), db-port (TCP, refused); police: jw-portal (503)."""
    web = ThreadingHTTPServer(("127.0.0.1", 0), _Portal)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{web.server_address[1]}"
    try:
        health = _probe([{"name": "portal-ok", "kind": "http", "target": f"{base}/ok", "timeout_seconds": 5},
                         {"name": "portal-down", "kind": "http", "target": f"{base}/maintenance", "timeout_seconds": 5},
                         {"name": "db-port", "kind": "tcp", "target": f"127.0.0.1:{free_port()}", "timeout_seconds": 5}])
        police = _probe([{"name": "jw-portal", "kind": "http", "target": f"{base}/jw", "timeout_seconds": 5}])
    finally:
        web.shutdown()
        web.server_close()
    assert {s.tags["check"]: s.fields["success"] for s in health.samples if s.measurement == "probe"} == {
        "portal-ok": 1, "portal-down": 0, "db-port": 0}
    _ship(server, health_agent, "probes", health)
    _ship(server, police_agent, "probes", police)


def _seed(server: RunningServer, tmp_path: Path) -> dict[str, object]:
    """Ship the real readings; returns what the checks need."""
    health, police = server.agent("health", "his-db-1"), server.agent("police", "jw-app-1")
    host = HostCollector()
    loads = []
    # The first reading is stamped a minute back, so the two fall in different buckets of the 1-hour chart.
    for i, collector in enumerate((HostCollector(clock=lambda: datetime.now(UTC) - timedelta(minutes=1)), host)):
        reading = _collect(collector)
        loads += [s.fields["load1"] for s in reading.samples if s.measurement == "host_load"]
        _ship(server, health, f"host-{i}", reading)
    _ship(server, health, "netstate", _collect(NetstateCollector()))
    try:
        snmpsim = start_snmpsim(tmp_path / "snmpsim", [RECORDING])
    except BinaryMissingError as exc:
        missing(str(exc))
    interfaces: set[str] = set()
    try:
        snmp = SnmpCollector(SnmpSettings(devices=[SnmpDeviceSettings(name=DEVICE, address="127.0.0.1", port=snmpsim.port,
                                                                      community=RECORDING.stem, timeout_seconds=5)]))  # fmt: skip
        try:
            for i in range(2):
                reading = _collect(snmp)
                interfaces |= {s.tags["if_name"] for s in reading.samples if s.measurement == "snmp_interface"}
                _ship(server, health, f"snmp-{i}", reading)
        finally:
            snmp.close()
    finally:
        snmpsim.stop()
    _ship(server, police, "police-host", _collect(host))
    softflowd = require_program("softflowd")
    traffic = write_traffic(tmp_path / "traffic.pcap")
    flows = FlowCollector(FlowSettings(listen_host="127.0.0.1", listen_port=0))
    flows.start()
    try:
        port = flows.listener.address[1]
        subprocess.run([softflowd, "-r", str(traffic.pcap), "-n", f"127.0.0.1:{port}", "-v", "10", *SOFTFLOWD_OPTIONS[10]],
                       capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
        collected: list[Reading] = []

        def summarised() -> Reading | None:
            collected.append(_collect(flows))
            return collected[-1] if any(s.measurement == "flow_top" for s in collected[-1].samples) else None

        reading = wait_until(summarised, 30, "softflowd's flows summarised", interval=0.5)
    finally:
        flows.close()
    _ship(server, police, "flows", reading)
    _seed_probes(server, health, police)
    top = sorted((s for s in reading.samples if s.measurement == "flow_top"), key=lambda s: int(s.tags["rank"]))
    return {"loads": loads, "interfaces": interfaces, "top_src": top[0].tags["src_prefix"], "top_dst": top[0].tags["dst_prefix"]}


# Path parameters of console pages, filled with police's objects; a new page with a new parameter fails here until
# it is added. None: the parameter does not name an agency's object (e.g. the language).
NOT_ONE_AGENCYS = ("/ui/login", "/ui/lang/{lang}")


def _every_page_without_police(page: object, url: str, police: dict[str, str], seen: list[str]) -> None:
    """Visit every GET page of the console as the agency user: with police's host (or an id police would own) in the
    path the page answers 404; the others answer 200 and their text is kept for the caller's checks."""
    values = {"device": "vrp-5720", "finding_id": "999999", "incident_id": "999999", **police}  # ids police would own
    visited = 0
    for route in console_router.routes:
        if "GET" not in getattr(route, "methods", ()) or route.path in NOT_ONE_AGENCYS:
            continue
        names = re.findall(r"\{(\w+)\}", route.path)
        assert set(names) <= set(values), f"console page {route.path}: add its parameters to this walk"
        path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], route.path)
        answer = page.goto(url + path)  # type: ignore[attr-defined]
        assert answer is not None and answer.status == (404 if names else 200), (path, answer and answer.status)
        seen.append(page.inner_text("body"))  # type: ignore[attr-defined]
        visited += 1
    assert visited >= 12


def _number(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def test_monitoring_pages_for_each_role_in_headless_chromium(tmp_path: Path):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    artifacts = Path(os.environ.get("EGOVMON_ARTIFACTS", tmp_path / "screenshots")) / "walk"  # its own folder: other tests keep theirs beside it
    artifacts.mkdir(parents=True, exist_ok=True)
    server = start_server(tmp_path / "server")
    try:
        seeded = _seed(server, tmp_path)
        site = {"code": "platform-dc", "name": "政务云主数据中心", "kind": "platform_dc"}
        assert httpx.post(f"{server.url}/api/v1/inventory/sites", json=site, headers=server.admin).status_code == 201
        registered = httpx.post(f"{server.url}/api/v1/inventory/hosts", headers=server.admin,
                                json={"name": "his-db-1", "agency": "health", "site": "platform-dc"})  # fmt: skip
        assert registered.status_code == 201, registered.text
        agencies = {a["code"]: a["id"] for a in httpx.get(f"{server.url}/api/v1/agencies", headers=server.admin).json()}
        hosts = {h["hostname"]: h["id"] for h in httpx.get(f"{server.url}/api/v1/hosts", headers=server.admin).json()}
        for name, role, agency in (("ops", "admin", None), ("noc", "noc", None), ("sec", "security", None),
                                   ("weijian", "agency", agencies["health"])):  # fmt: skip
            created = httpx.post(f"{server.url}/api/v1/users", headers=server.admin,
                                 json={"username": name, "role": role, "agency_id": agency, "password": PASSWORD})  # fmt: skip
            assert created.status_code == 201, created.text
        police_ids = {"host_id": str(hosts["jw-app-1"])}
        police_findings = [f for f in httpx.get(f"{server.url}/api/v1/findings", headers=server.admin).json() if f.get("agency") == "police"]
        if police_findings:
            police_ids["finding_id"] = str(police_findings[0]["id"])
        errors: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            for name in ("ops", "noc", "sec", "weijian"):
                page = logged_in_page(browser, server.url, name, PASSWORD, errors, width=1366)
                agency_user = name == "weijian"
                seen: list[str] = []

                def shot(label: str, page=page, seen=seen, name=name) -> None:
                    seen.append(page.inner_text("body"))
                    page.screenshot(path=str(artifacts / f"{name}-{label}.png"), full_page=True)

                assert page.inner_text("#hosts-total") == ("1" if agency_user else "2")
                dc_row = page.inner_text("#sites tr:has-text('政务云主数据中心')")
                # his-db-1 reporting, the VRP 5720 it polls up, its two failing probes (the 503 page and the closed port)
                assert dc_row.split("\t")[1:6] == ["1", "0", "1", "0", "2"]
                if not agency_user:
                    assert "未登记站点" in page.inner_text("#sites")  # police's jw-app-1 is registered nowhere
                shot("1-overview")
                page.goto(f"{server.url}/ui/hosts/{hosts['his-db-1']}?range=1h")
                drawn = page.get_attribute("#chart-load path[data-series=load1]", "data-values")
                assert drawn == " ".join(_number(v) for v in seeded["loads"])  # exactly the two seeded values
                assert page.locator("#chart-cpu path.series").count() >= 2
                assert page.locator("#chart-fs path.series").count() >= 1
                assert page.locator("#routes tr").count() >= 2 and page.locator("#listening tr").count() >= 2
                shot("2-host")
                page.goto(f"{server.url}/ui/devices")
                assert DEVICE in page.inner_text("#devices") and "可达" in page.inner_text("#devices")
                shot("3-devices")
                opened = page.goto(server.url + page.get_attribute("a.device", "href"))
                assert opened is not None and opened.status == 200, page.content()[:3000]
                table = page.inner_text("#interfaces")
                assert seeded["interfaces"] and all(i in table for i in seeded["interfaces"])
                assert page.locator("#chart-if-traffic").count() == 1
                # the recording's LLDP neighbours and ARP entries in labelled columns, not raw key=value attributes
                assert page.locator("#lldp tr").count() >= 2 and page.locator("#arp tr").count() >= 2
                assert "local_port=" not in page.inner_text("#lldp") and "mac=" not in page.inner_text("#arp")
                shot("4-device")
                page.goto(f"{server.url}/ui/flows")
                if agency_user:
                    assert page.locator("section.exporter").count() == 0
                else:
                    drawn = page.get_attribute("#chart-flows path[data-series='127.0.0.1']", "data-values")
                    assert drawn is not None and float(drawn.split()[-1]) > 0  # softflowd's export, in bit/s
                    top = page.inner_text("section.exporter .flow-top")
                    assert seeded["top_src"] in top and seeded["top_dst"] in top
                    assert page.locator("section.exporter .flow-unplanned td.critical").count() >= 1
                shot("5-flows")
                page.goto(f"{server.url}/ui/probes")
                assert page.inner_text("#probes-failing") == ("2" if agency_user else "3")
                rows = page.inner_text("#probes")
                assert "portal-down" in rows and "失败" in rows and "HTTP 503" in rows and "portal-ok" in rows
                assert ("jw-portal" in rows) is not agency_user
                shot("6-probes")
                if agency_user:
                    assert page.goto(f"{server.url}/ui/hosts/{hosts['jw-app-1']}").status == 404
                    _every_page_without_police(page, server.url, police_ids, seen)
                    text = "\n".join(seen)
                    assert "jw-app-1" not in text and "police" not in text and seeded["top_src"] not in text
                    assert "jw-portal" not in text
                else:
                    page.goto(f"{server.url}/ui/hosts/{hosts['jw-app-1']}?range=6h")
                    assert page.inner_text("#hostname") == "jw-app-1"
                page.context.close()
            browser.close()
        assert errors == [] or all("404" in e for e in errors), errors  # the agency user's 404 is the only error allowed
        assert len(list(artifacts.glob("*.png"))) == 24
    finally:
        server.stop()
