"""Benchmark: matching an ecosystem partner's daily statement against the ledger.

The ledger holds LEDGER partner transactions (each with its ledger entry unless
`--no-entries`), spread over days; day A holds SMALL of them, day B holds LARGE. Each day's
statement lists its transactions with a few differences (one line in a thousand: points
off, another member, a line we lack, a line doubled, one of ours left out). Matching is
timed three ways, each against a raw pymongo matcher doing the same lookups (the chunks of
lines, the day's transactions in one indexed range, the lines not among them by id in
batches of 1,000, the exceptions upserted in bulk) with nothing else around them, in
alternating rounds:

  1. day A (SMALL lines) while the ledger holds only days A and B;
  2. day A again once the ledger is filled up to LEDGER transactions;
  3. day B (LARGE lines) on the full ledger.

2 against 1 shows the cost does not grow with the ledger; 3 against 2 that it grows
linearly with the statement. The statement of day B is also sent once through the HTTP API
(gunicorn as the README runs it), signed, to time its upload (202) as a partner sees it.

The embedded SecantusDB inserts about 700 documents a second one at a time, so the ledger is
written with insert_many in batches of BATCH (the script measures both rates first).

Starts embedded servers when MONGODB_URI / REDIS_URL are unset.
`python bench/statements.py [--ledger 1000000] [--small 10000] [--large 100000] [--rounds 2]`
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
from bson import ObjectId
from pymongo import UpdateOne

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import api_server, load, servers  # noqa: E402

BATCH = 10_000
SHANGHAI = ZoneInfo("Asia/Shanghai")
MEMBERS = [ObjectId() for _ in range(1_000)]
# One line in this many differs from the ledger, in each of the ways below.
EVERY = 1_000


def progress(text: str) -> None:
    """A line on stderr while the run goes on (a run at full size takes most of an hour)."""
    print(f"  ... {text}", file=sys.stderr, flush=True)


def noon(day: date) -> datetime:
    return datetime.combine(day, clock_time(12), SHANGHAI).astimezone(UTC)


def measure_insert_rates(db: Any) -> tuple[float, float]:
    """Documents per second into a collection indexed like partner_transactions: one at a
    time, and with insert_many in batches of BATCH."""
    scratch = db["bench_insert_rate"]
    scratch.create_index([("partner_id", 1), ("partner_txn_id", 1)], unique=True)
    scratch.create_index([("partner_id", 1), ("business_day", 1)])
    partner = ObjectId()

    def document(number: int) -> dict[str, Any]:
        return {"partner_id": partner, "partner_txn_id": f"r{number}", "business_day": "x"}

    started = time.perf_counter()
    for number in range(1_000):
        scratch.insert_one(document(number))
    one_at_a_time = 1_000 / (time.perf_counter() - started)
    started = time.perf_counter()
    for first in range(1_000, 31_000, BATCH):
        scratch.insert_many([document(n) for n in range(first, first + BATCH)], ordered=False)
    batched = 30_000 / (time.perf_counter() - started)
    scratch.drop()
    return one_at_a_time, batched


def write_day(
    db: Any, partner_id: ObjectId, day: date, count: int, prefix: str, entries: bool
) -> list[dict[str, Any]]:
    """`count` credits and debits of business day `day`, with their ledger entries; returns
    the transactions (for the statement)."""
    now = datetime.now(UTC)
    written: list[dict[str, Any]] = []
    for first in range(0, count, BATCH):
        transactions, ledger = [], []
        for number in range(first, min(count, first + BATCH)):
            entry_id = ObjectId()
            kind = "debit" if number % 5 == 0 else "credit"
            points = 10 + number % 90
            txn = {
                "partner_id": partner_id,
                "partner_txn_id": f"{prefix}-{number:07d}",
                "kind": kind,
                "user_id": MEMBERS[number % len(MEMBERS)],
                "points": points,
                "reversed": 0,
                "entry_id": entry_id,
                "entry_ids": [entry_id],
                "balance_after": 1_000,
                "occurred_at": noon(day) + timedelta(seconds=number % 36_000),
                "business_day": day.isoformat(),
                "created_at": now,
            }
            transactions.append(txn)
            if entries:
                ledger.append(
                    {
                        "_id": entry_id,
                        "account_id": txn["user_id"],
                        "kind": "redeem" if kind == "debit" else "earn",
                        "amount": -points if kind == "debit" else points,
                        "balance_after": 1_000,
                        "reason": "bench",
                        "source": {"rule": f"partner.{kind}", "type": "partner"},
                        "idempotency_key": f"partner:{partner_id}:{txn['partner_txn_id']}",
                        "lots": [],
                        "created_at": now,
                    }
                )
        db.partner_transactions.insert_many(transactions, ordered=False)
        if ledger:
            db.ledger_entries.insert_many(ledger, ordered=False)
        written.extend(transactions)
    return written


def statement_lines(day: date, ours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines saying what `ours` says, but for one in EVERY of each difference."""
    lines = []
    for number, txn in enumerate(ours):
        if number % EVERY == 1:
            continue  # missing theirs
        line = {
            "partner_txn_id": txn["partner_txn_id"],
            "member_id": str(txn["user_id"]),
            "kind": txn["kind"],
            "points": txn["points"] + (5 if number % EVERY == 2 else 0),
            "occurred_at": txn["occurred_at"],
        }
        if number % EVERY == 3:
            line["member_id"] = str(MEMBERS[(MEMBERS.index(txn["user_id"]) + 1) % len(MEMBERS)])
        lines.append(line)
        if number % EVERY == 4:
            lines.append(dict(line))  # duplicate
        if number % EVERY == 5:
            lines.append({**line, "partner_txn_id": f"theirs-only-{day}-{number}"})
    return lines


