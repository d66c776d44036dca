"""Discovery on networks the test builds with `ip netns`, veth pairs and a bridge (prefix egp6<pid>):

    segment A (bridge in `auth`, 10.77.5.0/24): probe `pa` .9, auth br0 .1 (authorized dnsmasq DHCP,
        and the router to `far`), hosts h1 .7 and h2 .8
    segment B (10.66.6.0/24): probe `pb`, rogue `r0` .1 (an unauthorized dnsmasq DHCP server)
    behind the router: far 10.88.0.2 (auth 10.88.0.1)

The probes run as `egovmon probe ... --json` inside the probe namespace. Nothing outside these
namespaces is touched; they are deleted, and dnsmasq stopped, also when a test fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.probes.conftest import skip_or_fail
from tests.probes.servers import ip, namespaces, start_dnsmasq, veth, wait_links
from tests.services import ServerProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Lab:
    probe: str
    macs: dict[str, str]  # address -> MAC of the interface that owns it


def _mac(ns: str, iface: str) -> str:
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", iface], capture_output=True, text=True, check=True)
    return str(json.loads(out.stdout)[0]["address"])


def _echo(ns: str, address: str) -> bool:
    """One ICMP echo from inside ns (our own probe: iputils ping is not installed everywhere)."""
    code = f"import asyncio; from probes.icmp import probe_icmp; exit(0 if asyncio.run(probe_icmp({address!r}, timeout=1)).success else 1)"
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("dnsmasq") is None:
        skip_or_fail("dnsmasq is not installed (see ../shared/REAL_COMPONENTS.md)")
    if shutil.which("ip") is None:
        skip_or_fail("iproute2 (ip) is not installed")
    directory = tmp_path_factory.mktemp("netns")
    servers: list[ServerProcess] = []
    try:
        with namespaces("p", "auth", "h1", "h2", "rogue", "far") as (p, auth, h1, h2, rogue, far):
            ip("-n", auth, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
            ip("-n", auth, "link", "set", "br0", "up")
            ip("-n", auth, "addr", "add", "10.77.5.1/24", "dev", "br0")
            for ns, name, address in ((p, "pa", "10.77.5.9/24"), (h1, "eth0", "10.77.5.7/24"),
                                      (h2, "eth0", "10.77.5.8/24")):
                port = f"sw-{name}-{ns[-2:]}"
                veth(auth, port, ns, name)
                ip("-n", auth, "link", "set", port, "master", "br0")
                ip("-n", ns, "addr", "add", address, "dev", name)
            ip("-n", p, "route", "add", "default", "via", "10.77.5.1")
            veth(p, "pb", rogue, "r0")
            ip("-n", rogue, "addr", "add", "10.66.6.1/24", "dev", "r0")
            veth(auth, "up0", far, "eth0")
            ip("-n", auth, "addr", "add", "10.88.0.1/30", "dev", "up0")
            ip("-n", far, "addr", "add", "10.88.0.2/30", "dev", "eth0")
            ip("-n", far, "route", "add", "10.77.5.0/24", "via", "10.88.0.1")
            subprocess.run(["ip", "netns", "exec", auth, "sysctl", "-qw", "net.ipv4.ip_forward=1"], check=True)
            wait_links((p, "pa"), (p, "pb"), (h1, "eth0"), (h2, "eth0"), (rogue, "r0"), (far, "eth0"), (auth, "br0"))
            servers.append(start_dnsmasq(directory / "auth", 0, [
                "--interface=br0", "--bind-interfaces", "--no-ping", f"--dhcp-leasefile={directory / 'auth.leases'}",
                "--dhcp-range=10.77.5.100,10.77.5.150,255.255.255.0,1h", "--dhcp-option=6,10.77.5.1"], netns=auth))
            # the rogue pings an address before offering it, as dnsmasq does by default: its OFFER comes ~3 s late
            servers.append(start_dnsmasq(directory / "rogue", 0, [
                "--interface=r0", "--bind-interfaces", f"--dhcp-leasefile={directory / 'rogue.leases'}",
                "--dhcp-range=10.66.6.50,10.66.6.60,255.255.255.0,10m", "--dhcp-option=3,10.66.6.1",
                "--dhcp-option=6,10.66.6.1"], netns=rogue))
            for server in servers:
                server.wait_ready(lambda s=server: "DHCP, IP range" in s.log_tail())
            # every host on segment A answers ARP for its own address once its link is up
            wait_until(lambda: _echo(p, "10.77.5.8") and _echo(p, "10.88.0.2"), 15, "segments to forward")
            yield Lab(p, {"10.77.5.1": _mac(auth, "br0"), "10.77.5.7": _mac(h1, "eth0"), "10.77.5.8": _mac(h2, "eth0")})
    finally:
        for server in servers:
            server.stop()


def probe(lab: Lab, *args: str, wait: bool = True) -> subprocess.Popen[str] | tuple[int, dict]:
    process = subprocess.Popen(["ip", "netns", "exec", lab.probe, sys.executable, "-m", "cli", "probe", *args, "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    if not wait:
        return process
    return finish(process)


def finish(process: subprocess.Popen[str]) -> tuple[int, dict]:
    out, err = process.communicate(timeout=60)
    assert out, err
    return process.returncode, json.loads(out)


def test_rogue_and_authorized_dhcp_servers(lab: Lab) -> None:
    authorized = probe(lab, "dhcp", "--iface", "pa", "--authorized", "10.77.5.1", "--timeout", "6", wait=False)
    rogue = probe(lab, "dhcp", "--iface", "pb", "--authorized", "10.77.5.1", "--timeout", "6", wait=False)
    code, good = finish(authorized)  # type: ignore[arg-type]
    assert (code, good["success"], good["fields"]) == (0, True, {"dhcp_servers": 1, "dhcp_rogue_servers": 0})
    offer = good["findings"][0]
    assert (offer["kind"], offer["subject"]) == ("dhcp_offer", "10.77.5.1")
    assert {k: offer["attributes"][k] for k in ("network", "routers", "dns_servers", "lease_seconds", "authorized",
                                                "server_mac")} == {
        "network": "10.77.5.0/24", "routers": ["10.77.5.1"], "dns_servers": ["10.77.5.1"], "lease_seconds": 3600,
        "authorized": True, "server_mac": lab.macs["10.77.5.1"]}
    code, bad = finish(rogue)  # type: ignore[arg-type]
    assert (code, bad["success"], bad["reason"], bad["reason_text"]) == (1, False, "rogue_dhcp", "发现未授权的 DHCP 服务器")
    attributes = bad["findings"][0]["attributes"]
    assert (bad["findings"][0]["subject"], attributes["network"], attributes["routers"], attributes["authorized"]) == (
        "10.66.6.1", "10.66.6.0/24", ["10.66.6.1"], False)
    assert attributes["offered_address"].startswith("10.66.6.")


def test_arp_sweep_finds_the_hosts_of_the_segment(lab: Lab) -> None:
    code, result = probe(lab, "arp", "10.77.5.0/28", "--iface", "pa", "--allow", "10.77.5.0/24", "--timeout", "1")  # type: ignore[misc]
    assert (code, result["success"], result["fields"]) == (0, True, {"arp_hosts": 3, "arp_new_hosts": 3})
    assert {f["subject"]: f["attributes"]["mac"] for f in result["findings"]} == lab.macs
    assert {f["kind"] for f in result["findings"]} == {"arp_entry"}


def test_arp_sweep_outside_the_allowed_ranges_is_refused(lab: Lab) -> None:
    code, result = probe(lab, "arp", "10.77.5.0/24", "--iface", "pa", "--allow", "10.77.5.0/25")  # type: ignore[misc]
    assert (code, result) == (2, {"error": "OutOfRangeError", "message":
                                  "ARP sweep of 10.77.5.0/24 is outside the allowed ranges (10.77.5.0/25)"})


@pytest.mark.parametrize("protocol", ["icmp", "udp", "tcp"])
def test_traceroute_through_the_router(lab: Lab, protocol: str) -> None:
    code, result = probe(lab, "traceroute", "10.88.0.2", "--protocol", protocol, "--allow", "10.88.0.0/16",  # type: ignore[misc]
                         "--max-hops", "4", "--timeout", "1")
    assert (code, result["success"], result["detail"]) == (0, True, "10.77.5.1 -> 10.88.0.2")
    assert result["findings"][0]["attributes"] == {"protocol": protocol, "hops": ["10.77.5.1", "10.88.0.2"],
                                                   "hop_count": 2, "reached": True}


def test_icmp_uses_the_unprivileged_ping_socket_where_the_group_may(tmp_path: Path) -> None:
    """Without CAP_NET_RAW but with net.ipv4.ping_group_range open (a per-namespace sysctl), echo works."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        skip_or_fail("setpriv (util-linux) is not installed")
    with namespaces("ping") as (ns,):
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"],
                       check=True)
        done = subprocess.run(["ip", "netns", "exec", ns, setpriv, "--inh-caps=-net_raw", "--bounding-set=-net_raw",
                               sys.executable, "-m", "cli", "probe", "icmp", "127.0.0.1", "--json"],
                              capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    document = json.loads(done.stdout)
    assert (done.returncode, document["success"], list(document["phases"])) == (0, True, ["rtt"])
