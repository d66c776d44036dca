"""Issue 14's two-datagram attack: an IPFIX template whose fields are all variable-length (a record of no fixed
bytes), then a data set for it. It used to kill the `flow-decoder` thread for good (np.frombuffer on an empty buffer
asked for N records) while the process went on reporting. Now the template is malformed input, counted, and the
decoder goes on: tested through a real `egovmon flow listen` process, and through `egovmon flow decode`."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from collectors.flow.batch import BatchDecoder
from collectors.flow.model import DecodeError
from tests.collectors.flow.test_listener import NETFLOW5_DATAGRAMS
from tests.services import wait_until

TEMPLATE = bytes.fromhex("000a00206553f100000000000000000100020010012c00020052ffff0052ffff")
DATA = bytes.fromhex("000a00166553f1000000000000000001012c00060000")
ROOT = Path(__file__).resolve().parents[3]


def test_the_template_is_malformed_input_and_the_batch_decoder_goes_on():
    decoder = BatchDecoder()
    valid = NETFLOW5_DATAGRAMS[1]
    result = decoder.decode([("10.0.0.9", TEMPLATE), ("10.0.0.9", DATA), ("10.0.0.1", valid)])
    assert isinstance(result.datagrams[0], DecodeError) and "no fixed-length field" in str(result.datagrams[0])
    assert not isinstance(result.datagrams[1], DecodeError)  # a data set of an unknown template: skipped, not fatal
    assert len(result.exporters["10.0.0.1"].flows) == struct.unpack_from("!H", valid, 2)[0]
    assert result.failed_sets == ()


def test_flow_decode_on_the_crafted_file_counts_it_and_exits_0(tmp_path):
    crafted = tmp_path / "attack.raw"
    crafted.write_bytes(TEMPLATE + DATA)
    run = subprocess.run([sys.executable, "-m", "cli", "flow", "decode", str(crafted)], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    assert "malformed=1" in run.stdout


def test_a_real_listener_survives_the_attack_and_decodes_the_next_1000_datagrams_exactly():
    process = subprocess.Popen([sys.executable, "-m", "cli", "flow", "listen", "--port", "0", "--every", "0.2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True)
    try:
        first = process.stdout.readline()
        port = int(re.search(r":(\d+) \(UDP\)", first).group(1))
        reader.start()
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        attacker.bind(("127.0.0.2", 0))
        attacker.sendto(TEMPLATE, ("127.0.0.1", port))
        attacker.sendto(DATA, ("127.0.0.1", port))
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.bind(("127.0.0.1", 0))
        expected = 0
        for n in range(1000):
            datagram = NETFLOW5_DATAGRAMS[n % len(NETFLOW5_DATAGRAMS)]
            expected += struct.unpack_from("!H", datagram, 2)[0]
            sender.sendto(datagram, ("127.0.0.1", port))
            if n % 50 == 49:
                time.sleep(0.01)  # a real exporter's pace; the test is about decoding, not the receive buffer

        def totals(exporter: str) -> str | None:
            return next((line for line in reversed(lines) if line.startswith(f"{exporter}:")), None)

        wait_until(lambda: (line := totals("127.0.0.1")) and "datagrams=1000 " in line, 30, "1,000 decoded datagrams")
        assert f"flows={expected} " in totals("127.0.0.1") and "malformed=0 " in totals("127.0.0.1")
        assert "malformed=1 " in totals("127.0.0.2") and "datagrams=2 " in totals("127.0.0.2")
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(10)
    assert "Traceback" not in process.stderr.read()


def _template_datagram(domain: int, template_id: int) -> bytes:
    """An IPFIX datagram announcing one valid template (source and destination address, packets, octets)."""
    fields = struct.pack("!HHHHHHHH", 8, 4, 12, 4, 2, 4, 1, 4)
    template_set = struct.pack("!HHHH", 2, 8 + len(fields), template_id, 4) + fields
    return struct.pack("!HHIII", 10, 16 + len(template_set), 0, 0, domain) + template_set


def test_a_template_flood_from_spoofed_exporters_is_bounded_and_counted():
    """Issue 14: random domain ids and spoofed sources made the template caches grow without limit."""
    decoder = BatchDecoder(max_exporters=50)
    flood = [("192.0.2.1", _template_datagram(domain, 256 + domain % 1000)) for domain in range(5_000)]
    decoder.decode(flood)
    assert decoder.templates == 4096 and decoder.evicted_templates == 5_000 - 4096
    spoofed = [(f"10.{n >> 8 & 255}.{n & 255}.1", _template_datagram(1, 300)) for n in range(200)]
    decoder.decode(spoofed)
    assert decoder.evicted_exporters == 151  # 201 exporters seen, 50 kept
    assert decoder.templates == 50
    valid = NETFLOW5_DATAGRAMS[1]
    result = decoder.decode([("10.0.0.1", valid)])  # a real exporter still decodes after the flood
    assert len(result.exporters["10.0.0.1"].flows) == struct.unpack_from("!H", valid, 2)[0]


def _templates_datagram(domain: int, first_id: int, count: int, fields: int) -> bytes:
    """An IPFIX datagram announcing `count` templates of `fields` fields each (source address, then octets)."""
    specifiers = struct.pack("!HH", 8, 4) + struct.pack("!HH", 1, 4) * (fields - 1)
    body = b"".join(struct.pack("!HH", first_id + n, fields) + specifiers for n in range(count))
    template_set = struct.pack("!HH", 2, 4 + len(body)) + body
    return struct.pack("!HHIII", 10, 16 + len(template_set), 0, 0, domain) + template_set


def test_the_fields_an_exporter_keeps_are_bounded_oldest_first():
    """Issue 14 / fuzz campaign: 4,096 templates of 256 fields were 85 MB for one exporter; fields are bounded too."""
    from collectors.flow.decode import TemplateCache
    from collectors.flow.decode import decode as decode_one

    cache = TemplateCache(max_fields=100)
    cache.apply(decode_one(_templates_datagram(1, 300, 5, 30), "192.0.2.1", cache.mapping()))
    assert (len(cache), cache.fields, cache.evicted) == (3, 90, 2)
    assert sorted(key.template_id for key in cache.mapping()) == [302, 303, 304]  # the oldest two went
    cache.apply(decode_one(_templates_datagram(1, 304, 1, 10), "192.0.2.1", cache.mapping()))  # re-announced smaller
    assert (len(cache), cache.fields) == (3, 70)
    withdrawal = struct.pack("!HH", 2, 8) + struct.pack("!HH", 303, 0)
    cache.apply(decode_one(struct.pack("!HHIII", 10, 24, 0, 0, 1) + withdrawal, "192.0.2.1", cache.mapping()))
    assert (len(cache), cache.fields) == (2, 40)


def test_the_templates_kept_over_all_exporters_are_bounded_and_the_sender_keeps_its_own():
    """2,000 spoofed exporters of 50 random templates took 324 MB: past the total the oldest exporters go."""
    from collectors.flow.decode import template_bytes

    ten = _templates_datagram(1, 300, 10, 20)
    cost = 10 * template_bytes(_one_template(20))
    decoder = BatchDecoder(max_template_bytes=5 * cost)
    for n in range(10):
        decoder.decode([(f"10.0.0.{n}", ten)])  # 10 templates of 20 fields each
        assert decoder.template_bytes <= 5 * cost
    assert (decoder.template_bytes, decoder.templates, decoder.evicted_exporters) == (5 * cost, 50, 5)
    big = decoder.decode([("10.0.1.1", _templates_datagram(1, 300, 60, 20))])  # more than the bound alone: kept
    assert not isinstance(big.datagrams[0], DecodeError)
    assert decoder.template_bytes == 6 * cost and decoder.templates == 60 and decoder.evicted_exporters == 10
    valid = NETFLOW5_DATAGRAMS[1]
    result = decoder.decode([("10.0.0.1", valid)])
    assert len(result.exporters["10.0.0.1"].flows) == struct.unpack_from("!H", valid, 2)[0]


def _one_template(fields: int):
    from collectors.flow.decode import decode as decode_one

    return next(iter(decode_one(_templates_datagram(1, 300, 1, fields), "x", {}).templates.values()))
