"""Load test: hundreds of concurrent /predict calls against the real service on 127.0.0.1.

    python -m bench.load [--requests 100000] [--concurrency 300] [--duration 60] [--max-queue 8]

Run from the repository root. Starts `python -m ocr_backend` (LANG_LIST=en,
HOST=127.0.0.1, a free port), warms it up, then sends the requests through a
bounded asyncio httpx client while probing /health every 20 ms, and prints:
requests, 200s, 503s, lost, /health p99, and the service's RSS before and
after. Sends nothing beyond 127.0.0.1. tests/test_process.py runs a short form
of the same (tests/support/load.py holds what both use).
"""

from __future__ import annotations

import argparse
import sys

from tests.support.load import measure
from tests.support.service import ServiceProcess


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=300)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--max-queue", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    env = {"MAX_QUEUE": str(args.max_queue), "THREADS": str(args.threads), "LOG_LEVEL": "WARNING"}
    with ServiceProcess(**env) as service:
        took = service.wait_healthy()
        print(f"service healthy after {took:.1f} s ({env})")
        report = measure(
            service, requests=args.requests, concurrency=args.concurrency, duration=args.duration
        )
    print("\n".join(report.lines()))
    print(f"exit code after SIGTERM: {service.stop()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
