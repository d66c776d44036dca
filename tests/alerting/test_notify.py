"""Every receiver kind, built from `ReceiverSettings` as the server builds it, delivered to a real server on
loopback: HTTP (webhook, DingTalk with its signature checked, WeCom), SMTP (aiosmtpd) and syslog RFC 5424 over UDP
and TCP, on their default ports too. The `alertmanager` kind against a real Alertmanager is in
tests/alerting/test_alertmanager.py."""

from __future__ import annotations

import base64
import email.header
import hashlib
import hmac
import re
import urllib.parse
from datetime import UTC, datetime

import pytest

from alerting.channel import ReceiverBase
from alerting.notify import AlertView, DeliveryError, PermanentDeliveryError, build, deliver
from alerting.receivers import parse_receiver
from tests.alerting.receivers import http_receiver, smtp_receiver, syslog_receiver
from tests.services import wait_until


def receiver(**fields: object) -> ReceiverBase:
    """A receiver exactly as the configuration file gives it (validated by its channel's model, defaults applied)."""
    return parse_receiver({"name": "r", **fields})


AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ALERTS = [
    AlertView("a1b2c3d4e5f60718", "firing", {"alertname": "HostMemoryLow", "severity": "critical", "agency": "health",
                                             "host": "his-db-1", "article": "第二十六条第（五）项"},
              {"summary_zh": "主机 his-db-1 可用内存仅 4%", "summary_en": "Host his-db-1 has only 4% memory available"}, AT, None),
]


def test_webhook_payload_is_alertmanagers_version_4_with_our_texts():
    with http_receiver() as server:
        deliver(receiver(kind="webhook", url=f"{server.url}/hook"),
                build("webhook", "ops", {"agency": "health"}, ALERTS, external_url="https://egovmon.example/"))
    ((path, body),) = server.posts
    assert (path, body["version"], body["receiver"], body["status"]) == ("/hook", "4", "ops", "firing")
    assert body["groupLabels"] == {"agency": "health"} and body["commonLabels"]["agency"] == "health"
    alert = body["alerts"][0]
    assert alert["labels"]["alertname"] == "HostMemoryLow" and alert["fingerprint"] == "a1b2c3d4e5f60718"
    assert alert["endsAt"] == "0001-01-01T00:00:00+00:00" and alert["generatorURL"] == "https://egovmon.example/ui/alerts#a1b2c3d4e5f60718"
    assert alert["summary_zh"] == "主机 his-db-1 可用内存仅 4%"
    assert body["text"] == "[告警][严重] 主机 his-db-1 可用内存仅 4% [第二十六条第（五）项]"


def test_alertmanager_body_is_a_list_of_postable_alerts():
    resolved = AlertView("a1b2c3d4e5f60718", "resolved", {**ALERTS[0].labels, "bad-name": "x", "empty": ""},
                         ALERTS[0].annotations, AT, datetime(2026, 11, 28, 12, 30, tzinfo=UTC))
    firing, ended = build("alertmanager", "am", {}, [ALERTS[0], resolved], external_url="https://egovmon.example")["alerts"]
    assert firing == {
        "labels": {"alertname": "HostMemoryLow", "severity": "critical", "agency": "health", "host": "his-db-1",
                   "article": "第二十六条第（五）项"},
        "annotations": {"summary_zh": "主机 his-db-1 可用内存仅 4%", "summary_en": "Host his-db-1 has only 4% memory available",
                        "summary": "主机 his-db-1 可用内存仅 4%"},
        "startsAt": "2026-11-28T12:00:00+00:00", "generatorURL": "https://egovmon.example/ui/alerts#a1b2c3d4e5f60718",
    }  # fmt: skip
    assert ended["endsAt"] == "2026-11-28T12:30:00+00:00" and set(ended["labels"]) == set(firing["labels"])


@pytest.mark.parametrize(("status", "error"), [(400, PermanentDeliveryError), (404, PermanentDeliveryError), (408, DeliveryError),
                                               (429, DeliveryError), (500, DeliveryError), (503, DeliveryError)])
def test_a_4xx_other_than_408_and_429_is_a_permanent_refusal(status, error):
    with http_receiver(status=status, answer={"error": "no"}) as server:
        with pytest.raises(DeliveryError) as raised:
            deliver(receiver(kind="webhook", url=server.url), build("webhook", "ops", {}, ALERTS))
    assert type(raised.value) is error and str(status) in str(raised.value)


