"""`kill -9` of `guestgate serve` in the middle of concurrent coupon sign-ins, then a restart.

Whatever a guest was told stands: every sign-in answered 200 has its session after the restart.
A redemption is one transaction, so no coupon is redeemed without a session nor a session left
without its redeemed coupon. A guest whose answer was lost simply signs in again and gets in.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from guestgate.db import make_engine
from tests.utils.faults import Answer, Server, guest_ip, post_sign_in, seed_portal, sign_in_form

GUESTS = 16
KILL_AFTER_SUCCESSES = 300
COUPONS = 6000


def database_state(db_url: str, instance_id: str) -> tuple[set[str], int, int, int]:
    """(session addresses, redeemed coupons, sessions without a redeemed coupon, redeemed coupons without a session)."""
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ips = {row[0] for row in conn.execute(text("SELECT ip_address FROM site_users"))}
        redeemed = conn.scalar(
            text("SELECT count(*) FROM coupons WHERE instance_id = :i AND redeemed_at IS NOT NULL"),
            {"i": instance_id},
        )
        orphan_sessions = conn.scalar(
            text(
                "SELECT count(*) FROM site_users u LEFT JOIN coupons c ON c.id = u.coupon_id "
                "WHERE c.id IS NULL OR c.redeemed_at IS NULL"
            )
        )
        orphan_coupons = conn.scalar(
            text(
                "SELECT count(*) FROM coupons c WHERE c.redeemed_at IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM site_users u WHERE u.coupon_id = c.id)"
            )
        )
    engine.dispose()
    return ips, redeemed or 0, orphan_sessions or 0, orphan_coupons or 0


@pytest.mark.slow
def test_kill_9_during_sign_ins_keeps_every_answered_session_and_no_half_redemption(
    db_url: str, servers: list[Server], tmp_path: Path
) -> None:
    portal = seed_portal(db_url, COUPONS)
    server = Server(db_url, tmp_path / "var").start()
    servers.append(server)
    settings = server.settings()
    forms = [sign_in_form(settings, portal, guest_ip(i), code) for i, code in enumerate(portal.codes)]
    answers: dict[int, Answer] = {}
    lock = threading.Lock()
    stop = threading.Event()
    taken = 0

    def guest() -> None:
        nonlocal taken
        while not stop.is_set():
            with lock:
                if taken >= len(forms):
                    return
                index, taken = taken, taken + 1
            answer = post_sign_in(server.port, forms[index], guest_ip(index))
            with lock:
                answers[index] = answer

    threads = [threading.Thread(target=guest) for _ in range(GUESTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 120
    while sum(a.status == 200 for a in list(answers.values())) < KILL_AFTER_SUCCESSES:
        assert time.monotonic() < deadline, "the sign-ins did not get going"
        time.sleep(0.005)
    server.kill9()
    assert server.process is not None and server.process.returncode == -signal.SIGKILL
    # Requests already sent when the process died, and a few more refused, then the guests stop.
    time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    succeeded = {guest_ip(i) for i, a in answers.items() if a.status == 200}
    unanswered = sorted(i for i, a in answers.items() if a.status != 200)
    assert {a.status for a in answers.values()} <= {0, 200}, "a sign-in got an answer other than success"
    assert len(succeeded) < len(forms), "the kill came after every sign-in was done"
    # Refused connections never reached the server; these were in flight when it died.
    cut = [i for i in unanswered if not answers[i].error.startswith("ConnectionRefusedError")]
    assert cut, "no sign-in was in flight when the server was killed"

    restarted = Server(db_url, tmp_path / "var").start()
    servers.append(restarted)
    ips, redeemed, orphan_sessions, orphan_coupons = database_state(db_url, portal.instance_id)
    assert succeeded <= ips, "a sign-in answered 200 lost its session"
    assert ips <= {guest_ip(i) for i in answers}
    assert (redeemed, orphan_sessions, orphan_coupons) == (len(ips), 0, 0)

    # Every guest left without an answer tries again on the restarted server and gets in, once.
    for index in unanswered:
        again = post_sign_in(restarted.port, forms[index], guest_ip(index))
        assert again.status == 200, again.body[-500:]
        assert b"Time remaining" in again.body
    ips, redeemed, orphan_sessions, orphan_coupons = database_state(db_url, portal.instance_id)
    assert ips == {guest_ip(i) for i in answers}
    assert (redeemed, orphan_sessions, orphan_coupons) == (len(answers), 0, 0)
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
