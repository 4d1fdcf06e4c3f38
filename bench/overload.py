"""Overload: drive the API (gunicorn, 2 workers x 8 threads, as `make run` on loopback) with
an open-loop arrival rate above what this machine serves, and show how it degrades.

locust (bench/locust/overload.py, headless, loopback) runs USERS simulated owners, each
sending a request every USERS/RATE seconds whether or not earlier ones were answered, for
DURATION seconds; a request unanswered after 10 s counts as lost. Prints the share of 503
and 429 answers and of lost requests, and p50/p99 of the accepted (2xx) requests.
Runs the API twice: without a limit, then with admission control (app/admission.py).
`python bench/overload.py [rate] [duration]` (`make overload`); starts an embedded
SecantusDB and Redis when MONGODB_URI / REDIS_URL are unset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import api_server, owners, servers  # noqa: E402

# Each user waits for its answer before its next request, so as many users as the rate
# times the longest wait keep the arrival rate open-loop.
USERS = 1000
TOKENS = 200
EVENTS = 20


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def _seed(count: int) -> list[str]:
    """Tokens of owners of SZ with live sessions, and published events in SZ to list."""
    from bson import ObjectId

    from accounts.models import City
    from accounts.services import create_city
    from app.clock import utcnow
    from events.models import PUBLISHED, Event

    if not City.objects(code="SZ").first():
        create_city("SZ", "Shenzhen", "Guangdong", "Asia/Shanghai")
    for day in range(EVENTS):
        starts_at = utcnow() + timedelta(days=day + 1)
        Event(
            city_code="SZ",
            organizer_id=ObjectId(),
            title=f"Overload {day}",
            venue="Loopback",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2),
            registration_closes_at=starts_at,
            capacity=50,
            seats_left=50,
            status=PUBLISHED,
        ).save()
    return [token for _, token in owners(count)]


def run_locust(base_url: str, tokens: list[str], rate: float, duration: int) -> list:
    with tempfile.TemporaryDirectory(prefix="overload-") as scratch:
        token_file, results = Path(scratch) / "tokens", Path(scratch) / "results.json"
        token_file.write_text("\n".join(tokens))
        subprocess.run(
            [
                str(Path(sys.executable).parent / "locust"),
                "-f",
                str(ROOT / "bench" / "locust" / "overload.py"),
                "--headless",
                "--host",
                base_url,
                "--users",
                str(USERS),
                "--spawn-rate",
                str(USERS),
                "--run-time",
                f"{duration}s",
                "--stop-timeout",
                "11",
                "--only-summary",
                "--loglevel",
                "ERROR",
            ],
            cwd=ROOT,
            env={
                **os.environ,
                "OVERLOAD_TOKENS": str(token_file),
                "OVERLOAD_RATE": str(rate / USERS),
                "OVERLOAD_RESULTS": str(results),
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
            timeout=duration + 60,
        )
        return json.loads(results.read_text())


def report(samples: list, duration: int, label: str) -> None:
    statuses = Counter(status for status, _ in samples)
    accepted = [ms for status, ms in samples if 200 <= status < 300]
    total = len(samples) or 1
    refused = {"503": statuses[503], "429": statuses[429], "lost": statuses[0]}
    other = total - len(accepted) - sum(refused.values())
    shares = "   ".join(f"{name} {100 * count / total:5.1f} %" for name, count in refused.items())
    print(
        f"  {label:<28} sent {len(samples) / duration:5.0f}/s   served "
        f"{len(accepted) / duration:5.0f}/s   {shares}   other {other}   accepted p50 "
        f"{_percentile(accepted, 0.5):5.0f} ms   p99 {_percentile(accepted, 0.99):5.0f} ms"
    )


# Without admission control, as `make run` runs the API but with 8 threads; with it, more
# threads than admitted requests, so the surplus is answered 503 at once (app/admission.py).
CONFIGURATIONS = {
    "gunicorn 2x8, no limit": (8, {}),
    "gunicorn 2x32, 4 in flight": (32, {"MAX_REQUESTS_IN_FLIGHT": "4"}),
}


def main() -> int:
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 400.0
    duration = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with servers("bench-overload-"):
        from app import create_app

        app = create_app({"LOG_LEVEL": "WARNING"})
        with app.app_context():
            tokens = _seed(TOKENS)
        print(
            f"overload benchmark: {rate:.0f} requests/s offered for {duration} s by {USERS} "
            "locust users (GET /me/points 3:1 GET /events; 10 s client timeout), loopback"
        )
        for label, (threads, environ) in CONFIGURATIONS.items():
            with api_server(workers=2, threads=threads, environ=environ) as base_url:
                report(run_locust(base_url, tokens, rate, duration), duration, label)
    return 0


if __name__ == "__main__":
    sys.exit(main())
