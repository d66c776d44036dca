"""Real servers for the probe tests: an HTTP(S) server (Python's http.server with a self-signed
certificate made with `cryptography`), dnsmasq as a DNS server, and throw-away network namespaces.

Everything listens on 127.0.0.1 free ports or lives in namespaces named with the
`egp6` prefix, and is stopped/deleted by the fixtures that start it.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.services import BinaryMissingError, ServerProcess, _spawn, wait_until

SERVER_HEADER = "EgovTest/1.0"
PAGE = "<html><head><meta charset=\"gbk\"><title>某区 专题网站</title></head><body>欢迎 welcome</body></html>"


def make_cert(directory: Path, *, common_name: str, dns_names: list[str], ips: list[str], valid_days: float,
              now: datetime | None = None) -> tuple[Path, Path]:
    """A self-signed EC certificate valid from an hour ago for `valid_days`; returns (cert PEM, key PEM)."""
    now = now or datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "egovmon test")])
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
               .not_valid_after(now + timedelta(days=valid_days))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{common_name}.crt", directory / f"{common_name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class _Handler(BaseHTTPRequestHandler):
    def version_string(self) -> str:
        return SERVER_HEADER

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        routes = {"/": (200, PAGE.encode("gbk"), "text/html"), "/missing": (404, b"not here", "text/plain"),
                  "/error": (503, b"down", "text/plain")}
        if self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{left - 1}" if left > 1 else "/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status, body, kind = routes.get(self.path, (404, b"", "text/plain"))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class WebServer:
    """A running HTTP or HTTPS server on 127.0.0.1."""

    port: int
    server: ThreadingHTTPServer
    thread: threading.Thread
    tls: bool

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_web(cert: tuple[Path, Path] | None = None) -> WebServer:
    """Serve the test pages on a free port; with cert, over TLS (1.2 and 1.3)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return WebServer(server.server_address[1], server, thread, cert is not None)


def require(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise BinaryMissingError(f"{program} is not installed (see ../shared/REAL_COMPONENTS.md)")
    return found


def start_dnsmasq(directory: Path, port: int, args: list[str], *, netns: str | None = None) -> ServerProcess:
    """dnsmasq in the foreground with an empty base configuration (in netns when given)."""
    program = require("dnsmasq")
    directory.mkdir(parents=True, exist_ok=True)
    argv = [program, "--no-daemon", "--conf-file=/dev/null", f"--port={port}", "--log-facility=-",
            f"--pid-file={directory / 'dnsmasq.pid'}", *args]
    if netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    return _spawn("dnsmasq", argv, directory / "dnsmasq.log")


def ip(*args: str) -> None:
    """Run `ip ARGS`; raise with its message when it fails."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@contextmanager
def namespaces(*names: str) -> Iterator[list[str]]:
    """Create network namespaces with a unique `egp6<pid>` prefix (lo up) and always delete them."""
    prefix = f"egp6{os.getpid() % 100000}"
    made: list[str] = []
    try:
        for name in names:
            full = f"{prefix}{name}"
            ip("netns", "add", full)
            made.append(full)
            ip("-n", full, "link", "set", "lo", "up")
        yield made
    finally:
        for full in made:
            subprocess.run(["ip", "netns", "del", full], capture_output=True, check=False)


def veth(a_ns: str, a_name: str, b_ns: str, b_name: str) -> None:
    """A veth pair with one end in each namespace, both up (created inside a_ns: nothing touches the host's)."""
    ip("-n", a_ns, "link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", b_ns)
    ip("-n", a_ns, "link", "set", a_name, "up")
    ip("-n", b_ns, "link", "set", b_name, "up")


def link_up(ns: str, name: str) -> bool:
    """True once the interface reports operstate UP (veth carriers settle asynchronously)."""
    done = subprocess.run(["ip", "-n", ns, "-br", "link", "show", name], capture_output=True, text=True,
                          check=False)
    return " UP " in f" {done.stdout} "


def wait_links(*pairs: tuple[str, str]) -> None:
    for ns, name in pairs:
        wait_until(lambda ns=ns, name=name: link_up(ns, name), 10, f"{name} in {ns} to come up")
