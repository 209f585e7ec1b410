"""A schedule-runner process for the exactly-once tests: `python -m tests.schedules.runner_process URL NOW`."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from guestgate.runtime import Runtime
from guestgate.schedules import jobs
from tests.utils.settings import make_settings


def main() -> None:
    url, now = sys.argv[1], datetime.fromisoformat(sys.argv[2])
    runtime = Runtime.build(make_settings(url, Path(sys.argv[3])))
    try:
        # Small claims so several processes interleave and a kill lands between commits.
        outcomes = jobs.run_due(runtime=runtime, now=now, claim_batch=5)
        print(len(outcomes), flush=True)
    finally:
        runtime.close()


if __name__ == "__main__":
    main()
