"""The catalogue of probe kinds (probes/kinds/): every module declares one kind, the settings schema is their
discriminated union, the reason texts are complete, configurations written for the flat `expect` still load,
and `egovmon probe check` runs any kind with the settings of a scheduled check."""

from __future__ import annotations

import json
import pkgutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import probes.kinds
from agent.settings import AgentSettings
from probes.kind import ProbeKind
from probes.kinds import catalogue, reasons
from probes.result import COMMON_REASONS, reason_text
from probes.settings import ProbesSettings

ROOT = Path(__file__).resolve().parents[2]

# Checks as configurations before the catalogue wrote them (one flat `expect` for every kind), each kind with the
# keys that concern it.
OLD_STYLE_CHECKS = [
    {"name": "ping", "kind": "icmp", "target": "10.0.0.1"},
    {"name": "port", "kind": "tcp", "target": "10.0.0.1:22", "expect": {}},
    {"name": "portal", "kind": "http", "target": "https://www.egov.test/", "interval_seconds": 30,
     "expect": {"status_codes": [200, 301], "body_regex": "欢迎", "body_not_regex": "维护", "follow_redirects": False,
                "max_redirects": 3, "verify_tls": False, "ca_file": "/etc/ca.pem"}},
    {"name": "cert", "kind": "tls", "target": "www.egov.test:443",
     "expect": {"min_days_valid": 30, "min_tls_version": "TLSv1.3", "ca_file": "/etc/ca.pem", "server_name": "w"}},
    {"name": "dns", "kind": "dns", "target": "www.egov.test",
     "expect": {"dns_server": "10.0.0.53", "record_type": "AAAA", "rcode": "NOERROR", "records": ["::1"]}},
    {"name": "lan", "kind": "arp", "target": "10.0.0.0/24", "expect": {"interface": "eth1"}},
    {"name": "rogue", "kind": "dhcp", "expect": {"interface": "eth1", "authorized_servers": ["10.0.0.1"]}},
    {"name": "sites", "kind": "website", "target": "10.0.0.0/24", "expect": {"ports": [80, 8080]}},
    {"name": "path", "kind": "traceroute", "target": "10.0.0.9", "expect": {"protocol": "tcp", "port": 443}},
]


def test_every_module_of_the_package_is_a_kind_of_its_own_name() -> None:
    modules = sorted(info.name for info in pkgutil.iter_modules(probes.kinds.__path__))
    assert list(catalogue()) == modules
    for name, kind in catalogue().items():
        assert isinstance(kind, ProbeKind) and kind.name == name
        assert kind.check.model_fields["kind"].annotation.__args__ == (name,)  # type: ignore[union-attr]
        assert all(kind.summary), f"{name}: summary in both languages"


def test_the_settings_schema_is_a_union_discriminated_by_kind() -> None:
    schema = AgentSettings.model_json_schema()
    items = schema["$defs"]["ProbesSettings"]["properties"]["checks"]["items"]
    assert items["discriminator"]["propertyName"] == "kind"
    assert sorted(items["discriminator"]["mapping"]) == sorted(catalogue())
    http = schema["$defs"]["HttpCheck"]["properties"]
    assert set(schema["$defs"][http["expect"]["$ref"].rsplit("/", 1)[1]]["properties"]) == {
        "status_codes", "body_regex", "body_not_regex", "follow_redirects", "max_redirects", "verify_tls", "ca_file"}


def test_old_style_checks_still_load_with_their_values() -> None:
    settings = ProbesSettings.model_validate({"checks": OLD_STYLE_CHECKS})
    loaded = [check.model_dump(exclude_unset=True) for check in settings.checks]
    assert loaded == OLD_STYLE_CHECKS
    by_name = {check.name: check for check in settings.checks}
    assert (by_name["portal"].expect.max_redirects, by_name["cert"].expect.min_days_valid,
            by_name["dns"].expect.record_type, by_name["sites"].expect.ports) == (3, 30, "AAAA", [80, 8080])
    assert (by_name["dns"].timeout_seconds, by_name["ping"].interval_seconds) == (10, 60)  # the defaults
    assert type(by_name["path"]).__name__ == "TracerouteCheck"


@pytest.mark.parametrize(("check", "message"), [
    ({"name": "d", "kind": "dns", "target": "a.test"}, "kind dns needs expect.dns_server"),
    ({"name": "a", "kind": "arp", "target": "10.0.0.0/24"}, "kind arp needs expect.interface"),
    ({"name": "t", "kind": "tcp"}, "kind tcp needs a target"),
    ({"name": "x", "kind": "gopher", "target": "a"}, "does not match any of the expected tags"),
    # a key of another kind is refused now that each kind has its own `expect`
    ({"name": "h", "kind": "http", "target": "http://a/", "expect": {"interface": "eth0"}}, "interface"),
    ({"name": "h", "kind": "http", "target": "http://a/", "expect": {"max_redirects": 31}}, "less than or equal to 30"),
])
def test_bad_checks_are_refused_with_the_reason(check: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProbesSettings.model_validate({"checks": [check]})


def test_a_dhcp_check_needs_no_target() -> None:
    check = catalogue()["dhcp"].parse({"name": "rogue", "expect": {"interface": "eth1"}})
    assert (check.kind, check.target, check.expect.interface) == ("dhcp", "", "eth1")


def test_every_reason_has_both_texts_and_the_kinds_add_their_own() -> None:
    table = reasons()
    own = {code for kind in catalogue().values() for code in kind.reasons}
    assert set(table) == set(COMMON_REASONS) | own
    assert {"nxdomain", "rogue_dhcp", "cert_expiring", "status_mismatch"} <= own
    for code, (zh, en) in table.items():
        assert zh and en and zh != en, code
        assert (reason_text(code), reason_text(code, "en")) == (zh, en)
    assert reason_text("no_such_code", "en") == "no_such_code"


def cli(*args: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "cli", "probe", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, check=False)
    return done.returncode, done.stdout


def test_cli_lists_the_kinds_and_runs_any_kind_as_configured() -> None:
    code, text = cli("kinds", "--lang", "en")
    assert code == 0 and [line.split()[0] for line in text.splitlines()] == list(catalogue())
    # a closed port on loopback: the tcp kind through the generic command, refused, exit status 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    code, text = cli("check", "tcp", f"127.0.0.1:{closed}", "--json")
    document = json.loads(text)
    assert (code, document["kind"], document["reason"]) == (1, "tcp", "connection_refused")
    # a scan kind runs only inside the ranges given
    code, text = cli("check", "website", "127.0.0.0/24", "--expect", "ports=[9]", "--allow", "10.0.0.0/8", "--json")
    assert (code, json.loads(text)["error"]) == (2, "OutOfRangeError")
    code, _ = cli("check", "dns", "a.test", "--expect", "record_type=a")  # lower case is not a record type
    assert code == 2
