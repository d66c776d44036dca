"""Offline agent bundle: build time and size per architecture, and the install time on a host.

Run: `.venv/bin/python bench/agent_bundle.py [--cache DIR] [--cold]`

Builds the x86_64 and aarch64 bundles (`egovmon agent bundle build`) with the wheel cache (`--cold`: an empty cache,
so every wheel comes from the package index), then serves them from a real `egovmon server` on loopback and runs
/agent/install.sh with Debian's /usr/bin/python3 under a temporary root (`--root`, `--no-user`, `--no-start`: this
machine's /opt and /etc are left alone), enrolment included. Prints the figures the issue asks for: bundle sizes
per architecture and the install time. An anchor: `pip install egovmon` into a fresh venv from the same wheels.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cli.bundle import DEFAULT_CACHE, build_bundle  # noqa: E402
from tests.serverproc import start_server  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
CLEAN_ENV = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8", "PIP_NO_INDEX=1", "PIP_CONFIG_FILE=/dev/null"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="wheel cache (default %(default)s)")
    parser.add_argument("--cold", action="store_true", help="start from an empty wheel cache (downloads everything)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="egovmon-bench-bundle-") as tmp:
        work = Path(tmp)
        cache = work / "cache" if options.cold else options.cache
        server = start_server(work / "server")
        try:
            bundles = server.data_dir / "agent-bundles"
            for arch in ("x86_64", "aarch64"):
                started = time.monotonic()
                info = build_bundle(arch=arch, output=bundles, cache=cache)  # type: ignore[arg-type]
                wheels = sum(w.size_bytes for w in info.wheels)
                print(f"{arch:8} bundle: {info.tarball_bytes / 1e6:5.1f} MB tarball, {len(info.wheels)} wheels "
                      f"({wheels / 1e6:.1f} MB), built in {time.monotonic() - started:5.1f} s"
                      f"{' (cold cache)' if options.cold else ''}")  # fmt: skip
            token = server.enrollment_token("bench")
            root = work / "host-root"
            root.mkdir()
            command = (f"curl -fsS {server.url}/agent/install.sh | sh -s -- --server {server.url} --token {token} "
                       f"--root {root} --no-user --no-start --python {SYSTEM_PYTHON} --hostname bench-bundle")  # fmt: skip
            started = time.monotonic()
            done = subprocess.run([*CLEAN_ENV, f"TMPDIR={work}", "sh", "-c", command], capture_output=True, text=True, check=False)
            install_seconds = time.monotonic() - started
            if done.returncode != 0:
                raise SystemExit(f"install failed:\n{done.stdout}{done.stderr}")
            print(f"install.sh (download, verify, venv, pip --no-index, unit, config, enrol): {install_seconds:.1f} s")
            anchor = work / "anchor-venv"
            started = time.monotonic()
            subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(anchor)], check=True)
            subprocess.run(["tar", "-xzf", str(bundles / "egovmon-agent-x86_64.tar.gz"), "-C", str(work)], check=True)
            wheels_dir = work / "egovmon-agent" / "wheels"
            pip = next(wheels_dir.glob("pip-*.whl"))
            subprocess.run([*CLEAN_ENV, str(anchor / "bin/python"), f"{pip}/pip", "install", "--isolated", "--no-index",
                            "--find-links", str(wheels_dir), "--quiet", "egovmon"], check=True)  # fmt: skip
            print(f"anchor: venv + pip install --no-index of the same wheels alone: {time.monotonic() - started:.1f} s")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
