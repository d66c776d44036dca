"""Rule files and the evaluator: for, hysteresis, no-data, absence, findings (pure, clock passed in)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from alerting.evaluate import ALERT_STATUS_TEXT, NODATA, Alert, AlertStatus, Evaluator, fingerprint
from alerting.rules import RulesError, load_rules

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RULES = """
groups:
  - name: hosts
    rules:
      - alert: HostCpuHigh
        measurement: host_cpu
        field: usage_percent
        op: ">"
        threshold: 90
        clear: 80
        for: 2m
        labels: {severity: warning, category: host}
        annotations: {summary_zh: "主机 {host} CPU {value:.0f}%", summary_en: "Host {host} CPU at {value:.0f}%"}
      - alert: AgentSilent
        kind: absence
        measurement: host_system
        for: 3m
        labels: {severity: critical, category: coverage, article: 第二十七条第（一）项}
      - alert: UndeclaredNetwork
        kind: finding
        rule_ids: [undeclared_network]
        min_severity: warning
        labels: {category: compliance}
"""


def states(evaluator: Evaluator) -> dict[tuple[str, str], tuple[str, bool]]:
    return {(a.labels["alertname"], a.labels.get("host", a.labels.get("finding_id", ""))): (a.status, a.lacking_data)
            for a in evaluator.alerts.values()}  # fmt: skip


def test_threshold_waits_for_its_duration_and_resolves_only_past_the_clear_value():
    ev = Evaluator(load_rules(RULES).rules())
    ev.observe("host_cpu", {"host": "h1", "agency": "health"}, {"usage_percent": 95.0}, T0)
    assert [(t.before, t.after) for t in ev.evaluate(T0)] == [(None, "pending")]
    ev.observe("host_cpu", {"host": "h1", "agency": "health"}, {"usage_percent": 93.0}, T0 + timedelta(minutes=1))
    assert ev.evaluate(T0 + timedelta(minutes=1)) == []
    ev.observe("host_cpu", {"host": "h1", "agency": "health"}, {"usage_percent": 92.0}, T0 + timedelta(minutes=2))
    (fired,) = ev.evaluate(T0 + timedelta(minutes=2))
    assert (fired.before, fired.after, fired.alert.annotations["summary_zh"]) == ("pending", "firing", "主机 h1 CPU 92%")
    ev.observe("host_cpu", {"host": "h1", "agency": "health"}, {"usage_percent": 85.0}, T0 + timedelta(minutes=3))
    assert ev.evaluate(T0 + timedelta(minutes=3)) == []  # below 90 but above the clear value 80: still firing
    ev.observe("host_cpu", {"host": "h1", "agency": "health"}, {"usage_percent": 79.0}, T0 + timedelta(minutes=4))
    (resolved,) = ev.evaluate(T0 + timedelta(minutes=4))
    assert (resolved.before, resolved.after, resolved.alert.labels["agency"]) == ("firing", "resolved", "health")


def test_a_short_spike_never_fires():
    ev = Evaluator(load_rules(RULES).rules())
    ev.observe("host_cpu", {"host": "h1"}, {"usage_percent": 99.0}, T0)
    ev.evaluate(T0)
    ev.observe("host_cpu", {"host": "h1"}, {"usage_percent": 10.0}, T0 + timedelta(minutes=1))
    assert ev.evaluate(T0 + timedelta(minutes=1)) == []
    assert ev.alerts == {}


def test_missing_data_keeps_the_alert_firing_marks_it_and_raises_no_data():
    ev = Evaluator(load_rules(RULES).rules(), nodata_after=timedelta(minutes=5))
    ev.observe("host_cpu", {"host": "h1"}, {"usage_percent": 95.0}, T0)
    ev.evaluate(T0)
    ev.evaluate(T0 + timedelta(minutes=2))
    assert states(ev)[("HostCpuHigh", "h1")] == ("firing", False)
    later = ev.evaluate(T0 + timedelta(minutes=6))  # nothing for 6 minutes
    assert states(ev)[("HostCpuHigh", "h1")] == ("firing", True)
    assert states(ev)[(NODATA, "h1")] == ("firing", False)
    assert {(t.alert.labels["alertname"], t.after, t.lacking_data) for t in later} == {
        ("HostCpuHigh", "firing", True), (NODATA, "pending", False), (NODATA, "firing", False)}
    ev.observe("host_cpu", {"host": "h1"}, {"usage_percent": 50.0}, T0 + timedelta(minutes=7))
    back = ev.evaluate(T0 + timedelta(minutes=7))
    assert [(t.alert.labels["alertname"], t.before, t.after, t.lacking_data) for t in back] == [
        ("HostCpuHigh", "firing", "firing", False),  # data is back: no longer lacking...
        ("HostCpuHigh", "firing", "resolved", False),  # ...and 50 is past the clear value
        (NODATA, "firing", "resolved", False),
    ]


def test_absence_fires_for_a_silent_host_and_resolves_when_it_reports_again():
    ev = Evaluator(load_rules(RULES).rules())
    ev.observe("host_system", {"host": "h1"}, {"uptime_seconds": 10}, T0)
    ev.observe("host_system", {"host": "h2"}, {"uptime_seconds": 10}, T0 + timedelta(minutes=2))
    ev.evaluate(T0 + timedelta(minutes=3))
    assert states(ev) == {("AgentSilent", "h1"): ("firing", False)}
    ev.observe("host_system", {"host": "h1"}, {"uptime_seconds": 200}, T0 + timedelta(minutes=4))
    (resolved,) = ev.evaluate(T0 + timedelta(minutes=4))
    assert (resolved.alert.labels["host"], resolved.after) == ("h1", "resolved")


def test_findings_fire_by_rule_and_severity_and_resolve_with_their_status():
    ev = Evaluator(load_rules(RULES).rules())
    common = {"rule_id": "undeclared_network", "subject": "192.168.77.0/24", "agency": "health", "article": "第九条",
              "title_zh": "未申报的网络", "title_en": "Undeclared network"}
    ev.finding(7, severity="warning", status="open", at=T0, **common)
    ev.finding(8, severity="info", status="open", at=T0, **{**common, "subject": "x"})
    (fired_pending, fired) = ev.evaluate(T0)
    assert (fired.after, fired.alert.labels["finding_id"], fired.alert.labels["agency"]) == ("firing", "7", "health")
    assert fired.alert.annotations["summary_zh"] == "未申报的网络"
    ev.finding(7, severity="warning", status="exempted", at=T0 + timedelta(minutes=1), **common)
    (resolved,) = ev.evaluate(T0 + timedelta(minutes=1))
    assert resolved.after == "resolved"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("groups: [{name: g, rules: [{alert: A, measurement: m, field: f}]}]", "threshold rule needs field and threshold"),
        ("groups: [{name: g, rules: [{alert: A, measurement: m, field: f, threshold: 5, clear: 9}]}]", "firing side"),
        ("groups: [{name: g, rules: [{alert: A, kind: rate, measurement: m, field: f, op: '<', threshold: 5, clear: 1}]}]",
         "clear 1.0 is on the firing side of threshold 5.0"),
        ("groups: [{name: g, rules: [{alert: A, kind: rate, field: f, threshold: 5}]}]", "rate rule needs measurement"),
        ("groups: [{name: g, rules: [{alert: A, kind: absence, measurement: m, for: 5 minutes}]}]", "not a duration"),
        ("groups: [{name: g, rules: [{alert: A, kind: absence, measurement: m}, {alert: A, kind: absence, measurement: n}]}]", "duplicate alert names: A"),
        ("groups: [{name: g, rules: [{alert: A, kind: absence, measurement: m, labels: {severity: urgent}}]}]", "labels.severity"),
        ("groups: [{name: g, rules: [{alert: A, kind: absence, measurement: m, annotations: {s: '{oops'}}]}]", "bad template"),
    ],
)
def test_rule_files_are_checked_like_promtool(text, problem):
    with pytest.raises(RulesError) as raised:
        load_rules(text)
    assert problem in str(raised.value)


@pytest.mark.parametrize(("op", "clear"), [(">", 80), (">=", 90), ("<", 95), ("<=", 90)])
def test_a_clear_value_on_the_resolving_side_or_at_the_threshold_is_accepted(op, clear):
    (rule,) = load_rules(f"groups: [{{name: g, rules: [{{alert: A, measurement: m, field: f, op: '{op}', threshold: 90, "
                         f"clear: {clear}}}]}}]").rules()  # fmt: skip
    assert (rule.op, rule.clear_value) == (op, clear)


def test_an_escalated_finding_replaces_its_alert_and_nothing_is_left_lacking_data():
    ev = Evaluator(load_rules(RULES).rules())
    common = {"rule_id": "undeclared_network", "subject": "s", "agency": "a", "article": "第九条", "title_zh": "t", "title_en": "t"}
    ev.finding(1, severity="warning", status="open", at=T0, **common)
    ev.evaluate(T0)
    ev.finding(1, severity="critical", status="open", at=T0, **common)
    changes = ev.evaluate(T0 + timedelta(minutes=1))
    assert sorted((t.alert.labels["severity"], t.after) for t in changes) == [("critical", "firing"), ("critical", "pending"), ("warning", "resolved")]
    assert [(a.labels["severity"], a.status, a.lacking_data) for a in ev.alerts.values()] == [("warning", "resolved", False), ("critical", "firing", False)]


def test_after_a_restart_a_restored_firing_alert_without_data_stays_firing_lacking_data():
    first = Evaluator(load_rules(RULES).rules())
    first.observe("host_cpu", {"host": "h1"}, {"usage_percent": 95.0}, T0)
    first.evaluate(T0)
    first.evaluate(T0 + timedelta(minutes=2))
    restored = Evaluator(load_rules(RULES).rules(), alerts={fp: a for fp, a in first.alerts.items()})
    (change,) = restored.evaluate(T0 + timedelta(minutes=3))
    assert (change.after, change.lacking_data) == ("firing", True)


def test_counter_rate_survives_a_reset_and_rate_of_change_can_fall():
    rules = load_rules("""
