"""Benchmark: bulk credits from a CSV (loyalty/bulk_credits.py) at the size Open Loyalty's
admins saw theirs give up (about 70,000 members), against a tenth of it.

The preview reads the file as a stream a thousand lines at a time, so its time should grow
with the lines (the ratio of time per line, large to small, near 1) and its memory should
not (the peak Python allocation of the large file over the small one, near 1). Applying
runs one short transaction per line on a worker: its rate is compared with the same credits
made one by one through `loyalty.adjustments.adjust`, the admin's single adjustment (the
ratio near 1: the batch adds no cost per line). Starts embedded servers when MONGODB_URI /
REDIS_URL are unset. `python bench/bulk_credit.py [owners] [applied]`
"""

from __future__ import annotations

import io
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import load, servers  # noqa: E402


def _owners(count: int) -> list[str]:
    from bson import ObjectId

    from accounts.models import User

    ids = []
    for start in range(0, count, 5000):
        users = [
            User(
                id=ObjectId(),
                email=f"bulk{start + n}@bench.example",
                password_hash="x",
                display_name=f"Owner {start + n}",
                city_code="SZ",
                referral_code=f"B{ObjectId()}",
            ).to_mongo()
            for n in range(min(5000, count - start))
        ]
        User._get_collection().insert_many(users)
        ids += [str(user["_id"]) for user in users]
    return ids


def _file(ids: list[str], reason: str) -> io.BytesIO:
    lines = "".join(f"{owner},100,{reason}\n" for owner in ids)
    return io.BytesIO(("account,points,reason\n" + lines).encode())


def _preview(admin, ids: list[str], reason: str) -> tuple[float, int, object]:
    from loyalty import bulk_credits

    upload = _file(ids, reason)
    tracemalloc.start()
    started = time.perf_counter()
    job = bulk_credits.preview(admin, upload, "bench.csv")
    took = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert job.counts["ready"] == len(ids), job.counts
    return took, peak, job


def main(owners: int, applied: int) -> None:
    with servers("bench-bulk-"):
        from app import create_app
        from app.auth import load_caller
        from loyalty import adjustments, bulk_credits
        from tests.support import make_person

        app = create_app()
        with app.app_context():
            admin = load_caller(make_person("SZ", role="admin").id)
            ids = _owners(owners)
            small_time, small_peak, _ = _preview(admin, ids[: owners // 10], "small")
            large_time, large_peak, _ = _preview(admin, ids, "large")
            _, _, job = _preview(admin, ids[:applied], "applied")
            bulk_credits.start(admin, str(job.pk))
            started = time.perf_counter()
            bulk_credits.apply(str(job.pk))
            bulk_rate = applied / (time.perf_counter() - started)
            started = time.perf_counter()
            for owner in ids[applied : 2 * applied]:
                adjustments.adjust(admin, owner, 100, "one by one")
            single_rate = applied / (time.perf_counter() - started)
    small_lines = owners // 10
    per_line = (large_time / owners) / (small_time / small_lines)
    print(f"bench/bulk_credit.py ({load()}), {owners:,} and {small_lines:,} owners")
    print(
        f"  preview: {large_time:.1f} s for {owners:,} lines, {small_time:.1f} s for"
        f" {small_lines:,}; per line large/small {per_line:.2f} (target <= 1.5)"
    )
    print(
        f"  preview peak memory: {large_peak / 2**20:.1f} MiB vs {small_peak / 2**20:.1f} MiB:"
        f" {large_peak / small_peak:.2f}x for 10x the lines (target <= 2)"
    )
    print(
        f"  apply: {bulk_rate:.0f} lines/s vs {single_rate:.0f} adjustments/s one by one:"
        f" {bulk_rate / single_rate:.2f} (target >= 0.8); {owners:,} lines in about"
        f" {owners / bulk_rate / 60:.0f} min on one worker thread"
    )


if __name__ == "__main__":
    main(
        int(sys.argv[1]) if len(sys.argv) > 1 else 70_000,
        int(sys.argv[2]) if len(sys.argv) > 2 else 1_000,
    )
