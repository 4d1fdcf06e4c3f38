"""Benchmark: the engagement backbone against raw Dramatiq, on the same Redis and MongoDB.

raw:      no-op Dramatiq messages, sent and processed by real worker processes.
backbone: domain events from their outbox insert, through the dispatcher, Redis and the
          same workers, to handled by a no-op transactional handler (marker included).

Prints both rates and backbone/raw (target: >= 0.5). Starts embedded servers when
MONGODB_URI / REDIS_URL are unset. `python bench/outbox.py [events]`
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bson import ObjectId  # noqa: E402

from bench.support import servers  # noqa: E402

WORKER_PROCESSES = 2
WORKER_THREADS = 8
QUEUE = "bench"


def _declare() -> None:
    """The no-op actor and handler, declared once a broker is configured (by create_app
    here, by workers/main.py in the worker processes that import this module)."""
    import dramatiq

    from app.handlers import handles
    from app.outbox import NoPayload, declare

    @dramatiq.actor(actor_name="bench.noop", queue_name=QUEUE, max_retries=0)
    def noop() -> None:
        """Nothing: the raw cost of a Dramatiq message."""

    @handles(
        declare("bench.noop", NoPayload, subject_type="bench", about="Nothing: a benchmark's"),
        name="bench.noop",
    )
    def noop_handler(event, session) -> None:
        """Nothing: only the backbone's own cost remains."""


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: timed out waiting for {what}")
        time.sleep(0.05)


def _start(command: list[str], environ: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        command, cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def measure_raw(count: int) -> float:
    import dramatiq

    broker = dramatiq.get_broker()
    actor = broker.get_actor("bench.noop")
    started = time.perf_counter()
    for _ in range(count):
        actor.send()
    broker.join(QUEUE, interval=20, timeout=300_000)
    return count / (time.perf_counter() - started)


def measure_backbone(count: int) -> float:
    from app.clock import utcnow
    from app.handlers import HandledEvent, handlers_for
    from app.outbox import OutboxEvent

    outbox = OutboxEvent._get_collection()
    markers = HandledEvent._get_collection()
    markers.delete_many({})
    ids = [str(ObjectId()) for _ in range(count)]
    started = time.perf_counter()
    for offset in range(0, count, 500):
        outbox.insert_many(
            [
                {
                    "_id": event_id,
                    "type": "bench.noop",
                    "version": 1,
                    "actor_id": None,
                    "subject_type": "bench",
                    "subject_id": event_id,
                    "city_code": None,
                    "payload": {},
                    "occurred_at": utcnow(),
                }
                for event_id in ids[offset : offset + 500]
            ]
        )
    # Polled by primary key: counting the markers scans them on the embedded server, and
    # polling that would take a tenth of the server's time from what is being measured.
    # Events are handled out of order, so once the last is in, the count confirms.
    last = HandledEvent.key(ids[-1], handlers_for("bench.noop")[0].name)
    _wait(
        lambda: (
            markers.find_one({"_id": last}, {"_id": 1}) is not None
            and markers.count_documents({}) >= count
        ),
        600,
        "events handled",
    )
    return count / (time.perf_counter() - started)


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    with servers("bench-outbox-"):
        environ = {
            **os.environ,
            "EXTRA_HANDLER_MODULES": "bench.outbox",
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        processes: list[subprocess.Popen] = []
        from app.embedded import stop_processes

        try:
            from app import create_app

            app = create_app({"LOG_LEVEL": "WARNING"})
            importlib.import_module("bench.outbox")
            with app.app_context():
                processes.append(
                    _start(
                        [
                            str(Path(sys.executable).parent / "dramatiq"),
                            "workers.main",
                            "--processes",
                            str(WORKER_PROCESSES),
                            "--threads",
                            str(WORKER_THREADS),
                            "--queues",
                            QUEUE,
                            "domain_events",
                        ],
                        environ,
                    )
                )
                processes.append(_start([sys.executable, "-m", "workers.dispatcher"], environ))
                # Warm-up: worker processes booted, connections open, code paths loaded.
                measure_raw(200)
                measure_backbone(200)
                raw = measure_raw(count)
                backbone = measure_backbone(count)
        finally:
            stop_processes(processes, 20)
    print(
        f"outbox benchmark: {count} messages, {WORKER_PROCESSES} worker processes x "
        f"{WORKER_THREADS} threads, 1 dispatcher"
    )
    print(f"  raw dramatiq (no-op actor)           {raw:8.0f} msg/s   1.00x")
    print(f"  backbone (outbox -> handled, no-op)  {backbone:8.0f} evt/s   {backbone / raw:.2f}x")
    print(f"  target >= 0.50x: {'met' if backbone / raw >= 0.5 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
else:
    _declare()
