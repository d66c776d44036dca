"""Every receiver kind delivered to a real server on loopback: HTTP (webhook, Alertmanager, DingTalk with its
signature checked, WeCom), SMTP (aiosmtpd) and syslog RFC 5424 over UDP and TCP."""

from __future__ import annotations

import base64
import email.header
import hashlib
import hmac
import re
import urllib.parse
from datetime import UTC, datetime

import pytest

from alerting.notify import AlertView, DeliveryError, build, deliver
from tests.alerting.receivers import http_receiver, smtp_receiver, syslog_receiver
from tests.services import wait_until

AT = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
ALERTS = [
    AlertView("a1b2c3d4e5f60718", "firing", {"alertname": "HostMemoryLow", "severity": "critical", "agency": "health",
                                             "host": "his-db-1", "article": "第二十六条第（五）项"},
              {"summary_zh": "主机 his-db-1 可用内存仅 4%", "summary_en": "Host his-db-1 has only 4% memory available"}, AT, None),
]


def test_webhook_and_alertmanager_payloads_reach_a_real_http_server():
    with http_receiver() as receiver:
        deliver("webhook", {"url": f"{receiver.url}/hook"}, build("webhook", "ops", {"agency": "health"}, ALERTS))
        deliver("alertmanager", {"url": f"{receiver.url}/am"}, build("alertmanager", "ops", {"agency": "health"}, ALERTS))
    (path, ours), (am_path, am) = receiver.posts
    assert (path, ours["status"], ours["alerts"][0]["summary_zh"]) == ("/hook", "firing", "主机 his-db-1 可用内存仅 4%")
    assert ours["text"] == "[告警][严重] 主机 his-db-1 可用内存仅 4% [第二十六条第（五）项]"
    assert am_path == "/am" and am["version"] == "4" and am["receiver"] == "ops"
    assert am["alerts"][0]["labels"]["alertname"] == "HostMemoryLow" and am["alerts"][0]["fingerprint"] == "a1b2c3d4e5f60718"
    assert am["commonLabels"]["agency"] == "health" and am["groupLabels"] == {"agency": "health"}


def test_dingtalk_robot_gets_a_valid_signature_and_wecom_markdown():
    secret = "SECtest-secret-1234567890"
    with http_receiver() as receiver:
        deliver("dingtalk", {"url": f"{receiver.url}/robot/send?access_token=abc", "secret": secret},
                build("dingtalk", "ding", {}, ALERTS))
        deliver("wecom", {"url": f"{receiver.url}/cgi-bin/webhook/send?key=k"}, build("wecom", "wecom", {}, ALERTS, language="en"))
    (path, body), (wecom_path, wecom) = receiver.posts
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
    expected = base64.b64encode(hmac.new(secret.encode(), f"{query['timestamp'][0]}\n{secret}".encode(), hashlib.sha256).digest()).decode()
    assert query["access_token"] == ["abc"] and query["sign"] == [expected]
    assert body["msgtype"] == "markdown" and "主机 his-db-1 可用内存仅 4%" in body["markdown"]["text"]
    assert wecom_path.startswith("/cgi-bin/webhook/send") and "[FIRING][critical] Host his-db-1" in wecom["markdown"]["content"]


def test_a_robot_that_refuses_is_a_delivery_error():
    with http_receiver(answer={"errcode": 310000, "errmsg": "sign not match"}) as receiver:
        with pytest.raises(DeliveryError, match="310000"):
            deliver("dingtalk", {"url": f"{receiver.url}/robot/send", "secret": "x"}, build("dingtalk", "ding", {}, ALERTS))


def test_mail_reaches_a_real_smtp_server_in_chinese():
    with smtp_receiver() as (port, messages):
        deliver("smtp", {"host": "127.0.0.1", "port": port, "sender": "egovmon@gov.example", "to": ["soc@gov.example"]},
                build("smtp", "mail", {}, ALERTS))
        wait_until(lambda: messages, 10, "the mail")
    mail = messages[0]
    assert (mail["From"], mail["To"]) == ("egovmon@gov.example", "soc@gov.example")
    subject = str(email.header.make_header(email.header.decode_header(mail["Subject"])))
    assert subject.replace("\r\n ", "").startswith("【egovmon】[告警][严重] 主机 his-db-1")
    assert "可用内存仅 4%" in mail.get_payload(decode=True).decode("utf-8")


RFC5424 = re.compile(rb'^<(\d+)>1 (\S+) (\S+) egovmon - (\S+) \[egovmon@32473 ([^\]]*)\] \xef\xbb\xbf(.*)$', re.S)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
def test_syslog_rfc5424_over_udp_and_tcp(protocol):
    with syslog_receiver(protocol) as (port, messages):
        deliver("syslog", {"host": "127.0.0.1", "port": port, "protocol": protocol, "hostname": "egovmon-1"},
                build("syslog", "siem", {}, ALERTS))
        wait_until(lambda: messages, 10, "the syslog message")
    match = RFC5424.match(messages[0])
    assert match is not None, messages[0]
    pri, stamp, host, msgid, params, text = match.groups()
    assert (int(pri), host, msgid) == (13 * 8 + 2, b"egovmon-1", b"ALERT")  # facility log audit, severity critical
    assert datetime.fromisoformat(stamp.decode().replace("Z", "+00:00")).tzinfo is not None
    assert b'alertname="HostMemoryLow"' in params and b'agency="health"' in params
    assert text.decode() == "主机 his-db-1 可用内存仅 4%"
