"""Start-up failures of real `guestgate` processes: one or two lines naming the setting or path, no
traceback, the documented exit code, and nothing started (no database, no jobs) before the check."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from guestgate.startup import EXIT_CODE_MEANINGS, ExitCode
from tests.replicas.cluster import free_port
from tests.utils.faults import require
from tests.utils.settings import TEST_KEYS

GUESTGATE = Path(sys.executable).with_name("guestgate")
README = Path(__file__).resolve().parents[2] / "README.md"


@dataclass
class Outcome:
    """What one `guestgate` run printed and how it ended."""

    code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run(workdir: Path, *args: str, timeout: float = 60, **settings: str) -> Outcome:
    """`guestgate <args>` in `workdir` with only the given GUESTGATE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUESTGATE_")}
    env.update({f"GUESTGATE_{k.upper()}": v for k, v in settings.items()})
    done = subprocess.run(
        [str(GUESTGATE), *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return Outcome(done.returncode, done.stdout, done.stderr)


def assert_short(outcome: Outcome, code: ExitCode, *named: str, max_lines: int = 2) -> str:
    """The run exited `code` with at most `max_lines` lines naming every string in `named`."""
    assert outcome.code == code, outcome
    assert "Traceback" not in outcome.stderr and "╭" not in outcome.stderr, outcome.stderr
    assert 1 <= len(outcome.lines) <= max_lines, outcome.stderr
    for text in named:
        assert text in outcome.stderr, (text, outcome.stderr)
    return outcome.stderr


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory this process cannot write: a read-only tmpfs as root, mode 0555 otherwise."""
    path = tmp_path / "readonly"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    require(shutil.which("mount") is not None, "a read-only directory for root needs mount")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True, text=True, check=False
    )
    require(done.returncode == 0, f"cannot mount a read-only tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_port_that_is_not_a_number_names_the_variable(workdir: Path) -> None:
    outcome = run(workdir, "serve", port="abc")
    assert_short(outcome, ExitCode.CONFIG, "GUESTGATE_PORT='abc'", "integer")
    assert not (workdir / "var").exists()


def test_several_bad_settings_are_named_one_line_each(workdir: Path) -> None:
    outcome = run(workdir, "migrate", env="prod", smtp_security="ssl", log_json="maybe")
    assert_short(
        outcome,
        ExitCode.CONFIG,
        "GUESTGATE_ENV='prod'",
        "GUESTGATE_SMTP_SECURITY='ssl'",
        "GUESTGATE_LOG_JSON='maybe'",
        max_lines=4,
    )


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("log_level", "verbose", "must be one of debug, info, warning, error"),
        ("portal_trusted_proxies", "10.0.0.1,garbage", "'garbage' is not an IP address or CIDR"),
        ("public_url", "portal.example.com", "must be an http:// or https:// URL"),
        ("jwt_jwks_url", "idp.example.com/jwks", "must be an http:// or https:// URL"),
        ("scheduler_enabled", "perhaps", "boolean"),
        ("nftables_allow", '{"acme": ["wlan0"]', "is not valid JSON"),  # decoded before validation
        ("outbound_allow_networks", "10.0.0.0/33", ": '10.0.0.0/33' is not an IP address or CIDR"),
    ],
)
def test_a_setting_that_used_to_crash_later_is_named_at_start(
    workdir: Path, name: str, value: str, reason: str
) -> None:
    outcome = run(workdir, "serve", "--port", "0", data_dir="var", **{name: value})
    stderr = assert_short(outcome, ExitCode.CONFIG, f"GUESTGATE_{name.upper()}='{value}'", reason)
    assert stderr.upper().count(f"GUESTGATE_{name.upper()}") == 1, stderr  # named once, spelt right


def test_production_without_secrets_names_each_one(workdir: Path) -> None:
    outcome = run(workdir, "serve", env="production", data_dir=str(workdir / "var"))
    assert_short(
        outcome,
        ExitCode.CONFIG,
        "GUESTGATE_JWT_SECRET",
        "GUESTGATE_ENCRYPTION_KEY",
        "GUESTGATE_SIGNING_KEY",
        max_lines=4,
    )


def test_a_data_dir_that_is_a_file_names_the_path(workdir: Path) -> None:
    (workdir / "data").write_text("not a directory")
    for command in ("serve", "migrate", "worker"):
        outcome = run(workdir, command, data_dir="data")
        assert_short(outcome, ExitCode.DATA_DIR, f"{workdir / 'data'} is a file", "GUESTGATE_DATA_DIR")


def test_a_data_dir_given_with_the_option_that_is_a_file_names_the_option(workdir: Path) -> None:
    (workdir / "data").write_text("not a directory")
    outcome = run(workdir, "token", "create", "--org", "acme", "--create-org", "--data-dir", "data")
    assert_short(outcome, ExitCode.DATA_DIR, f"{workdir / 'data'} is a file", "--data-dir")


def test_an_unwritable_data_dir_names_it(workdir: Path, readonly_dir: Path) -> None:
    outcome = run(workdir, "serve", data_dir=str(readonly_dir))
    assert_short(outcome, ExitCode.DATA_DIR, str(readonly_dir), "writ")


def test_an_unwritable_database_path_names_it(workdir: Path, readonly_dir: Path) -> None:
    url = f"sqlite:///{readonly_dir}/guestgate.db"
    outcome = run(workdir, "migrate", data_dir=str(workdir / "var"), database_url=url)
    assert_short(outcome, ExitCode.DATA_DIR, str(readonly_dir), "GUESTGATE_DATABASE_URL", "not writable")
    missing = run(workdir, "migrate", data_dir=str(workdir / "var"), database_url="sqlite:////proc/no/such/x.db")
    assert_short(missing, ExitCode.DATA_DIR, "/proc/no/such", "cannot be created")


def test_a_file_that_is_not_a_database_names_it(workdir: Path) -> None:
    (workdir / "junk.db").write_text("these are not the bytes of a SQLite database " * 20)
    outcome = run(workdir, "migrate", database_url=f"sqlite:///{workdir}/junk.db")
    assert_short(outcome, ExitCode.DATABASE, str(workdir / "junk.db"), "not a database")


def test_an_unreachable_postgresql_names_the_url_without_its_password(workdir: Path) -> None:
    port = free_port()
    url = f"postgresql+psycopg://guestgate:s3cret-pw@127.0.0.1:{port}/guestgate"
    outcome = run(workdir, "migrate", database_url=url)
    text = assert_short(outcome, ExitCode.DATABASE, f"127.0.0.1:{port}/guestgate", "refused")
    assert "s3cret-pw" not in text


@pytest.mark.parametrize(
    ("url", "named"),
    [("nonsense", "not a database URL"), ("mysql://u@h/db", "mysql://u@h/db cannot be used")],
)
def test_a_database_url_guestgate_cannot_use_is_a_configuration_error(workdir: Path, url: str, named: str) -> None:
    outcome = run(workdir, "migrate", database_url=url)
    assert_short(outcome, ExitCode.CONFIG, "GUESTGATE_DATABASE_URL", named)


def test_a_port_in_use_is_refused_before_migrations_and_jobs(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = run(workdir, "serve", port=str(port), data_dir="var")
        assert_short(outcome, ExitCode.ADDRESS, f"127.0.0.1:{port} is already in use", "GUESTGATE_PORT")
        assert "jobs_started" not in outcome.stderr and "migration" not in outcome.stderr.lower()
        # Settings only: no database was created, so no migration ran.
        assert not (workdir / "var" / "guestgate.db").exists()
        flag = run(workdir, "serve", "--port", str(port), data_dir="var")
        assert_short(flag, ExitCode.ADDRESS, "--port")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--host", "192.0.2.77"), "192.0.2.77 is not an address of this machine"),
        (("--host", "no-such-host.invalid"), "'no-such-host.invalid' (--host or GUESTGATE_HOST)"),
        (("--port", "70000"), "must be between 1 and 65535"),
    ],
)
def test_an_unusable_listen_address_is_named(workdir: Path, args: tuple[str, ...], named: str) -> None:
    outcome = run(workdir, "serve", *args, data_dir="var")
    code = ExitCode.CONFIG if "70000" in args else ExitCode.ADDRESS
    assert_short(outcome, code, named)
    assert not (workdir / "var" / "guestgate.db").exists()


def test_a_worker_metrics_port_in_use_stops_the_worker_before_it_migrates(workdir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        outcome = run(workdir, "worker", worker_metrics_port=str(port), data_dir="var")
    assert_short(outcome, ExitCode.ADDRESS, f"127.0.0.1:{port} is already in use", "GUESTGATE_WORKER_METRICS_PORT")
    assert not (workdir / "var" / "guestgate.db").exists()


def test_a_wrong_command_line_is_exit_2(workdir: Path) -> None:
    assert run(workdir, "serve", "--no-such-option").code == ExitCode.USAGE
    assert run(workdir, "token", "create", "--org", "a", "--ttl", "soon").code == ExitCode.USAGE


@pytest.mark.parametrize("log_json", ["false", "true"], ids=["console-logs", "json-logs"])
def test_serve_on_port_0_names_the_port_it_took_in_every_url(workdir: Path, log_json: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUESTGATE_")}
    env.update(
        {
            "GUESTGATE_DATA_DIR": str(workdir / "var"),
            "GUESTGATE_JWT_SECRET": TEST_KEYS["jwt_secret"],
            "GUESTGATE_SIGNING_KEY": TEST_KEYS["signing_key"],
            "GUESTGATE_ENCRYPTION_KEY": TEST_KEYS["encryption_key"],
            "GUESTGATE_LOG_JSON": log_json,
        }
    )
    process = subprocess.Popen(
        [str(GUESTGATE), "serve", "--port", "0", "--banner"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Application startup complete" in line:
                break
        output = "".join(lines)
        port = int(re.search(r"Swagger UI\): http://127\.0\.0\.1:(\d+)/docs", output).group(1))  # type: ignore[union-attr]
        assert port != 0 and "serve.listening" in output
        assert re.search(rf"Portal preview:\s+http://127\.0\.0\.1:{port}/guest/preview/", output)
        # uvicorn starts listening on the bound socket right after the application's start-up.
        assert healthz(port) == 200
        assert "color_message" not in output
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0


def healthz(port: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code
        except httpx2.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_the_readme_exit_code_table_is_the_code_s() -> None:
    text = README.read_text()
    start = text.index("<!-- exit-codes:")
    table = text[start : text.index("\n\n", text.index("| code | meaning |", start))]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", table, flags=re.MULTILINE)
    assert [(int(code), meaning) for code, meaning in rows] == [
        (int(code), meaning) for code, meaning in EXIT_CODE_MEANINGS.items()
    ]
    assert {int(code) for code in ExitCode} == {int(code) for code, _ in rows}
