"""The fuzz campaign of tests/fuzz, longer: flows through a real `egovmon flow listen`, and the SNMP BER codec.

Run: `.venv/bin/python bench/fuzz_campaign.py [--mutations 100000] [--rounds 400] [--ber 300000] [--seed 1]
      [--flood-exporters 20000] [--flood-templates 1000000]`

1. Flows: `--rounds` of the valid stream (real captures, a hand-built exporter, spoofed cross-domain template
   reuse and withdrawals on its address), `--mutations` seeded mutations and splices of the captures, and the
   hand-built hostile templates, sent interleaved from three loopback sources to a real listener process. It
   prints, per source, datagrams sent / received / decoded / malformed and flows, each against the pure
   decoder's datagram-by-datagram reference, queue and kernel drops, and the listener's peak RSS.
2. BER: `--ber` mutations of SNMP messages (the GETBULK responses of a real snmpd, `snmptrap` datagrams) through
   `decode_message`: how many were refused (SnmpDecodeError), decoded and round-tripped, and any other exception
   (a bug: printed and counted).

3. Template flood: `--flood-templates` templates with random observation domains from `--flood-exporters`
   spoofed loopback sources (127.64.0.0/10), then 256 sources announcing 4,096 templates each (the
   per-exporter bound), to a real listener: its peak RSS and the evictions it counted.

The bounded CI version is tests/fuzz (same code, smaller sizes, exact assertions). Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import random
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collectors.snmp.ber import decode_message, encode_message  # noqa: E402
from collectors.snmp.errors import SnmpDecodeError  # noqa: E402
from tests.fuzz.flowcampaign import (  # noqa: E402
    HOSTILE,
    MUTATED,
    VALID,
    hostile_cases,
    mutated_stream,
    reference,
    valid_stream,
)
from tests.fuzz.flowlisten import ListenProcess, send_campaign  # noqa: E402
from tests.fuzz.mutate import mutate, splice  # noqa: E402
from tests.fuzz.snmpcorpus import net_snmp_traps, walk_responses  # noqa: E402
from tests.services import start_snmpd, wait_until  # noqa: E402


def flows(args: argparse.Namespace) -> bool:
    streams = {
        VALID: valid_stream(args.rounds, random.Random(args.seed)),
        MUTATED: mutated_stream(args.mutations, random.Random(args.seed + 1)),
        HOSTILE: [case.datagram for case in hostile_cases(300)],
    }
    expected = {exporter: reference(exporter, datagrams) for exporter, datagrams in streams.items()}
    started = time.monotonic()
    run = send_campaign(streams)
    elapsed = time.monotonic() - started
    ok = run.alive and run.report.total("queue_drops") == 0 and run.report.kernel_drops == 0
    print(f"flows: {run.sent:,} datagrams in {elapsed:.1f} s through egovmon flow listen; "
          f"queue drops {run.report.total('queue_drops')}, kernel drops {run.report.kernel_drops}, "
          f"peak RSS {run.peak_rss_mib:.0f} MiB, evicted templates {run.report.evicted_templates}")
    print(f"  {'source':<12}{'sent':>9}{'received':>10}{'decoded':>9}{'malformed':>11}{'flows':>10}   reference (decoded/malformed/flows)")
    for exporter, totals in expected.items():
        line = run.report.exporters[exporter]
        same = (line.datagrams, line.malformed, line.flows) == (totals.datagrams, totals.malformed, totals.flows)
        ok &= same and line.datagrams == len(streams[exporter])
        print(f"  {exporter:<12}{len(streams[exporter]):>9,}{line.datagrams:>10,}{line.datagrams - line.malformed:>9,}"
              f"{line.malformed:>11,}{line.flows:>10,}   {totals.decoded:,}/{totals.malformed:,}/{totals.flows:,}"
              f"{'' if same else '  MISMATCH'}")
    if "decoder failed" in run.stderr or "Traceback" in run.stderr:
        ok = False
        print(run.stderr[-3000:])
    return ok


def _templates(domain: int, first_id: int, count: int) -> bytes:
    """An IPFIX message announcing `count` 4-field templates (addresses, packets, octets) in `domain`."""
    fields = struct.pack("!HHHHHHHH", 8, 4, 12, 4, 2, 4, 1, 4)
    body = b"".join(struct.pack("!HH", first_id + n, 4) + fields for n in range(count))
    template_set = struct.pack("!HH", 2, 4 + len(body)) + body
    return struct.pack("!HHIII", 10, 16 + len(template_set), 0, 0, domain) + template_set


def _source(n: int) -> str:
    return f"127.{64 + (n >> 16 & 63)}.{n >> 8 & 255}.{n & 255 or 1}"


def flood(args: argparse.Namespace) -> bool:
    rng = random.Random(args.seed + 3)
    listener = ListenProcess(every_seconds=5.0).start()
    per_exporter = max(1, args.flood_templates // args.flood_exporters)
    sent = 0
    started = time.monotonic()
    try:
        target = ("127.0.0.1", listener.port)

        def send(source: str, datagram: bytes) -> None:
            nonlocal sent
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((source, 0))
                sock.sendto(datagram, target)
            sent += 1
            if sent % 1000 == 0:
                time.sleep(0.05)

        for n in range(args.flood_exporters):
            body = b"".join(_templates(rng.randrange(1 << 32), 256 + rng.randrange(60000), 1)[16:] for _ in range(per_exporter))
            send(_source(n), struct.pack("!HHIII", 10, 16 + len(body), 0, 0, rng.randrange(1 << 32)) + body)
        for n in range(256):  # the per-exporter bound, from many exporters at once
            for first in (256, 256 + 2048):
                send(_source(args.flood_exporters + n), _templates(1, first, 2048))
        report = wait_until(lambda: (r := listener.report()) and r.total("datagrams") + r.total("queue_drops") >= sent
                            and r, 600, "the flood counted", interval=1.0)
        current, peak = listener.memory_mib()
        alive = listener.alive()
    finally:
        stderr = listener.stop()
    elapsed = time.monotonic() - started
    print(f"template flood: {args.flood_exporters:,} spoofed exporters x {per_exporter} random-domain templates, then 256 "
          f"exporters x 4,096 templates; {sent:,} datagrams in {elapsed:.0f} s: listener peak RSS {peak:.0f} MiB "
          f"(now {current:.0f}), evicted templates {report.evicted_templates:,} and exporters {report.evicted_exporters:,}, "
          f"malformed {report.total('malformed')}, "
          f"queue drops {report.total('queue_drops')}, alive {alive}")
    return alive and "Traceback" not in stderr


def ber(args: argparse.Namespace) -> bool:
    with tempfile.TemporaryDirectory(prefix="egovmon-fuzz-") as tmp:
        snmpd = start_snmpd(Path(tmp))
        try:
            real = walk_responses(snmpd.port, snmpd.community)
        finally:
            snmpd.stop()
    real += [trap for name, trap in net_snmp_traps("public").items() if name != "v1 enterprise"]
    rng = random.Random(args.seed + 2)
    refused = decoded = bugs = 0
    started = time.process_time()
    for n in range(args.ber):
        data = splice(rng.choice(real), rng.choice(real), rng) if n % 10 == 0 else mutate(rng.choice(real), rng)
        try:
            message = decode_message(data)
        except SnmpDecodeError:
            refused += 1
            continue
        except Exception as exc:  # noqa: BLE001 - what the campaign looks for: printed and counted
            bugs += 1
            print(f"  BUG {exc!r} on {data.hex()}")
            continue
        decoded += 1
        again = decode_message(encode_message(message.pdu_type, message.community, message.request_id, message.varbinds,
                                              error_status=message.error_status, error_index=message.error_index,
                                              version=message.version))
        if again != message:
            bugs += 1
            print(f"  ROUND TRIP differs on {data.hex()}")
    cpu = time.process_time() - started
    print(f"BER: {args.ber:,} mutations of {len(real)} net-snmp messages in {cpu:.1f} s CPU: "
          f"{refused:,} refused (SnmpDecodeError), {decoded:,} decoded and round-tripped, {bugs} other outcomes")
    return bugs == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutations", type=int, default=100_000, help="mutated flow datagrams")
    parser.add_argument("--rounds", type=int, default=400, help="rounds of the valid flow stream (68 datagrams each)")
    parser.add_argument("--ber", type=int, default=300_000, help="BER mutations")
    parser.add_argument("--flood-exporters", type=int, default=20_000)
    parser.add_argument("--flood-templates", type=int, default=1_000_000)
    parser.add_argument("--only", choices=("flows", "ber", "flood"), help="run one part")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    ok = True
    for name, part in (("flows", flows), ("ber", ber), ("flood", flood)):
        if args.only in (None, name):
            ok &= part(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