def store_statement(partner: Any, day: date, lines: list[dict[str, Any]]) -> tuple[str, str]:
    from loyalty import statements

    totals = statements.control_totals(lines)
    received = statements.receive_statement(
        partner,
        day=day,
        count=totals["count"],
        total_credit=totals["total_credit"],
        total_debit=totals["total_debit"],
        lines=lines,
        body=f"bench {day} {time.time()}".encode(),
    )
    return received["_id"], str(received["upload_id"])


def raw_match(db: Any, partner_id: ObjectId, day: str, upload_id: str) -> tuple[int, int]:
    """The same lookups and writes, in raw pymongo: the chunks, the day's transactions,
    the others by id, the exceptions upserted."""
    lines = [
        line
        for chunk in db.statement_chunks.find({"upload_id": ObjectId(upload_id)}).sort("index", 1)
        for line in chunk["lines"]
    ]
    fields = {"partner_txn_id": 1, "kind": 1, "user_id": 1, "points": 1, "occurred_at": 1}
    ours = {
        txn["partner_txn_id"]: txn
        for txn in db.partner_transactions.find(
            {"partner_id": partner_id, "business_day": day}, fields
        )
    }
    wanted = sorted({line["partner_txn_id"] for line in lines} - ours.keys())
    others = {}
    for first in range(0, len(wanted), 1_000):
        query = {"partner_id": partner_id, "partner_txn_id": {"$in": wanted[first : first + 1_000]}}
        others.update(
            (txn["partner_txn_id"], txn) for txn in db.partner_transactions.find(query, fields)
        )
    start = datetime.combine(date.fromisoformat(day), clock_time(0), SHANGHAI).astimezone(UTC)
    end = start + timedelta(days=1)
    copies = Counter(line["partner_txn_id"] for line in lines)
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    matched = 0
    for line in lines:
        txn_id = line["partner_txn_id"]
        if txn_id in seen:
            continue
        seen.add(txn_id)
        if copies[txn_id] > 1:
            found.append(("duplicate", txn_id))
        txn = ours.get(txn_id) or others.get(txn_id)
        if txn is None:
            found.append(("missing_ours", txn_id))
        elif txn["kind"] != line["kind"]:
            found.append(("kind_mismatch", txn_id))
        elif str(txn["user_id"]) != line["member_id"]:
            found.append(("member_mismatch", txn_id))
        elif txn["points"] != line["points"]:
            found.append(("points_mismatch", txn_id))
        elif not start <= line["occurred_at"] < end:
            found.append(("late", txn_id))
        else:
            matched += 1
    found += [("missing_theirs", txn_id) for txn_id in ours.keys() - seen]
    writes = [
        UpdateOne(
            {"_id": f"{partner_id}|{day}|{kind}|{txn_id}"},
            {"$set": {"kind": kind, "partner_txn_id": txn_id}},
            upsert=True,
        )
        for kind, txn_id in found
    ]
    for first in range(0, len(writes), 1_000):
        db.raw_exceptions.bulk_write(writes[first : first + 1_000], ordered=False)
    return matched, len(found)


