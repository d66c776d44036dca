"""The console's presentation (server/ui/format.py): times in the configured zone to the second, numbers with
units, status words translated; and every console page, seeded with a host, a finding, a firing alert, an
incident, a silence and a declaration request, shows no raw UTC timestamp and no untranslated status word."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from server.ui import format as fmt
from tests.server.conftest import Clock, enroll, make_agency

PASSWORD = "correct-horse-battery"
RAW_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+|[+-]\d{2}:\d{2}|Z)")
RAW_WORD = re.compile(r"\b(" + "|".join(sorted(fmt.RAW_STATUS_WORDS)) + r")\b")


def test_times_are_shown_in_the_zone_to_the_second():
    at = datetime(2026, 12, 4, 7, 11, 59, 977815, tzinfo=UTC)
    assert fmt.format_time(at, ZoneInfo("Asia/Shanghai")) == "2026-12-04 15:11:59"
    assert fmt.format_time(at.replace(tzinfo=None)) == "2026-12-04 15:11:59"  # naive = UTC, default zone
    assert fmt.format_time("2026-12-04T07:11:59.977815+00:00", ZoneInfo("Europe/Berlin")) == "2026-12-04 08:11:59"
    assert fmt.format_time(None) == "—" and fmt.format_time("not a time") == "not a time"
    assert fmt.zone("No/Such_Zone") == ZoneInfo("Asia/Shanghai")


def test_numbers_get_units_and_status_words_are_translated():
    assert fmt.format_bytes(512) == "512 字节" and fmt.format_bytes(1536, "en") == "1.5 KiB"
    assert fmt.format_bytes(5 * 1024**3) == "5.0 GiB"
    assert fmt.format_bps(12_345_678) == "12.3 兆比特/秒" and fmt.format_bps(950, "en") == "950 bit/s"
    assert fmt.format_percent(0.153) == "15.3%" and fmt.format_percent(0.5) == "50%" and fmt.format_percent(None) == "—"
    assert fmt.format_number(0.015242) == "0.0152" and fmt.format_number(1234567.0) == "1,234,567"
    assert fmt.format_number(float("nan")) == "—"
    assert fmt.format_seconds(5.0) == "5 秒" and fmt.format_seconds(125, "en") == "2 min 5 s"
    assert fmt.format_seconds(0.0201) == "20 毫秒" and fmt.format_seconds(0.0042, "en") == "4.2 ms"
    assert fmt.status_text("open", "finding") == "未处置" and fmt.status_text("open", "incident") == "已登记"
    assert fmt.status_text("firing", "alert") == "触发中" and fmt.status_text("sent", "notification", "en") == "delivered"
    for kind, words in fmt.STATUS_TEXT["zh"].items():  # every Chinese status text is Chinese
        assert all(not RAW_WORD.search(text) for text in words.values()), kind


def _visible_text(page: str) -> str:
    """The text a reader sees: no tags, attributes, styles."""
    page = re.sub(r"<style.*?</style>", " ", page, flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_page_shows_a_raw_utc_time_or_an_untranslated_status_word(client: TestClient, admin, clock: Clock):
    clock.now = clock.now.replace(microsecond=977815)  # what the issue saw: microseconds, +00:00
    health = make_agency(client, admin, "health")
    agent = enroll(client, admin, health, "his-db-1")
    observation = {"kind": "interface_address", "subject": "192.168.77.5/24", "source": "netstate", "observed_at": clock.now.isoformat(),
                   "attributes": {"interface": "eth1", "network": "192.168.77.0/24", "scope": "global"}}
    samples = [{"measurement": "snmp_device", "tags": {"device": "core-1"}, "fields": {"up": 0, "poll_duration_seconds": 5.0,
                "last_error": "timeout"}, "timestamp": clock.now.isoformat()}]  # fmt: skip
    response = client.post("/api/v1/ingest", headers=agent.headers, json={"batch_id": "b1", "observations": [observation], "samples": samples})
    assert response.status_code == 200, response.text
    client.app.state.ingest.drain()
    client.app.state.alerting.cycle()
    (alert,) = client.get("/api/v1/alerts", params={"status": "firing"}, headers=admin).json()
    assert client.post("/api/v1/incidents", headers=admin, json={"alert": alert["fingerprint"]}).status_code in (200, 201)
    silence = client.post("/api/v1/silences", headers=admin, json={"matchers": ["host=his-db-1"], "duration_minutes": 30, "comment": "变更"})
    assert silence.status_code in (200, 201), silence.text
    client.post("/api/v1/duties", headers=admin, json={"agency": "health", "kind": "emergency_drill"})
    client.post("/api/v1/users", headers=admin, json={"username": "boss", "role": "admin", "password": PASSWORD})
    assert client.post("/ui/login", data={"username": "boss", "password": PASSWORD}, follow_redirects=False).status_code == 303
    (finding,) = client.get("/api/v1/findings", headers=admin).json()
    pages = ["/ui", "/ui/hosts", f"/ui/hosts/{agent.host_id}", "/ui/devices", "/ui/findings", f"/ui/findings/{finding['id']}",
             "/ui/alerts", "/ui/incidents", "/ui/scorecard", "/ui/requests"]
    local = clock.now.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
    seen_local = False
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        text = _visible_text(response.text)
        assert not RAW_TIME.search(text), (path, RAW_TIME.search(text).group(0))
        assert not RAW_WORD.search(text), (path, RAW_WORD.search(text).group(0))
        assert "built-in method" not in text and "Undefined" not in text, path  # a text key that is a dict method
        seen_local |= local in text
    assert seen_local  # the seeded time is shown, in Beijing time to the second
    assert "5 秒" in _visible_text(client.get("/ui/devices").text)
    assert "未处置" in _visible_text(client.get("/ui/findings").text)
    assert "触发中" in _visible_text(client.get("/ui/alerts").text)
    client.get("/ui/lang/en")  # English on request: the same words in English, the same zone
    english = _visible_text(client.get("/ui/alerts").text)
    assert "firing" in english and "Until" in english and not RAW_TIME.search(english)
    assert "open" in _visible_text(client.get("/ui/findings").text) and "5 s" in _visible_text(client.get("/ui/devices").text)
