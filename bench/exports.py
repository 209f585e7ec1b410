"""Printable coupon sheets: time to render N codes as PDF cards (cold QR cache, then warm).

.venv/bin/python bench/exports.py [--codes 500]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from guestgate.coupons import codes, export


@dataclass(frozen=True)
class Row:
    id: str
    code: str
    expires_at: datetime
    created_at: datetime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    now = datetime.now(UTC)
    drawn = {codes.generate() for _ in range(args.codes * 2)}
    rows = [
        Row(f"id-{i}", code, now + timedelta(hours=8), now)
        for i, code in enumerate(sorted(drawn)[: args.codes])
    ]
    print(f"{args.codes} codes, A4, {args.rounds} rounds each")
    print(f"{'cache':<8}{'best s':>9}{'median s':>10}{'pages':>7}{'KiB':>8}")
    for label in ("cold", "warm"):
        timings, size = [], 0
        for _ in range(args.rounds):
            if label == "cold":
                export._qr_operators.cache_clear()
                export._best_mask.cache_clear()
            started = time.perf_counter()
            pdf = export.to_pdf(
                rows,
                instance_name="Lobby Wi-Fi",
                accent_color="#0396d5",
                portal_url="https://wifi.example.com/guest/entry",
            )
            timings.append(time.perf_counter() - started)
            size = len(pdf)
        timings.sort()
        pages = -(-args.codes // (export.COLUMNS * export.ROWS))
        print(f"{label:<8}{timings[0]:>9.3f}{timings[len(timings) // 2]:>10.3f}{pages:>7}{size / 1024:>8.0f}")


if __name__ == "__main__":
    main()
