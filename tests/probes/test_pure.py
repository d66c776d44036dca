"""The pure cores of the probes: packet building and matching, parsing of DHCP/ARP replies,
verdicts, ranges and the rate limit, with exact values and malformed inputs."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP
from scapy.layers.l2 import ARP, Dot1Q, Ether

from probes import arp, dhcp, dns, http, icmp, traceroute
from probes.errors import InvalidTargetError, OutOfRangeError
from probes.net import split_host_port
from probes.page import decode_body, page_title
from probes.result import (
    ProbeResult,
    StateTracker,
    failed,
    reason_text,
    samples,
    transition_observation,
)
from probes.safety import AllowedRanges, TokenBucket

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

# -- ICMP --------------------------------------------------------------------------------------------


def test_echo_request_matches_a_real_ping_packet() -> None:
    # scapy, an independent encoder, builds the same request with its own checksum
    packet = icmp.echo_request(4, 0x1C2B, 1, b"abcd")
    from scapy.layers.inet import ICMP

    assert packet == bytes(ICMP(type=8, id=0x1C2B, seq=1) / b"abcd")
    assert icmp.checksum(packet) == 0


@pytest.mark.parametrize(("data", "raw", "ident", "expected"), [
    (bytes(IP(src="127.0.0.1", dst="127.0.0.1") / bytes.fromhex("00000000abcd0001")), True, 0xABCD, True),
    (bytes(IP(src="127.0.0.1", dst="127.0.0.1") / bytes.fromhex("08000000abcd0001")), True, 0xABCD, False),  # request
    (bytes(IP() / bytes.fromhex("00000000abce0001")), True, 0xABCD, False),  # someone else's ident
    (bytes.fromhex("00000000ffff0001"), False, None, True),  # ping socket: the kernel owns the ident
    (bytes.fromhex("00000000ffff0002"), False, None, False),  # other sequence
    (b"\x45\x00", True, 1, False),  # truncated
    (b"", False, None, False),
])
def test_match_reply(data: bytes, raw: bool, ident: int | None, expected: bool) -> None:
    assert icmp.match_reply(data, version=4, ident=ident, seq=1, ip_header=raw) is expected


# -- ranges and rate ---------------------------------------------------------------------------------


def test_allowed_ranges() -> None:
    ranges = AllowedRanges.parse(["10.77.0.0/16", "fd00::/8"])
    ranges.check_address(ipaddress.ip_address("10.77.5.9"))
    ranges.check_network(ipaddress.ip_network("10.77.5.0/24"))
    with pytest.raises(OutOfRangeError, match=r"target 10.78.0.1 is outside the allowed ranges \(10.77.0.0/16, fd00::/8\)"):
        ranges.check_address(ipaddress.ip_address("10.78.0.1"))
    with pytest.raises(OutOfRangeError, match="scan of 10.76.0.0/14 is outside"):
        ranges.check_network(ipaddress.ip_network("10.76.0.0/14"))
    with pytest.raises(OutOfRangeError, match="none configured"):
        AllowedRanges.parse([]).check_address(ipaddress.ip_address("127.0.0.1"))
    with pytest.raises(InvalidTargetError):
        AllowedRanges.parse(["10.0.0.0/33"])


def test_token_bucket_spaces_operations_exactly() -> None:
    now = [100.0]
    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0])
    assert [bucket.delay() for _ in range(4)] == [0.0, 0.0, pytest.approx(0.1), pytest.approx(0.2)]
    now[0] += 1.0  # refills to the burst, minus the two borrowed
    assert bucket.delay() == 0.0


@pytest.mark.parametrize(("text", "default", "expected"), [
    ("www.egov.test:443", None, ("www.egov.test", 443)), ("[::1]:8443", None, ("::1", 8443)),
    ("10.0.0.1", 53, ("10.0.0.1", 53)), ("::1", 53, ("::1", 53)),
])
def test_split_host_port(text: str, default: int | None, expected: tuple[str, int]) -> None:
    assert split_host_port(text, default) == expected


@pytest.mark.parametrize("text", ["host", "host:0", "host:x", "[::1", ":80"])
def test_split_host_port_refuses(text: str) -> None:
    with pytest.raises(InvalidTargetError):
        split_host_port(text)


# -- HTTP verdict and pages --------------------------------------------------------------------------


def _answer(status: int, body: bytes = b"", redirects: int = 0) -> http.HttpAnswer:
    return http.HttpAnswer(status, "http://a/", body, "text/html; charset=utf-8", "nginx", redirects)


@pytest.mark.parametrize(("answer", "expect", "reason"), [
    (_answer(200, b"ok"), http.HttpExpect(), "ok"),
    (_answer(204), http.HttpExpect(), "ok"),
    (_answer(404), http.HttpExpect(), "status_mismatch"),
    (_answer(404), http.HttpExpect(status_codes=(404,)), "ok"),
    (_answer(302), http.HttpExpect(follow_redirects=False), "status_mismatch"),
    (_answer(302), http.HttpExpect(follow_redirects=False, status_codes=(301, 302)), "ok"),
    (_answer(302, redirects=3), http.HttpExpect(max_redirects=3), "too_many_redirects"),
    (_answer(200, "欢迎访问".encode()), http.HttpExpect(body_regex="欢迎"), "ok"),
    (_answer(200, b"maintenance"), http.HttpExpect(body_regex="welcome"), "content_mismatch"),
    (_answer(200, b"error 500"), http.HttpExpect(body_not_regex="error"), "content_mismatch"),
])
def test_http_evaluate(answer: http.HttpAnswer, expect: http.HttpExpect, reason: str) -> None:
    assert http.evaluate(answer, expect)[0] == reason


@pytest.mark.parametrize(("body", "content_type", "title"), [
    ("<title>某区 专题网站</title>".encode("gbk"), "text/html; charset=GBK", "某区 专题网站"),
    ('<meta charset="gb2312"><TITLE>\n  政务\n  服务 </TITLE>'.encode("gb2312"), "text/html", "政务 服务"),
    ("<title>统一平台</title>".encode(), None, "统一平台"),
    ("<title>门户</title>".encode("gb18030"), None, "门户"),  # no charset anywhere, not UTF-8
    (b"<title>A &amp; B</title>", "text/html", "A & B"),
    (b"<html>no title</html>", "text/html", ""),
])
def test_page_title(body: bytes, content_type: str | None, title: str) -> None:
    assert page_title(decode_body(body, content_type)) == title


# -- DNS verdict -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rcode", "records", "expect", "reason"), [
    ("NOERROR", ["10.9.8.7"], dns.DnsExpect(records=("10.9.8.7",)), "ok"),
    ("NOERROR", ["10.9.8.7"], dns.DnsExpect(records=("10.9.8.9",)), "records_mismatch"),
    ("NOERROR", [], dns.DnsExpect(), "no_answer"),
    ("NXDOMAIN", [], dns.DnsExpect(), "nxdomain"),
    ("SERVFAIL", [], dns.DnsExpect(), "servfail"),
    ("REFUSED", [], dns.DnsExpect(), "refused"),
    ("FORMERR", [], dns.DnsExpect(), "rcode_mismatch"),
    ("NXDOMAIN", [], dns.DnsExpect(rcode="NXDOMAIN"), "ok"),
    ("NOERROR", ["mail.egov.test"], dns.DnsExpect("MX", records=("Mail.Egov.Test.",)), "ok"),
])
def test_dns_evaluate(rcode: str, records: list[str], expect: dns.DnsExpect, reason: str) -> None:
    assert dns.evaluate(rcode, records, expect)[0] == reason


# -- DHCP offers -------------------------------------------------------------------------------------

XID = 0x5EC0FFEE
MAC = "02:00:00:aa:bb:cc"


def _offer(xid: int = XID, message: str = "offer", options: list | None = None) -> bytes:
    opts = options if options is not None else [
        ("message-type", message), ("server_id", "10.77.5.1"), ("subnet_mask", "255.255.255.0"),
        ("router", "10.77.5.254"), ("name_server", "10.77.5.53", "10.77.5.54"), ("lease_time", 3600),
        ("domain", b"egov.test"), "end"]
    return bytes(BOOTP(op=2, xid=xid, yiaddr="10.77.5.120", siaddr="10.77.5.1", chaddr=bytes.fromhex("0200" "00aabbcc"))
                 / DHCP(options=opts))


def test_parse_offer_reads_every_field() -> None:
    assert dhcp.parse_offer(_offer(), XID, source_mac="f6:00:00:00:00:01") == dhcp.DhcpOffer(
        server_id="10.77.5.1", offered_address="10.77.5.120", network="10.77.5.0/24", routers=("10.77.5.254",),
        dns_servers=("10.77.5.53", "10.77.5.54"), lease_seconds=3600, domain="egov.test",
        server_mac="f6:00:00:00:00:01")


@pytest.mark.parametrize("payload", [
    _offer(xid=XID + 1),  # another transaction
    _offer(message="ack"),  # not an OFFER
    _offer()[:239],  # truncated before the magic cookie
    _offer()[:-1],  # no end option
    _offer()[:243] + b"\x35\x09\x02",  # an option longer than the packet
    _offer(options=[("message-type", "offer"), "end"])[:236] + b"\0\0\0\0" + _offer()[240:],  # no magic
    b"",
])
def test_parse_offer_rejects_malformed(payload: bytes) -> None:
    assert dhcp.parse_offer(payload, XID) is None


def test_parse_offer_without_server_id_falls_back_to_siaddr() -> None:
    offer = dhcp.parse_offer(_offer(options=[("message-type", "offer"), "end"]), XID)
    assert offer is not None and (offer.server_id, offer.network, offer.lease_seconds) == ("10.77.5.1", "", -1)


def test_judge_flags_the_rogue_server() -> None:
    good = dhcp.parse_offer(_offer(), XID)
    rogue = dhcp.DhcpOffer("192.168.9.1", "192.168.9.50", "192.168.9.0/24", (), (), 600, "", "")
    assert good is not None
    result = dhcp.judge([good, rogue, rogue], ["10.77.5.1"], "eth1")
    assert (result.success, result.reason, dict(result.fields)) == (
        False, "rogue_dhcp", {"dhcp_servers": 2, "dhcp_rogue_servers": 1})
    assert [(f.subject, f.attributes["authorized"]) for f in result.findings] == [
        ("10.77.5.1", True), ("192.168.9.1", False)]
    assert dhcp.judge([good], ["10.77.5.1"], "eth1").success is True
    assert dhcp.judge([], [], "eth1", expect_offer=True).reason == "no_offer"


def test_client_mac_is_locally_administered_unicast() -> None:
    assert dhcp.client_mac("f7:16:00:00:00:01") == "f6:16:00:00:00:01"
    assert dhcp.client_mac("00:16:3e:00:00:01") == "02:16:3e:00:00:01"


# -- ARP replies -------------------------------------------------------------------------------------

NET = ipaddress.ip_network("10.77.5.0/24")


def _reply(psrc: str = "10.77.5.7", hwsrc: str = "52:54:00:12:34:56", op: int = 2) -> bytes:
    return bytes(Ether(src=hwsrc, dst=MAC) / ARP(op=op, psrc=psrc, hwsrc=hwsrc, pdst="10.77.5.9", hwdst=MAC))


@pytest.mark.parametrize(("frame", "expected"), [
    (_reply(), arp.ArpReply(ipaddress.IPv4Address("10.77.5.7"), "52:54:00:12:34:56")),
    (bytes(Ether(dst=MAC) / Dot1Q(vlan=5) / ARP(op=2, psrc="10.77.5.8", hwsrc="52:54:00:00:00:08")),
     arp.ArpReply(ipaddress.IPv4Address("10.77.5.8"), "52:54:00:00:00:08")),
    (_reply(op=1), None),  # a request, not a reply
    (_reply(psrc="10.78.0.1"), None),  # outside the swept network
    (_reply(hwsrc="ff:ff:ff:ff:ff:ff"), None),
    (_reply(hwsrc="01:00:5e:00:00:01"), None),  # multicast sender
    (_reply()[:30], None),  # truncated
    (bytes(Ether(dst=MAC) / IP()), None),  # not ARP
])
def test_parse_arp_reply(frame: bytes, expected: arp.ArpReply | None) -> None:
    assert arp.parse_reply(frame, NET) == expected


def test_flag_marks_new_and_changed() -> None:
    replies = [arp.ArpReply(ipaddress.IPv4Address("10.77.5.8"), "52:54:00:00:00:08"),
               arp.ArpReply(ipaddress.IPv4Address("10.77.5.7"), "52:54:00:00:00:99"),
               arp.ArpReply(ipaddress.IPv4Address("10.77.5.7"), "52:54:00:00:00:98")]  # duplicate: first wins
    found = arp.flag(replies, {"10.77.5.7": "52:54:00:00:00:07"}, NET, "eth1")
    assert [(f.subject, f.attributes["mac"], f.attributes["new"], f.attributes["mac_changed"]) for f in found] == [
        ("10.77.5.7", "52:54:00:00:00:99", False, True), ("10.77.5.8", "52:54:00:00:00:08", True, False)]


def test_sweep_hosts_bounds() -> None:
    assert arp.sweep_hosts(ipaddress.ip_network("10.0.0.0/30")) == ["10.0.0.1", "10.0.0.2"]
    assert arp.sweep_hosts(ipaddress.ip_network("10.0.0.4/32")) == ["10.0.0.4"]
    with pytest.raises(InvalidTargetError, match="at most /20"):
        arp.sweep_hosts(ipaddress.ip_network("10.0.0.0/16"))
    with pytest.raises(InvalidTargetError, match="IPv4 only"):
        arp.sweep_hosts(ipaddress.ip_network("fd00::/120"))


# -- traceroute --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("answers", "hops", "reached"), [
    ([(1, "10.0.0.1", False), (2, "10.0.1.1", False), (3, "10.0.2.9", True), (4, "10.0.2.9", True)],
     ["10.0.0.1", "10.0.1.1", "10.0.2.9"], True),
    ([(1, "10.0.0.1", False), (3, "10.0.2.9", True)], ["10.0.0.1", "", "10.0.2.9"], True),
    ([(2, "10.0.1.1", False)], ["", "10.0.1.1"], False),
    ([], [], False),
    ([(40, "10.0.0.1", True)], [], False),  # beyond max_hops: ignored
])
def test_traceroute_path(answers: list[tuple[int, str, bool]], hops: list[str], reached: bool) -> None:
    assert traceroute.path(answers, max_hops=30) == (hops, reached)


# -- results -----------------------------------------------------------------------------------------


def test_samples_are_prometheus_named() -> None:
    result = ProbeResult("http", "https://a/", True, fields={"http_status_code": 200}, duration_seconds=0.25,
                         phases={"connect": 0.01, "tls": 0.02})
    out = samples(result, "portal", NOW)
    assert [(s.measurement, s.tags, s.fields) for s in out] == [
        ("probe", {"check": "portal", "kind": "http", "target": "https://a/"},
         {"success": 1, "duration_seconds": 0.25, "http_status_code": 200}),
        ("probe_http", {"check": "portal", "kind": "http", "target": "https://a/", "phase": "connect"},
         {"duration_seconds": 0.01}),
        ("probe_http", {"check": "portal", "kind": "http", "target": "https://a/", "phase": "tls"},
         {"duration_seconds": 0.02}),
    ]


def test_state_tracker_reports_only_changes() -> None:
    tracker = StateTracker()
    up = ProbeResult("tcp", "a:1", True)
    down = failed("tcp", "a:1", "connection_refused", "connection refused (RST)")
    timeout = failed("tcp", "a:1", "timeout", "timed out")
    changes = [tracker.update("c", r) for r in (up, up, down, down, timeout, up)]
    assert [(c.previous, c.current, c.reason) if c else None for c in changes] == [
        ("unknown", "up", "ok"), None, ("up", "down", "connection_refused"), None,
        ("down", "down", "timeout"), ("down", "up", "ok")]
    observation = transition_observation(changes[2], NOW)  # type: ignore[arg-type]
    assert (observation.kind, observation.subject, observation.attributes["reason_text"]) == (
        "probe_state", "c", "连接被拒绝(RST)")


def test_reason_texts_in_both_languages() -> None:
    assert reason_text("no_cap_net_raw", "en") == "raw sockets need CAP_NET_RAW, which this process does not have"
    assert reason_text("nxdomain") == "域名不存在(NXDOMAIN)"


def test_tls_evaluate_order_of_reasons() -> None:
    from probes.certs import CertFacts
    from probes.tls import Handshake, TlsExpect, evaluate

    def facts(days: float, names: tuple[str, ...] = ("www.egov.test",)) -> CertFacts:
        return CertFacts("CN=www.egov.test", "CN=www.egov.test", NOW - timedelta(days=30), NOW + timedelta(days=days),
                         names, (), True)

    cases = [
        (Handshake("TLSv1.3", facts(-1), "certificate has expired"), "cert_expired"),
        (Handshake("TLSv1.3", facts(90), "self-signed certificate"), "cert_invalid"),
        (Handshake("TLSv1.3", facts(90, ("other.test",)), None), "cert_hostname_mismatch"),
        (Handshake("TLSv1.1", facts(90), None), "tls_version_too_old"),
        (Handshake("TLSv1.2", facts(5), None), "cert_expiring"),
        (Handshake("TLSv1.2", facts(90), None), "ok"),
    ]
    assert [evaluate(shake, "www.egov.test", TlsExpect(), NOW)[0] for shake, _ in cases] == [r for _, r in cases]
    _, _, fields = evaluate(cases[4][0], "www.egov.test", TlsExpect(), NOW)
    assert fields == {"tls_cert_expiry_seconds": 432000.0, "tls_cert_not_after_timestamp_seconds":
                      (NOW + timedelta(days=5)).timestamp(), "tls_cert_chain_valid": 1, "tls_cert_hostname_match": 1,
                      "tls_version": 1.2}


@pytest.mark.parametrize(("names", "ips", "host", "expected"), [
    (("www.egov.test",), (), "WWW.egov.test.", True),
    (("*.egov.test",), (), "portal.egov.test", True),
    (("*.egov.test",), (), "a.b.egov.test", False),  # a wildcard covers one label only
    (("*.egov.test",), (), "egov.test", False),
    (("*.test",), (), "egov.test", False),  # no wildcard directly under a top-level label
    ((), ("127.0.0.1",), "127.0.0.1", True),
    (("127.0.0.1",), (), "127.0.0.1", False),  # an IP needs an iPAddress SAN
])
def test_hostname_matches(names: tuple[str, ...], ips: tuple[str, ...], host: str, expected: bool) -> None:
    from probes.certs import CertFacts, hostname_matches

    facts = CertFacts("CN=x", "CN=x", NOW, NOW, names, ips, True)
    assert hostname_matches(facts, host) is expected