def test_an_error_never_shows_the_robots_access_token():
    with http_receiver(status=403, answer={"errcode": 300001}) as server:
        with pytest.raises(PermanentDeliveryError) as raised:
            deliver(receiver(kind="wecom", url=f"http://user:pw@127.0.0.1:{server.port}/cgi-bin/webhook/send?key=SECRET-KEY"),
                    build("wecom", "wecom", {}, ALERTS))
    assert f"wecom http://127.0.0.1:{server.port}/cgi-bin/webhook/send answered 403" in str(raised.value)
    assert "SECRET-KEY" not in str(raised.value) and "pw" not in str(raised.value)


def test_an_unreachable_receiver_is_a_delivery_error_not_another_exception():
    with pytest.raises(DeliveryError) as raised:
        deliver(receiver(kind="smtp", host="127.0.0.1", port=1, sender="a@gov.example", to=["b@gov.example"]), build("smtp", "m", {}, ALERTS))
    assert type(raised.value) is DeliveryError and "ConnectionRefusedError" in str(raised.value)


def test_dingtalk_robot_gets_a_valid_signature_and_wecom_markdown():
    secret = "SECtest-secret-1234567890"
    with http_receiver() as server:
        deliver(receiver(kind="dingtalk", url=f"{server.url}/robot/send?access_token=abc", secret=secret),
                build("dingtalk", "ding", {}, ALERTS))
        deliver(receiver(kind="wecom", url=f"{server.url}/cgi-bin/webhook/send?key=k"), build("wecom", "wecom", {}, ALERTS, language="en"))
    (path, body), (wecom_path, wecom) = server.posts
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    expected = base64.b64encode(hmac.new(secret.encode(), f"{query['timestamp'][0]}\n{secret}".encode(), hashlib.sha256).digest()).decode()
    assert query["access_token"] == ["abc"] and query["sign"] == [expected]
    assert body["msgtype"] == "markdown" and "主机 his-db-1 可用内存仅 4%" in body["markdown"]["text"]
    assert wecom_path.startswith("/cgi-bin/webhook/send") and "[FIRING][critical] Host his-db-1" in wecom["markdown"]["content"]


def test_a_robot_that_refuses_is_a_delivery_error():
    with http_receiver(answer={"errcode": 310000, "errmsg": "sign not match"}) as server:
        with pytest.raises(DeliveryError, match="310000"):
            deliver(receiver(kind="dingtalk", url=f"{server.url}/robot/send", secret="x"), build("dingtalk", "ding", {}, ALERTS))


@pytest.mark.parametrize("port", [0, 25], ids=["given-port", "default-port-25"])
def test_mail_reaches_a_real_smtp_server_in_chinese(port):
    with smtp_receiver(port) as (port, messages):
        settings = {"port": port} if port != 25 else {}  # without a port: SMTP's 25
        deliver(receiver(kind="smtp", host="127.0.0.1", sender="egovmon@gov.example", to=["soc@gov.example"], **settings),
                build("smtp", "mail", {}, ALERTS))
        wait_until(lambda: messages, 10, "the mail")
    mail = messages[0]
    assert (mail["From"], mail["To"]) == ("egovmon@gov.example", "soc@gov.example")
    subject = str(email.header.make_header(email.header.decode_header(mail["Subject"])))
    assert subject.replace("\r\n ", "").startswith("【egovmon】[告警][严重] 主机 his-db-1")
    assert "可用内存仅 4%" in mail.get_payload(decode=True).decode("utf-8")


RFC5424 = re.compile(rb'^<(\d+)>1 (\S+) (\S+) egovmon - (\S+) \[egovmon@32473 ([^\]]*)\] \xef\xbb\xbf(.*)$', re.S)


@pytest.mark.parametrize(("protocol", "port"), [("udp", 0), ("tcp", 0), ("udp", 514)], ids=["udp", "tcp", "udp-default-port-514"])
def test_syslog_rfc5424_over_udp_and_tcp(protocol, port):
    with syslog_receiver(protocol, port) as (port, messages):
        settings = {"port": port} if port != 514 else {}  # without a port: syslog's 514
        deliver(receiver(kind="syslog", host="127.0.0.1", protocol=protocol, hostname="egovmon-1", **settings),
                build("syslog", "siem", {}, ALERTS))
        wait_until(lambda: messages, 10, "the syslog message")
    match = RFC5424.match(messages[0])
    assert match is not None, messages[0]
    pri, stamp, host, msgid, params, text = match.groups()
    assert (int(pri), host, msgid) == (13 * 8 + 2, b"egovmon-1", b"ALERT")  # facility log audit, severity critical
    assert datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")).tzinfo is not None
    assert b'alertname="HostMemoryLow"' in params and b'agency="health"' in params
    assert text.decode() == "主机 his-db-1 可用内存仅 4%"
