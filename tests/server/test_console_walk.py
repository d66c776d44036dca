"""The console's monitoring pages in headless Chromium, on a real `egovmon server` seeded by real sources:

- health's his-db-1: two HostCollector readings and a NetstateCollector reading of this machine, and two SNMP
  polls (SnmpCollector) of snmpsim serving the Huawei VRP 5720 recording (/work/shared/fixtures/snmp);
- police's jw-app-1: a HostCollector reading and the FlowCollector's summary of softflowd exporting the test pcap.

Walked as admin, noc, security and health's agency user: overview (NOC wall), host page, devices, device page,
flows. Checked: the load chart draws exactly the seeded load1 values, the device page lists the recording's
interfaces, the flows page shows the exported conversations and the traffic outside the (empty) address plan,
and the agency user sees nothing of police on any page (police's host answers 404). A screenshot of every page
for every role is kept (EGOVMON_ARTIFACTS, else the test's temporary directory); any browser error fails.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from collectors.flow.collector import FlowCollector
from collectors.host import HostCollector
from collectors.netstate.collector import NetstateCollector
from collectors.snmp.collector import SnmpCollector
from core.agentconfig import FlowSettings, SnmpDeviceSettings, SnmpSettings
from core.collect import LOCAL, Reading
from tests.collectors.snmp.snmprec import SHARED
from tests.flowtraffic import SOFTFLOWD_OPTIONS, write_traffic
from tests.server.browser import logged_in_page
from tests.server.test_console import PASSWORD, _chromium
from tests.serverproc import RunningServer, start_server
from tests.services import (
    BinaryMissingError,
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
        if os.environ.get("CI") == "true":
            pytest.fail(f"{exc} (required when CI=true)")
        pytest.skip(str(exc))
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
    top = sorted((s for s in reading.samples if s.measurement == "flow_top"), key=lambda s: int(s.tags["rank"]))
    return {"loads": loads, "interfaces": interfaces, "top_src": top[0].tags["src_prefix"], "top_dst": top[0].tags["dst_prefix"]}


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
                assert dc_row.split("\t")[1:5] == ["1", "0", "1", "0"]  # his-db-1 reporting, the VRP 5720 it polls up
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
                if agency_user:
                    assert page.goto(f"{server.url}/ui/hosts/{hosts['jw-app-1']}").status == 404
                    text = "\n".join(seen)
                    assert "jw-app-1" not in text and "police" not in text and seeded["top_src"] not in text
                else:
                    page.goto(f"{server.url}/ui/hosts/{hosts['jw-app-1']}?range=6h")
                    assert page.inner_text("#hostname") == "jw-app-1"
                page.context.close()
            browser.close()
        assert errors == [] or all("404" in e for e in errors), errors  # the agency user's 404 is the only error allowed
        assert len(list(artifacts.glob("*.png"))) == 20
    finally:
        server.stop()
