"""The catalogue of notification channels (alerting/channels/): every module declares one channel, the
configuration schema is their discriminated union on `kind`, receivers written before the catalogue still load
with their values, and each receiver model keeps only its own keys."""

from __future__ import annotations

import pkgutil
import typing

import pytest
from pydantic import ValidationError

import alerting.channels
from alerting.channel import Channel
from alerting.channels import catalogue
from alerting.notify import PermanentDeliveryError, build, deliver
from alerting.receivers import parse_receiver
from server.settings import Settings

# Receivers as configurations gave them before each channel had its own model (one flat model for every kind).
OLD_STYLE_RECEIVERS = [
    {"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/hook", "language": "en"},
    {"name": "am", "kind": "alertmanager", "url": "http://127.0.0.1:9093", "resend_seconds": 30},
    {"name": "ding", "kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=t", "secret": "SEC1"},
    {"name": "wx", "kind": "wecom", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"},
    {"name": "mail", "kind": "smtp", "host": "mail.gov.example", "port": 587, "sender": "egovmon@gov.example",
     "to": ["soc@gov.example"], "starttls": True, "username": "egovmon", "password": "pw-of-mail"},
    {"name": "siem", "kind": "syslog", "host": "10.0.0.5", "port": 6514, "protocol": "tcp", "hostname": "egovmon-1"},
]


def test_every_module_of_the_package_is_a_channel_of_its_own_name() -> None:
    modules = sorted(info.name for info in pkgutil.iter_modules(alerting.channels.__path__))
    assert list(catalogue()) == modules == ["alertmanager", "dingtalk", "smtp", "syslog", "webhook", "wecom"]
    for name, channel in catalogue().items():
        assert isinstance(channel, Channel) and channel.name == name
        assert typing.get_args(channel.receiver.model_fields["kind"].annotation) == (name,)


def test_the_configuration_schema_is_a_union_discriminated_by_kind() -> None:
    schema = Settings.model_json_schema()
    items = schema["$defs"]["AlertingSettings"]["properties"]["receivers"]["items"]
    assert items["discriminator"]["propertyName"] == "kind"
    assert sorted(items["discriminator"]["mapping"]) == sorted(catalogue())
    assert set(schema["$defs"]["SyslogReceiver"]["properties"]) == {
        "name", "kind", "language", "host", "port", "protocol", "hostname"}


def test_old_style_receivers_still_load_with_their_values() -> None:
    loaded = [parse_receiver(data) for data in OLD_STYLE_RECEIVERS]
    dumped = [r.model_dump(exclude_unset=True) for r in loaded]
    for data, got in zip(OLD_STYLE_RECEIVERS, dumped, strict=True):
        assert {k: (v.get_secret_value() if hasattr(v, "get_secret_value") else v) for k, v in got.items()} == data
    by_name = {r.name: r for r in loaded}
    assert (by_name["am"].resend_seconds, by_name["hook"].language, by_name["wx"].language) == (30, "en", "zh")
    assert type(by_name["mail"]).__name__ == "SmtpReceiver"


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "m", "kind": "smtp", "host": "h"}, r"receiver m \(smtp\) needs sender, to"),
    ({"name": "w", "kind": "webhook"}, r"receiver w \(webhook\) needs url"),
    ({"name": "x", "kind": "pager", "url": "http://a/"}, "does not match any of the expected tags"),
    ({"name": "w", "kind": "webhook", "url": "http://a/", "host": "h"}, "host"),  # another channel's key
    ({"name": "s", "kind": "syslog", "host": "h", "port": 0}, "greater than or equal to 1"),
])
def test_bad_receivers_are_refused_with_the_reason(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_receiver(data)


def test_unknown_kinds_are_refused_by_build_and_deliver() -> None:
    with pytest.raises(ValueError, match="unknown receiver kind 'pager'"):
        build("pager", "p", {}, [])
    stray = parse_receiver({"name": "w", "kind": "webhook", "url": "http://a/"}).model_copy(update={"kind": "pager"})
    with pytest.raises(PermanentDeliveryError, match="unknown receiver kind 'pager'"):
        deliver(stray, {})
