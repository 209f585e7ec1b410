"""A delivery worker for the kill tests: `python -m tests.faults.delivery_process URL NOW DATA_DIR SMTP_PORT`."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from guestgate.notifications import delivery
from guestgate.runtime import Runtime
from tests.utils.settings import make_settings


def main() -> None:
    url, now, data_dir, port = (
        sys.argv[1],
        datetime.fromisoformat(sys.argv[2]),
        Path(sys.argv[3]),
        int(sys.argv[4]),
    )
    settings = make_settings(url, data_dir, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none")
    runtime = Runtime.build(settings)
    try:
        print(delivery.deliver_due_sync(runtime=runtime, now=now), flush=True)
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
