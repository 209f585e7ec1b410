"""Network namespaces for the nftables tests: created per test, deleted in teardown.

Only namespaces named `gg-t-<random>` are created and deleted; the host's own ruleset and
interfaces are never touched (veth pairs are created inside the namespaces).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

# Answers HTTP GET with a fixed body, on every address of its namespace.
HTTP_SERVER = """
import http.server, sys
body = sys.argv[2].encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
"""
# Accepts TCP connections and echoes UDP datagrams on one port (stands in for ssh and DNS).
ECHO_SERVER = """
import socket, sys, threading
port = int(sys.argv[1])
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", port)); tcp.listen()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", port))
def serve_udp():
    while True:
        data, peer = udp.recvfrom(2048)
        udp.sendto(data, peer)
threading.Thread(target=serve_udp, daemon=True).start()
while True:
    conn, _ = tcp.accept()
    conn.sendall(b"hello")
    conn.close()
"""
# Client probes, run inside the client namespace; print the outcome instead of raising.
HTTP_GET = """
import sys, urllib.request
try:
    print(urllib.request.urlopen(f"http://{sys.argv[1]}/", timeout=float(sys.argv[2])).read().decode())
except Exception as exc:
    print(f"ERROR {type(exc).__name__}")
"""
TCP_CONNECT = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print("OPEN", s.recv(16).decode())
except Exception as exc:
    print(f"ERROR {type(exc).__name__}")
"""
UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(float(sys.argv[3]))
s.sendto(b"ping", (sys.argv[1], int(sys.argv[2])))
try:
    print("ECHO", s.recvfrom(64)[0].decode())
except Exception as exc:
    print(f"ERROR {type(exc).__name__}")
"""


def require_netns_tools() -> None:
    """Fail (in CI) or skip (elsewhere) unless nft, ip and root are available."""
    missing = [tool for tool in ("nft", "ip") if shutil.which(tool) is None]
    if os.geteuid() != 0:
        missing.append("root")
    if not missing:
        return
    message = f"the nftables tests need {', '.join(missing)} (scripts/system-deps.sh installs nftables)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Namespace:
    """A network namespace and the processes started in it."""

    name: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *args],
            capture_output=True,
            text=True,
            check=check,
            input=input,
        )

    def nft(self, *args: str) -> str:
        """`nft <args>` inside the namespace; its output."""
        return self.run("nft", *args).stdout

    def python(self, script: str, *args: str, timeout: float = 15.0) -> str:
        """Run a Python snippet inside the namespace; its output, stripped."""
        done = subprocess.run(
            ["ip", "netns", "exec", self.name, sys.executable, "-c", script, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return done.stdout.strip()

    def start(self, script: str, *args: str) -> None:
        """Start a background Python snippet inside the namespace (stopped in teardown)."""
        self.processes.append(
            subprocess.Popen(
                ["ip", "netns", "exec", self.name, sys.executable, "-c", script, *args],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def wait_listening(self, port: int, *, timeout: float = 10.0) -> None:
        """Wait until something listens on tcp `port` in the namespace."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if f":{port} " in self.run("ss", "-ltnH", check=False).stdout:
                return
            time.sleep(0.05)
        raise AssertionError(f"nothing listens on port {port} in {self.name}")

    def stop(self) -> None:
        """Stop the processes this test started, then delete the namespace."""
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, check=False)


def new_name(role: str = "") -> str:
    """A fresh `gg-t-<random>` namespace name."""
    return f"gg-t-{secrets.token_hex(4)}{'-' + role if role else ''}"


@contextmanager
def namespaces(*roles: str) -> Iterator[dict[str, Namespace]]:
    """Create one namespace per role (loopback up); delete them all afterwards."""
    made: dict[str, Namespace] = {}
    tag = secrets.token_hex(4)
    try:
        for role in roles:
            ns = Namespace(f"gg-t-{tag}-{role}")
            subprocess.run(["ip", "netns", "add", ns.name], check=True, capture_output=True)
            made[role] = ns
            ns.run("ip", "link", "set", "lo", "up")
        yield made
    finally:
        for ns in made.values():
            ns.stop()


def veth(left: Namespace, left_if: str, right: Namespace, right_if: str) -> None:
    """A veth pair between two namespaces, both ends up."""
    subprocess.run(
        [
            "ip",
            "-n",
            left.name,
            "link",
            "add",
            left_if,
            "type",
            "veth",
            "peer",
            "name",
            right_if,
            "netns",
            right.name,
        ],
        check=True,
        capture_output=True,
    )
    left.run("ip", "link", "set", left_if, "up")
    right.run("ip", "link", "set", right_if, "up")
