"""The effective rule set: custom rule files add to the default pack; `default_rules: false` replaces it."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.pack import DEFAULT_SOURCE, combine, default_rules, load_rule_pack
from alerting.rules import RulesError, load_rules
from server.settings import AlertingSettings

SITE = """
groups:
  - name: site
    rules:
      - alert: HostMemoryLow
        measurement: host_memory
        field: available_bytes
        divide_by: total_bytes
        op: "<"
        threshold: 0.05
        labels: {severity: critical}
      - alert: WebSlow
        measurement: probe_http
        field: duration_seconds
        threshold: 3
"""


def test_a_rule_file_adds_to_the_default_pack_and_replaces_a_default_rule_of_the_same_name(tmp_path: Path):
    (tmp_path / "site.yaml").write_text(SITE, encoding="utf-8")
    packed = load_rule_pack([tmp_path / "site.yaml"])
    by_name = {p.rule.alert: p for p in packed}
    defaults = [r.alert for r in default_rules()]
    assert set(by_name) == {*defaults, "WebSlow"} and len(packed) == len(defaults) + 1
    assert by_name["SnmpDeviceDown"].source == DEFAULT_SOURCE and by_name["Finding"].source == DEFAULT_SOURCE
    assert (by_name["HostMemoryLow"].source, by_name["HostMemoryLow"].replaces_default) == (str(tmp_path / "site.yaml"), True)
    assert by_name["HostMemoryLow"].rule.threshold == 0.05 and not by_name["WebSlow"].replaces_default


def test_default_rules_false_leaves_the_pack_out(tmp_path: Path):
    (tmp_path / "site.yaml").write_text(SITE, encoding="utf-8")
    assert [p.rule.alert for p in load_rule_pack([tmp_path / "site.yaml"], default_rules_too=False)] == ["HostMemoryLow", "WebSlow"]
    assert [p.rule.alert for p in load_rule_pack([])] == [r.alert for r in default_rules()]


def test_two_files_defining_one_alert_is_an_error():
    rules = load_rules(SITE).rules()
    with pytest.raises(RulesError, match="WebSlow is defined in both a.yaml and b.yaml"):
        combine(default_rules(), [("a.yaml", rules), ("b.yaml", rules[1:])])


def test_the_settings_refuse_no_rules_at_all():
    assert AlertingSettings(rules_files=["x.yaml"], default_rules=False).default_rules is False
    with pytest.raises(ValueError, match="default_rules is false but no rules_files"):
        AlertingSettings(default_rules=False)