groups:
  - name: g
    rules:
      - alert: InterfaceErrors
        kind: rate
        counter: true
        measurement: snmp_interface
        field: in_errors_total
        op: ">"
        threshold: 10
        labels: {severity: warning}
      - alert: QueueDraining
        kind: rate
        measurement: spool
        field: bytes
        op: "<"
        threshold: -1000
""").rules()
    ev = Evaluator(rules)
    port = {"device": "core-1", "if_name": "GE0/0/1"}
    ev.observe("snmp_interface", port, {"in_errors_total": 1000}, T0)
    ev.observe("snmp_interface", port, {"in_errors_total": 1300}, T0 + timedelta(seconds=10))  # 30/s
    (fired,) = [t for t in ev.evaluate(T0 + timedelta(seconds=10)) if t.after == "firing"]
    assert fired.alert.value == 30.0
    ev.observe("snmp_interface", port, {"in_errors_total": 20}, T0 + timedelta(seconds=20))  # a reboot: 20 in 10 s = 2/s
    (resolved,) = ev.evaluate(T0 + timedelta(seconds=20))
    assert (resolved.after, resolved.alert.value) == ("resolved", 30.0)
    ev.observe("spool", {"host": "h"}, {"bytes": 50_000}, T0)
    ev.observe("spool", {"host": "h"}, {"bytes": 10_000}, T0 + timedelta(seconds=10))  # -4000/s
    assert [(t.alert.labels["alertname"], t.after) for t in ev.evaluate(T0 + timedelta(seconds=30)) if t.after == "firing"] == [
        ("QueueDraining", "firing")]


def test_a_rule_failing_on_its_values_is_named_and_stops_no_other_rule():
    """A number too large for a float (JSON carries any integer) once stopped the whole cycle with OverflowError."""
    ev = Evaluator(load_rules(RULES).rules())
    ev.observe("host_cpu", {"host": "h1"}, {"usage_percent": 95.0}, T0)
    ev.evaluate(T0)
    ev.observe("host_cpu", {"host": "h2"}, {"usage_percent": 10**400}, T0 + timedelta(minutes=2))
    ev.observe("host_cpu", {"host": "h1"}, {"usage_percent": 96.0}, T0 + timedelta(minutes=2))
    ev.finding(7, rule_id="undeclared_network", severity="warning", subject="192.168.77.0/24", agency="health", status="open",
               article="第九条", title_zh="未申报的网络", title_en="Undeclared network", at=T0)
    transitions = ev.evaluate(T0 + timedelta(minutes=2))
    assert [(name, type(exc)) for name, exc in ev.failures] == [("HostCpuHigh", OverflowError)]
    assert ("UndeclaredNetwork", "pending") in [(t.alert.labels["alertname"], t.after) for t in transitions]  # the next rule ran
    assert states(ev)[("HostCpuHigh", "h1")][0] in ("pending", "firing")  # never resolved by the failure
    ev.observe("host_cpu", {"host": "h2"}, {"usage_percent": 50.0}, T0 + timedelta(minutes=3))
    ev.evaluate(T0 + timedelta(minutes=3))
    assert ev.failures == [] and states(ev)[("HostCpuHigh", "h1")] == ("firing", False)


def test_cached_fingerprints_follow_the_labels_of_the_rule_as_it_is_now():
    from alerting.evaluate import fingerprint

    ev = Evaluator(load_rules(RULES).rules())
    tags = {"host": "h1", "agency": "health"}
    for minute, value in enumerate([95.0, 50.0, 96.0]):  # pending, dropped, pending again: the cached fingerprint
        ev.observe("host_cpu", tags, {"usage_percent": value}, T0 + timedelta(minutes=minute))
        ev.evaluate(T0 + timedelta(minutes=minute))
    (alert,) = ev.alerts.values()
    assert alert.fingerprint == fingerprint(alert.labels)
    edited = load_rules(RULES.replace("labels: {severity: warning, category: host}", "labels: {severity: critical, category: host}"))
    ev.rules = edited.rules()  # the same rule name with other labels: its alerts get the new labels' fingerprint
    ev.observe("host_cpu", tags, {"usage_percent": 97.0}, T0 + timedelta(minutes=3))
    ev.evaluate(T0 + timedelta(minutes=3))
    (current,) = [a for a in ev.alerts.values() if a.labels["severity"] == "critical"]
    assert current.fingerprint == fingerprint(current.labels) != alert.fingerprint
    silent = Evaluator(load_rules(RULES).rules())
    silent.observe("host_system", {"host": "h2", "agency": "health"}, {"uptime": 1.0}, T0)
    silent.evaluate(T0 + timedelta(minutes=4))
    silent.evaluate(T0 + timedelta(minutes=5))  # the absence rule's fingerprint from the cache on the second cycle
    (absent,) = silent.alerts.values()
    assert absent.status == "firing" and absent.fingerprint == fingerprint(absent.labels)


def test_alert_status_is_a_str_enum_with_its_labels_in_one_place() -> None:
    assert [(s.value, s.text("zh"), s.text("en")) for s in AlertStatus] == [
        ("pending", "待触发", "pending"), ("firing", "触发中", "firing"), ("resolved", "已恢复", "resolved")]
    assert set(ALERT_STATUS_TEXT) == set(AlertStatus)
    # stored values, JSON and comparisons with text are unchanged
    assert (AlertStatus.FIRING == "firing", json.dumps({"s": AlertStatus.FIRING}), f"{AlertStatus.RESOLVED}") == (
        True, '{"s": "firing"}', "resolved")
    loaded = Alert("fp", {}, {}, "firing", T0)  # as the engine builds one from a stored row
    assert loaded.status is AlertStatus.FIRING
    with pytest.raises(ValueError, match="'fired'"):
        Alert("fp", {}, {}, "fired", T0)  # type: ignore[arg-type]


def test_series_are_bounded_least_recently_updated_first_and_a_firing_alert_is_never_resolved_by_it():
    """Agents decide their tags: past `max_series` the least recently updated tenth is forgotten (counted); the
    hot host keeps its series, and a firing alert whose series was forgotten stays firing, lacking data."""
    ev = Evaluator(load_rules(RULES).rules(), max_series=20)
    for minute in range(3):  # h-hot fires (above 90 for 2 minutes)
        ev.observe("host_cpu", {"host": "h-hot"}, {"usage_percent": 95.0}, T0 + timedelta(minutes=minute))
        ev.evaluate(T0 + timedelta(minutes=minute))
    assert states(ev)[("HostCpuHigh", "h-hot")] == ("firing", False)
    at = T0 + timedelta(minutes=3)
    for n in range(40):  # a flood of new series, each newer than h-hot's last point
        ev.observe("host_cpu", {"host": f"h{n}"}, {"usage_percent": 10.0}, at + timedelta(seconds=n))
        if n == 10:
            ev.observe("host_cpu", {"host": "h-hot"}, {"usage_percent": 95.0}, at + timedelta(seconds=n))
    assert ev.series_count <= 20
    assert ev.evicted_series == 41 - ev.series_count
    ev.evaluate(at + timedelta(minutes=1))
    assert states(ev)[("HostCpuHigh", "h-hot")][0] == "firing"  # forgotten or not: missing data never resolves it


def test_tag_names_of_forgotten_series_are_forgotten_with_them():
    """The tag names seen per measurement (whether a rule's labels override a tag) are bounded by the series kept:
    agents choose tag names, and a stream of new ones must not grow the evaluator past `max_series`."""
    ev = Evaluator(load_rules(RULES).rules(), max_series=20)
    for n in range(200):
        ev.observe("host_cpu", {"host": "h", f"tag{n}": "x"}, {"usage_percent": 10.0}, T0 + timedelta(seconds=n))
    assert ev.series_count <= 20
    names = ev._tag_names["host_cpu"]  # noqa: SLF001 - the bounded state itself is what is tested
    assert "tag0" not in names and "tag199" in names and len(names) <= ev.series_count + 1  # + "host"


def test_closed_findings_are_forgotten_once_their_alerts_resolved():
    ev = Evaluator(load_rules(RULES).rules())
    common = {"rule_id": "undeclared_network", "subject": "192.168.77.0/24", "agency": "health", "article": "第九条",
              "title_zh": "未申报的网络", "title_en": "Undeclared network"}
    ev.finding(7, severity="warning", status="open", at=T0, **common)
    ev.evaluate(T0)
    ev.finding(7, severity="warning", status="closed", at=T0 + timedelta(minutes=1), **common)
    (resolved,) = ev.evaluate(T0 + timedelta(minutes=1))
    assert (resolved.after, ev.forgotten_findings) == ("resolved", 1)
    assert ev.evaluate(T0 + timedelta(minutes=2)) == []  # nothing left of it: no re-resolution, no NoData


def _scenario_rules(variant: int):
    """Rules over a measurement large enough for the vectorized path (`big`) and a small one, every kind."""
    severity = ("warning", "critical")[variant % 2]
    return load_rules(f"""
groups:
  - name: g
    rules:
      - {{alert: Hot, measurement: big, field: v, op: ">", threshold: 0.8, clear: 0.6, for: 1m,
         labels: {{severity: {severity}, edit: "v{variant}"}}, annotations: {{summary_en: "{{host}} {{value:.2f}}"}}}}
      - {{alert: Cold, measurement: big, field: v, op: "<=", threshold: 0.1, for: 0s}}
      - {{alert: Ratio, measurement: big, field: v, divide_by: w, op: ">", threshold: 2, clear: 1.5, for: 30s}}
      - {{alert: Rising, kind: rate, measurement: small, field: v, op: ">", threshold: 0.01, for: 0s}}
      - {{alert: SilentHost, kind: absence, measurement: big, for: 2m, annotations: {{s: "{{host}} {{last_seen}}"}}}}
      - {{alert: SilentHostAgain, kind: absence, measurement: big, for: 3m}}
      - {{alert: SilentAgency, kind: absence, measurement: big, group_by: [agency], for: 2m}}
      - {{alert: Flagged, kind: finding, for: 0s}}
""").rules()


def _outcome(ev: Evaluator, transitions) -> tuple:
    alerts = sorted((a.fingerprint, sorted(a.labels.items()), sorted(a.annotations.items()), a.status, a.active_since, a.fired_at,
                     a.resolved_at, a.value, a.lacking_data) for a in ev.alerts.values())  # fmt: skip
    return [(t.alert.fingerprint, t.before, t.after, t.lacking_data) for t in transitions], alerts, [r for r, _ in ev.failures]


@pytest.mark.parametrize("seed", range(12))
def test_the_evaluators_caches_never_change_a_result(seed):
    """The evaluator keeps per-series order, fingerprint indexes and NoData fingerprints across cycles; one whose caches
    are dropped before every cycle (so it looks at every series) must reach exactly the same alerts and transitions,
    through series that go silent, come back, are forgotten (max_series), rules that are edited, and a restart."""
    import random

    rng = random.Random(seed)
    rules = _scenario_rules(0)
    cached, fresh = (Evaluator(list(rules), nodata_after=timedelta(minutes=2), max_series=110) for _ in range(2))
    now = T0
    for cycle in range(12):
        for measurement, hosts in (("big", 90), ("small", 8)):
            for h in range(hosts + cycle * 3):  # new series every cycle: the per-measurement order is rebuilt
                if rng.random() < 0.2:
                    continue  # silent this cycle
                fields = {"v": rng.choice([rng.random(), rng.random(), "text", True, 7])} if rng.random() < 0.95 else {}
                fields["w"] = rng.choice([0.3, 0.5, 0, 1.0])
                for ev in (cached, fresh):
                    ev.observe(measurement, {"host": f"h{h}", "agency": f"a{h % 4}"}, fields, now)
        if rng.random() < 0.3:
            finding_id, severity, status = rng.randint(1, 3), rng.choice(["info", "warning", "critical"]), rng.choice(["open", "closed"])
            for ev in (cached, fresh):
                ev.finding(finding_id, rule_id="r", severity=severity, subject="s", agency="a", status=status, article="a",
                           title_zh="t", title_en="t", at=now)  # fmt: skip
        fresh.drop_caches()
        assert _outcome(cached, cached.evaluate(now)) == _outcome(fresh, fresh.evaluate(now)), cycle
        if cycle == 5:  # a rule edited under the same name: other labels, other severity
            rules = _scenario_rules(1)
            cached.rules, fresh.rules = list(rules), list(rules)
        if cycle == 8:  # a restart: open alerts come back, series and caches do not
            kept = {fp: a for fp, a in cached.alerts.items() if a.status != "resolved"}
            cached, fresh = (Evaluator(list(rules), nodata_after=timedelta(minutes=2), max_series=110,
                                       alerts={fp: Alert(**vars(a)) for fp, a in kept.items()}) for _ in range(2))  # fmt: skip
        now += timedelta(seconds=rng.choice([30, 60, 150]))
    assert cached.evicted_series > 0  # the bound was reached: forgotten series were part of the run


def test_a_series_added_or_forgotten_after_a_cycle_is_in_the_next_cycles_columns():
    rules = load_rules("groups: [{name: g, rules: [{alert: Hot, measurement: m, field: v, op: '>', threshold: 5}]}]").rules()
    ev = Evaluator(rules, max_series=100)
    for h in range(99):  # enough series for the vectorized comparison
        ev.observe("m", {"host": f"h{h}"}, {"v": 1.0}, T0)
    assert ev.evaluate(T0) == []
    ev.observe("m", {"host": "new"}, {"v": 9.0}, T0 + timedelta(minutes=1))  # added after the order was built
    assert [(t.alert.labels["host"], t.after) for t in ev.evaluate(T0 + timedelta(minutes=1))] == [("new", "pending"), ("new", "firing")]
    ev.observe("m", {"host": "newer"}, {"v": 9.5}, T0 + timedelta(minutes=2))  # past max_series: the oldest tenth goes
    assert ev.evicted_series == 10
    changes = ev.evaluate(T0 + timedelta(minutes=2))
    assert [(t.alert.labels["host"], t.after) for t in changes] == [("newer", "pending"), ("newer", "firing")]
    assert states(ev)[("Hot", "new")] == ("firing", False)


def test_absence_rules_sharing_a_measurement_each_keep_their_own_grouping_and_duration():
    ev = Evaluator(_scenario_rules(0))
    for h in range(4):
        ev.observe("big", {"host": f"h{h}", "agency": "a0" if h < 2 else "a1"}, {"v": 0.5}, T0)
    for h in (1, 2, 3):  # h0 stops; agency a0 still has h1
        ev.observe("big", {"host": f"h{h}", "agency": "a0" if h < 2 else "a1"}, {"v": 0.5}, T0 + timedelta(minutes=2))
    ev.evaluate(T0 + timedelta(minutes=2, seconds=30))
    firing = sorted((a.labels["alertname"], a.labels.get("host", a.labels.get("agency"))) for a in ev.alerts.values()
                    if a.status == "firing")  # fmt: skip
    assert firing == [("SilentHost", "h0")]  # SilentHostAgain needs 3 minutes; agency a0 reported through h1
    ev.evaluate(T0 + timedelta(minutes=5))  # now everyone is silent
    firing = sorted((a.labels["alertname"], a.labels.get("host", a.labels.get("agency"))) for a in ev.alerts.values()
                    if a.status == "firing")  # fmt: skip
    assert firing == [("SilentAgency", "a0"), ("SilentAgency", "a1"), ("SilentHost", "h0"), ("SilentHost", "h1"), ("SilentHost", "h2"),
                      ("SilentHost", "h3"), ("SilentHostAgain", "h0"), ("SilentHostAgain", "h1"), ("SilentHostAgain", "h2"),
                      ("SilentHostAgain", "h3")]  # fmt: skip


def test_a_series_forgotten_while_another_measurement_grows_leaves_that_measurements_columns():
    """Eviction is triggered by whichever series arrives; the evaluator's cached order of every measurement goes with it."""
    rules = load_rules("groups: [{name: g, rules: [{alert: Hot, measurement: m, field: v, op: '>', threshold: 5}]}]").rules()
    ev = Evaluator(rules, max_series=120)
    for h in range(80):
        ev.observe("m", {"host": f"h{h}"}, {"v": 1.0}, T0)
    assert ev.evaluate(T0) == []  # the order of m's series is now cached
    ev.observe("m", {"host": "h0"}, {"v": 9.0}, T0)  # h0 turns hot, still among the oldest series
    for n in range(41):  # another measurement grows past the bound: the oldest tenth (m's h0..h11) is forgotten
        ev.observe("n", {"host": f"x{n}"}, {"v": 1.0}, T0 + timedelta(minutes=1))
    assert ev.evicted_series == 12 and ev.series_count == 109
    assert ev.evaluate(T0 + timedelta(minutes=1)) == []  # a forgotten series raises nothing
    ev.observe("m", {"host": "h79"}, {"v": 9.0}, T0 + timedelta(minutes=2))
    assert [(t.alert.labels["host"], t.after) for t in ev.evaluate(T0 + timedelta(minutes=2))] == [("h79", "pending"), ("h79", "firing")]


def test_a_restored_alert_whose_series_never_returns_stays_lacking_data_and_is_found_when_it_does(monkeypatch):
    """After a restart, an open alert no index names is looked for under the series its labels name; while that
    series stays away nothing else is fingerprinted, and when it comes back it takes its alert back."""
    rules = load_rules("groups: [{name: g, rules: [{alert: Hot, measurement: m, field: v, op: '>', threshold: 5, clear: 4}]}]").rules()
    first = Evaluator(rules)
    first.observe("m", {"host": "gone"}, {"v": 9.0}, T0)
    first.evaluate(T0)
    (alert,) = first.alerts.values()
    assert alert.status == "firing"
    ev = Evaluator(rules, alerts={alert.fingerprint: Alert(**vars(alert))})
    import alerting.evaluate

    computed = []
    monkeypatch.setattr(alerting.evaluate, "fingerprint", lambda labels: computed.append(1) or fingerprint(labels))
    for minute in range(1, 4):
        computed.clear()
        for h in range(100 + minute):  # one new series each minute
            ev.observe("m", {"host": f"h{h}"}, {"v": 1.0}, T0 + timedelta(minutes=minute))
        changes = ev.evaluate(T0 + timedelta(minutes=minute))
        assert [(t.before, t.after, t.lacking_data) for t in changes] == ([("firing", "firing", True)] if minute == 1 else [])
        assert computed == []  # the series its labels name is not there: no other series is fingerprinted
    ev.observe("m", {"host": "gone"}, {"v": 4.5}, T0 + timedelta(minutes=4))  # back, between clear and threshold
    (back,) = ev.evaluate(T0 + timedelta(minutes=4))
    assert (back.alert.fingerprint, back.after, back.lacking_data) == (alert.fingerprint, "firing", False)
    ev.observe("m", {"host": "gone"}, {"v": 3.0}, T0 + timedelta(minutes=5))
    (resolved,) = ev.evaluate(T0 + timedelta(minutes=5))
    assert (resolved.alert.fingerprint, resolved.after) == (alert.fingerprint, "resolved")


def test_a_restored_alert_whose_series_still_reports_is_found_without_fingerprinting_every_series(monkeypatch):
    rules = load_rules("groups: [{name: g, rules: [{alert: Hot, measurement: m, field: v, op: '>', threshold: 5, clear: 4}]}]").rules()
    first = Evaluator(rules)
    first.observe("m", {"host": "h7", "agency": "a"}, {"v": 9.0}, T0)
    first.evaluate(T0)
    (alert,) = first.alerts.values()
    ev = Evaluator(rules, alerts={alert.fingerprint: Alert(**vars(alert))})
    for h in range(100):
        ev.observe("m", {"host": f"h{h}", "agency": "a"}, {"v": 4.5 if h == 7 else 1.0}, T0 + timedelta(minutes=1))
    import alerting.evaluate

    computed = []
    monkeypatch.setattr(alerting.evaluate, "fingerprint", lambda labels: computed.append(1) or fingerprint(labels))
    assert ev.evaluate(T0 + timedelta(minutes=1)) == []  # 4.5: still firing (clear is 4), its data is there
    assert len(computed) == 1  # the series its labels name, checked against its fingerprint
    ev.observe("m", {"host": "h7", "agency": "a"}, {"v": 3.0}, T0 + timedelta(minutes=2))
    (resolved,) = ev.evaluate(T0 + timedelta(minutes=2))
    assert (resolved.alert.fingerprint, resolved.after) == (alert.fingerprint, "resolved")


def test_a_restored_alert_of_a_rule_whose_labels_override_a_tag_is_found_among_every_series(monkeypatch):
    """With a rule label named like a tag, an alert's labels no longer name its series (several series may share the
    alert): after a restart every series is fingerprinted once to find it, then only new series."""
    text = "groups: [{name: g, rules: [{alert: Hot, measurement: m, field: v, op: '>', threshold: 5, clear: 4, labels: {host: fleet}}]}]"
    rules = load_rules(text).rules()
    first = Evaluator(rules)
    first.observe("m", {"host": "h7"}, {"v": 9.0}, T0)
    first.evaluate(T0)
    (alert,) = first.alerts.values()
    assert alert.labels["host"] == "fleet"
    ev = Evaluator(rules, alerts={alert.fingerprint: Alert(**vars(alert))})
    import alerting.evaluate

    computed = []
    monkeypatch.setattr(alerting.evaluate, "fingerprint", lambda labels: computed.append(1) or fingerprint(labels))
    for h in range(100):
        ev.observe("m", {"host": f"h{h}"}, {"v": 4.5 if h == 7 else 1.0}, T0 + timedelta(minutes=1))
    assert ev.evaluate(T0 + timedelta(minutes=1)) == []  # found through h7 (4.5: still firing, with data)
    assert len(computed) == 100
    ev.observe("m", {"host": "h7"}, {"v": 3.0}, T0 + timedelta(minutes=2))
    (resolved,) = ev.evaluate(T0 + timedelta(minutes=2))
    assert (resolved.alert.fingerprint, resolved.after) == (alert.fingerprint, "resolved")
