"""Routing tree, silences, inhibition and maintenance windows (pure), with Alertmanager's matcher semantics."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from alerting.route import Inhibition, MaintenanceWindow, Route, Silence, inhibited, parse_matcher, routes_for

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # a Saturday, 20:00 in Asia/Shanghai
TREE = Route("noc", routes=(
    Route("security", (parse_matcher("category=compliance"),), continue_=True),
    Route("health-oncall", (parse_matcher('agency=~"health|hospital-.*"'), parse_matcher("severity=critical"))),
    Route("police-oncall", (parse_matcher("agency=police"),)),
))  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"agency": "health", "severity": "critical"}, ["health-oncall"]),
        ({"agency": "hospital-3", "severity": "critical"}, ["health-oncall"]),
        ({"agency": "health", "severity": "warning"}, ["noc"]),
        ({"agency": "police", "category": "compliance"}, ["security", "police-oncall"]),  # continue: on to the next match
        ({"agency": "transport"}, ["noc"]),
    ],
)
def test_routing_tree(labels, receivers):
    assert [r.receiver for r in routes_for(TREE, labels)] == receivers


def test_matchers_parse_and_refuse_bad_ones():
    assert parse_matcher('host!~"web-.*"').matches({"host": "db-1"})
    assert not parse_matcher("host!=db-1").matches({"host": "db-1"})
    for bad in ("host", "=x", 'host=~"("'):
        with pytest.raises(ValueError):
            parse_matcher(bad)


def test_silence_mutes_matching_alerts_only_while_active():
    silence = Silence(1, (parse_matcher("host=web-1"),), NOW, NOW + timedelta(hours=1))
    assert silence.mutes({"host": "web-1"}, NOW + timedelta(minutes=30))
    assert not silence.mutes({"host": "web-2"}, NOW + timedelta(minutes=30))
    assert not silence.mutes({"host": "web-1"}, NOW + timedelta(hours=1))


def test_a_down_site_inhibits_what_sits_behind_it():
    rule = Inhibition((parse_matcher("alertname=SiteDown"),), (parse_matcher("severity=~warning|critical"),), ("site",))
    firing = [{"alertname": "SiteDown", "site": "health-room", "severity": "critical"}]
    assert inhibited({"alertname": "ProbeDown", "site": "health-room", "severity": "critical"}, firing, [rule])
    assert not inhibited({"alertname": "ProbeDown", "site": "platform-dc", "severity": "critical"}, firing, [rule])
    assert not inhibited(firing[0], firing, [rule])  # the source does not inhibit itself


def test_recurring_maintenance_windows_in_local_time():
    weekly = MaintenanceWindow("周六变更窗口", (parse_matcher("agency=health"),), "weekly", time(19, 0), timedelta(hours=3), days=(5,))
    assert weekly.mutes({"agency": "health"}, NOW)  # Saturday 20:00 in Shanghai
    assert not weekly.mutes({"agency": "police"}, NOW)
    assert not weekly.active(NOW + timedelta(days=1))
    overnight = MaintenanceWindow("nightly", (), "daily", time(23, 0), timedelta(hours=2))
    assert overnight.active(datetime(2026, 11, 28, 16, 30, tzinfo=UTC))  # 00:30 local, the window began the day before
    monthly = MaintenanceWindow("month-end", (), "monthly", time(1, 0), timedelta(hours=1), days=(1,))
    assert monthly.active(datetime(2026, 11, 30, 17, 30, tzinfo=UTC)) and not monthly.active(NOW)
