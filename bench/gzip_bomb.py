"""gzip bombs against a real server: does `/healthz` stay responsive while agents send 1 GB bombs? (issue 14)

Starts `egovmon server` as a child process (tests/serverproc.py) with an embedded store
on loopback, enrols one agent through the API, then for `--seconds`:
- `--connections` threads each send, again and again, a gzip body that inflates to
  `--inflated-mb` MB of zeros (built streaming: the inflated bytes never exist in this
  process), with the agent's credential, and count the answers by status;
- the main thread asks `GET /healthz` every 20 ms and records its latency;
- a sampler records the server process's RSS every 50 ms.
It prints p50/p99/max of `/healthz`, the idle baseline measured before the bombs, the
answers to the bombs (all must be 413) and the peak RSS. Target (issue 14): p99 < 100 ms.

    PYTHONPATH=. python bench/gzip_bomb.py --seconds 20
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.serverproc import start_server

CHUNK = 1 << 20


def build_bomb(inflated_bytes: int) -> bytes:
    """A gzip stream of `inflated_bytes` zeros, compressed chunk by chunk (about 1 KB per MB inflated)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(CHUNK)
    parts = []
    for _ in range(inflated_bytes // CHUNK):
        parts.append(deflater.compress(zeros))
    parts.append(deflater.flush())
    return b"".join(parts)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def probe(url: str, seconds: float) -> list[float]:
    """Latencies of GET /healthz, one every 20 ms, in milliseconds."""
    latencies = []
    with httpx.Client(timeout=30) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            client.get(f"{url}/healthz").raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.02)
    return latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--inflated-mb", type=int, default=1024)
    parser.add_argument("--extra", default="", help="more YAML for the server configuration, e.g. 'server: {...}'")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    bomb = build_bomb(args.inflated_mb << 20)
    print(f"bomb: {len(bomb):,} bytes on the wire, {args.inflated_mb:,} MB inflated (built in {time.perf_counter() - started:.1f} s)")

    with tempfile.TemporaryDirectory(prefix="gzip-bomb-") as workdir:
        server = start_server(Path(workdir), extra=args.extra)
        try:
            headers = server.agent("bomb", "bomb-host")
            process = psutil.Process(server.process.pid)
            idle = probe(server.url, 3.0)

            stop = threading.Event()
            answers: collections.Counter[str] = collections.Counter()
            peak_rss = [process.memory_info().rss]

            def send() -> None:
                with httpx.Client(timeout=60) as client:
                    while not stop.is_set():
                        try:
                            response = client.post(
                                f"{server.url}/api/v1/ingest", content=bomb,
                                headers={**headers, "Content-Type": "application/json", "Content-Encoding": "gzip"},
                            )
                            answers[str(response.status_code)] += 1
                        except httpx.HTTPError as exc:
                            answers[type(exc).__name__] += 1

            def sample_rss() -> None:
                while not stop.is_set():
                    rss = sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])
                    peak_rss[0] = max(peak_rss[0], rss)
                    time.sleep(0.05)

            threads = [threading.Thread(target=send, daemon=True) for _ in range(args.connections)]
            threads.append(threading.Thread(target=sample_rss, daemon=True))
            for thread in threads:
                thread.start()
            loaded = probe(server.url, args.seconds)
            stop.set()
            for thread in threads:
                thread.join(60)
            result = {
                "connections": args.connections,
                "inflated_mb": args.inflated_mb,
                "seconds": args.seconds,
                "healthz_idle_ms": {"p50": round(percentile(idle, 0.5), 1), "p99": round(percentile(idle, 0.99), 1)},
                "healthz_ms": {
                    "count": len(loaded),
                    "p50": round(percentile(loaded, 0.5), 1),
                    "p99": round(percentile(loaded, 0.99), 1),
                    "max": round(max(loaded), 1),
                },
                "bomb_answers": dict(answers),
                "peak_server_rss_mb": round(peak_rss[0] / (1 << 20), 1),
                "target_p99_ms": 100,
            }
            print(json.dumps(result, indent=2))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
