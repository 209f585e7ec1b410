"""What the bench scripts share: a free port, and what a server process tree costs while it runs.

Not a benchmark itself (`make bench` skips files starting with `_`). Everything here reads
/proc, so it works on Linux only, like the rest of the benches.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def server_settings(url: str, workdir: Path, port: int) -> dict[str, str]:
    """What a benchmarked `guestgate serve` runs with: its database and data dir, fixed secrets,
    no background jobs, warnings only in its log."""
    return {
        "GUESTGATE_DATABASE_URL": url,
        "GUESTGATE_DATA_DIR": str(workdir),
        "GUESTGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "GUESTGATE_JWT_SECRET": "b" * 40,
        "GUESTGATE_SIGNING_KEY": "s" * 40,
        "GUESTGATE_ENCRYPTION_KEY": base64.urlsafe_b64encode(b"k" * 32).decode(),
        "GUESTGATE_SCHEDULER_ENABLED": "false",
        "GUESTGATE_LOG_LEVEL": "warning",
    }


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants that are alive now (uvicorn's --workers children too)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_kib(pid: int) -> int:
    """Resident set size of one process in KiB (VmRSS), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


@dataclass(frozen=True)
class Usage:
    """A server tree's memory (MB, 10^6 bytes) during a window, and the CPU seconds it used in it."""

    peak_mb: float
    steady_mb: float
    cpu_s: float


class Watch:
    """Samples the RSS (summed over the process tree) of a server every `interval` seconds.

    `steady` is the median of the samples in the second half of the watched window: what the
    server settles at under load, where `peak` also catches a burst.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self._pid = pid
        self._interval = interval
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._cpu_start = 0.0

    def __enter__(self) -> Watch:
        self._cpu_start = cpu_seconds(process_tree(self._pid))
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._cpu_end = cpu_seconds(process_tree(self._pid))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._samples.append(sum(rss_kib(pid) for pid in process_tree(self._pid)))
            self._stop.wait(self._interval)

    def usage(self) -> Usage:
        samples = self._samples or [0]
        tail = samples[len(samples) // 2 :]
        return Usage(
            peak_mb=max(samples) * 1024 / 1e6,
            steady_mb=statistics.median(tail) * 1024 / 1e6,
            cpu_s=self._cpu_end - self._cpu_start,
        )


def postgres_backends(admin_url: str, database: str) -> list[int]:
    """The pids of the PostgreSQL backends connected to `database` (on this machine)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
        ).fetchall()
    return [int(row[0]) for row in rows]


def require_tool(name: str, package: str) -> str:
    """The path of a command the bench needs; exits with how to install it when it is missing."""
    path = shutil.which(name)
    if path is None:
        raise SystemExit(
            f"`{name}` is not installed: it is part of `make system-deps` (Debian package {package})."
        )
    return path


class Profiler:
    """py-spy recording a running process (and its children) until stopped; a flame graph SVG
    and the raw collapsed stacks (one line per stack, for grep and `sort -k2n`)."""

    def __init__(self, pid: int, out: Path) -> None:
        self._out = out
        # py-spy is a dev requirement (requirements/dev.txt): it sits next to this interpreter.
        spy = str(Path(sys.executable).with_name("py-spy"))
        if not Path(spy).exists():
            raise SystemExit(f"{spy} is missing: install requirements/dev.txt (make lint does)")
        out.parent.mkdir(parents=True, exist_ok=True)
        self._procs: list[subprocess.Popen[bytes]] = []
        for fmt, suffix in (("flamegraph", ".svg"), ("raw", ".txt")):
            command = [
                spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "200", "--nonblocking",
                "--format", fmt, "--output", str(out.with_suffix(suffix)),
            ]  # fmt: skip
            self._procs.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        time.sleep(0.5)

    def stop(self) -> None:
        for proc in self._procs:
            proc.send_signal(signal.SIGINT)
        for proc in self._procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