def timed(work: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def compare(db: Any, partner: Any, day: date, rounds: int) -> tuple[float, float, int, int]:
    """Best of `rounds` alternating runs of the service's matcher and the raw one: seconds
    each, lines matched and exceptions found (asserted equal on both sides)."""
    from loyalty import statements
    from loyalty.models import Statement

    statement_id, upload_id = store_statement(partner, day, _lines[day])
    ours_times, raw_times = [], []
    for _ in range(rounds):
        seconds, _ = timed(lambda: statements.match_statement(statement_id, upload_id))
        ours_times.append(seconds)
        seconds, (matched, found) = timed(
            lambda: raw_match(db, partner.pk, day.isoformat(), upload_id)
        )
        raw_times.append(seconds)
    stored = Statement._get_collection().find_one({"_id": statement_id})
    assert stored["matched"] == matched, (stored["matched"], matched)
    assert sum(stored["exception_counts"].values()) == found, (stored["exception_counts"], found)
    return min(ours_times), min(raw_times), matched, found


_lines: dict[date, list[dict[str, Any]]] = {}


def upload_through_http(partner: Any, secret: str, day: date) -> tuple[float, int, int]:
    """Send day B's statement signed through the API: seconds, status, bytes."""
    from loyalty import statements

    lines = [{**line, "occurred_at": line["occurred_at"].isoformat()} for line in _lines[day]]
    totals = statements.control_totals(_lines[day])
    body = json.dumps(
        {
            "date": day.isoformat(),
            "count": totals["count"],
            "total_credit": totals["total_credit"],
            "total_debit": totals["total_debit"],
            "lines": lines,
        }
    ).encode()
    with api_server(workers=2, threads=2) as base_url:
        stamp = str(int(time.time()))
        signature = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256)
        started = time.perf_counter()
        answer = requests.post(
            f"{base_url}/api/v1/partner/statements",
            data=body,
            headers={
                "Content-Type": "application/json",
                "X-Partner-Key": partner.key,
                "X-Timestamp": stamp,
                "X-Signature": signature.hexdigest(),
            },
            timeout=600,
        )
        seconds = time.perf_counter() - started
    if answer.status_code != 202:
        raise SystemExit(
            f"bench: the statement upload answered {answer.status_code}: {answer.text}"
        )
    return seconds, answer.status_code, len(body)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ledger", type=int, default=1_000_000, help="partner transactions")
    parser.add_argument("--small", type=int, default=10_000, help="lines of day A's statement")
    parser.add_argument("--large", type=int, default=100_000, help="lines of day B's statement")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--no-entries", action="store_true", help="write no ledger entries beside the transactions"
    )
    parser.add_argument("--no-http", action="store_true", help="skip the upload through the API")
    args = parser.parse_args()
    entries = not args.no_entries
    before = load()
    with servers("bench-statements-"):
        # A server busy reading 100,000 documents for one query may answer the client's
        # heartbeat late; with the 2 s default the client would give the query up.
        uri = os.environ["MONGODB_URI"]
        if "connecttimeoutms" not in uri.lower():
            separator = "&" if "?" in uri else "?"
            os.environ["MONGODB_URI"] = f"{uri}{separator}connectTimeoutMS=60000"
        from app import create_app
        from app.db import database
        from loyalty.models import EcosystemPartner

        app = create_app({"LOG_LEVEL": "WARNING"})
        with app.app_context():
            db = database()
            one_at_a_time, batched = measure_insert_rates(db)
            secret = "bench-secret"
            partner = EcosystemPartner(
                name="BenchCharge", key="pk_bench", secret=secret, max_points_per_txn=1_000
            ).save()
            today = datetime.now(SHANGHAI).date()
            day_a, day_b = today - timedelta(days=2), today - timedelta(days=3)
            started = time.perf_counter()
            for day, count, prefix in ((day_a, args.small, "a"), (day_b, args.large, "b")):
                _lines[day] = statement_lines(
                    day, write_day(db, partner.pk, day, count, prefix, entries)
                )
            first_size = args.small + args.large
            progress(f"ledger of {first_size:,} written in {time.perf_counter() - started:,.0f} s")
            small_ledger = compare(db, partner, day_a, args.rounds)
            progress(f"day A on {first_size:,}: {small_ledger}")
            filler, day = args.ledger - first_size, day_b
            while filler > 0:
                day -= timedelta(days=1)
                written = min(filler, args.large)
                write_day(db, partner.pk, day, written, f"f{day:%Y%m%d}", entries)
                filler -= written
            built = time.perf_counter() - started
            progress(f"ledger of {args.ledger:,} written in {built:,.0f} s")
            full_small = compare(db, partner, day_a, args.rounds)
            progress(f"day A on {args.ledger:,}: {full_small}")
            full_large = compare(db, partner, day_b, args.rounds)
            progress(f"day B on {args.ledger:,}: {full_large}")
            total = db.partner_transactions.estimated_document_count()
            ledger_entries = db.ledger_entries.estimated_document_count()
            upload = None if args.no_http else upload_through_http(partner, secret, day_b)
    print(
        f"statements benchmark: {total:,} partner transactions ({ledger_entries:,} ledger "
        f"entries), statements of {args.small:,} and {args.large:,} lines, best of "
        f"{args.rounds} alternating rounds; {before} before, {load()} after"
    )
    print(
        f"  inserts: {one_at_a_time:,.0f} docs/s one at a time, {batched:,.0f} docs/s with "
        f"insert_many of {BATCH:,}; ledger built in {built:,.0f} s"
    )
    rows = (
        (f"day A, {args.small:,} lines, ledger {first_size:,}", small_ledger),
        (f"day A, {args.small:,} lines, ledger {total:,}", full_small),
        (f"day B, {args.large:,} lines, ledger {total:,}", full_large),
    )
    for name, (ours, raw, matched, found) in rows:
        print(
            f"  {name:<40} service {ours:7.2f} s   raw {raw:7.2f} s   service/raw "
            f"{ours / raw:.2f}x   {matched:,} matched, {found:,} exceptions"
        )
    grown = full_small[0] / small_ledger[0], full_small[1] / small_ledger[1]
    print(
        f"  ledger grown {total / first_size:.1f}x: day A took {grown[0]:.2f}x as long "
        f"(service), {grown[1]:.2f}x (raw)"
    )
    print(
        f"  statement {args.large / args.small:.0f}x longer: {full_large[0] / full_small[0]:.1f}x "
        f"as long (service), {full_large[1] / full_small[1]:.1f}x (raw); per line "
        f"{full_small[0] / args.small * 1e6:.0f} and {full_large[0] / args.large * 1e6:.0f} µs"
    )
    if upload is not None:
        print(
            f"  day B's statement sent signed through the API: {upload[2] / 1e6:.1f} MB, "
            f"{upload[1]} in {upload[0]:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
