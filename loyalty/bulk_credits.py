"""Bulk credits: an admin uploads a CSV of owners and points (a campaign, a goodwill
gesture after an outage), sees a preview, applies it, and reads a report of every line.

The file has a header naming its columns: `account` (an owner's id, email or phone),
`points` (a whole number, negative to debit) and `reason`, and optionally `reference` (the
admin's own id for the line). It is read as a stream, a thousand lines at a time (the owners
of a chunk found in three reads, its lines stored in one), so a file of a few hundred
thousand owners costs a few seconds and constant memory; Open Loyalty's admins saw its
bulk import give up at about 70,000 members. Applying runs on a worker
(`points.apply_bulk_credit`, started through the outbox like a reconciliation run), one
short transaction per line, so redemptions never wait on it and a crash resumes where it
stopped.

Idempotent per line: each line's ledger entry has a key made of its `reference`, or else
of its owner, points and reason with how many identical lines came before it in the file.
The same file uploaded again previews every line as already applied and applies nothing;
a corrected file applies only the lines that were not. Nobody credits their own account.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

import structlog
from bson import ObjectId
from flask import current_app
from pymongo import UpdateOne
from pymongo.client_session import ClientSession

from accounts.services import find_accounts
from app.auth import Caller
from app.clock import utcnow
from app.db import get_or_404, transaction
from app.errors import DomainError
from app.outbox import NoPayload, record_event
from app.web import paginate
from loyalty import errors, ledger
from loyalty.adjustments import tell_owner_of_correction
from loyalty.domain_events import BULK_CREDIT_REQUESTED
from loyalty.models import (
    ADJUST,
    BULK_DONE,
    BULK_FAILED,
    BULK_PREVIEWED,
    BULK_QUEUED,
    BULK_RUNNING,
    LINE_ALREADY,
    LINE_APPLIED,
    LINE_INVALID,
    LINE_READY,
    LINE_REFUSED,
    LINE_STATUSES,
    BulkCredit,
    BulkCreditLine,
    LedgerEntry,
)

log = structlog.get_logger()

CHUNK = 1000
MAX_POINTS = 1_000_000
MAX_REASON = 500
MAX_REFERENCE = 100
ACCOUNT_COLUMNS = ("account", "user_id", "email", "phone")
# Why a line is not applied, by slug: what the report and the console say.
LINE_ERRORS = (
    "missing_account",
    "unknown_account",
    "invalid_points",
    "missing_reason",
    "reason_too_long",
    "invalid_reference",
    "duplicate_reference",
    "own_points",
    "insufficient_points",
)


# --- the preview -------------------------------------------------------------------------


def preview(
    admin: Caller, upload: IO[bytes], filename: str = "", default_reason: str = ""
) -> BulkCredit:
    """Read an uploaded CSV and store each line with what applying it would do: ready,
    invalid (and why) or already applied. Refused as a whole (422 `invalid_csv`) when it
    is not UTF-8 CSV with the columns it needs, or holds more than BULK_CREDIT_MAX_LINES."""
    admin.require_admin()
    job = BulkCredit(
        id=ObjectId(), filename=filename[:300], uploaded_by=admin.user.pk, created_at=utcnow()
    )
    rows = _rows(upload)
    counts: Counter[str] = Counter()
    points = 0
    lines = 0
    seen_keys: Counter[str] = Counter()
    references: set[str] = set()
    try:
        for chunk in _chunks(rows):
            stored = _check(admin, job.pk, chunk, default_reason.strip(), seen_keys, references)
            BulkCreditLine._get_collection().insert_many(stored, ordered=False)
            for line in stored:
                counts[line["status"]] += 1
                if line["status"] == LINE_READY:
                    points += line["points"]
            lines += len(stored)
        if not lines:
            raise errors.InvalidCsv(errors={"file": ["No lines after the header."]})
    except errors.InvalidCsv:
        # A file refused late (a bad byte on line 90,000) leaves none of its lines behind.
        BulkCreditLine._get_collection().delete_many({"job_id": job.pk})
        raise
    job.counts = {status: counts.get(status, 0) for status in LINE_STATUSES}
    job.points, job.lines = points, lines
    job.save(force_insert=True)
    log.info("bulk_credit_previewed", job_id=str(job.pk), by=admin.id, lines=lines, **counts)
    return job


def _rows(upload: IO[bytes]) -> Iterator[tuple[int, dict[str, str]]]:
    """The file's lines as (line number, columns), decoded as they stream in."""
    reader = csv.DictReader(io.TextIOWrapper(upload, encoding="utf-8-sig", newline=""))
    try:
        header = [name.strip().lower() for name in reader.fieldnames or []]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise errors.InvalidCsv(errors={"file": [f"Not UTF-8 CSV: {exc}"]}) from exc
    reader.fieldnames = header
    missing = [
        name
        for name, present in (
            ("account", any(column in header for column in ACCOUNT_COLUMNS)),
            ("points", "points" in header),
        )
        if not present
    ]
    if missing:
        raise errors.InvalidCsv(errors={"file": [f"Missing columns: {', '.join(missing)}."]})
    limit = current_app.config["BULK_CREDIT_MAX_LINES"]
    try:
        for number, row in enumerate(reader, start=1):
            if number > limit:
                raise errors.InvalidCsv(errors={"file": [f"More than {limit} lines."]})
            if any((value or "").strip() for value in row.values() if isinstance(value, str)):
                yield reader.line_num, row
    except (UnicodeDecodeError, csv.Error) as exc:
        raise errors.InvalidCsv(errors={"file": [f"Line {reader.line_num}: {exc}"]}) from exc


def _chunks(rows: Iterator[tuple[int, dict[str, str]]]) -> Iterator[list[tuple[int, dict]]]:
    chunk: list[tuple[int, dict[str, str]]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _column(row: dict[str, Any], *names: str) -> str:
    for name in names:
        value = row.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _check(
    admin: Caller,
    job_id: ObjectId,
    chunk: list[tuple[int, dict[str, str]]],
    default_reason: str,
    seen_keys: Counter[str],
    references: set[str],
) -> list[dict[str, Any]]:
    """The lines of one chunk as stored: the owners found in one go, each line checked,
    and the lines already in the ledger (an earlier upload) found in one read."""
    found = find_accounts({_column(row, *ACCOUNT_COLUMNS) for _, row in chunk} - {""})
    stored = []
    for number, row in chunk:
        account = _column(row, *ACCOUNT_COLUMNS)
        reason = _column(row, "reason") or default_reason
        reference = _column(row, "reference")
        line: dict[str, Any] = {
            "_id": ObjectId(),
            "job_id": job_id,
            "line": number,
            "account": account[:200],
            "reason": reason[:MAX_REASON],
            "status": LINE_INVALID,
        }
        points = _points(_column(row, "points"))
        owner = found.get(account)
        error = (
            "missing_account" if not account
            else "unknown_account" if owner is None
            else "invalid_points" if points is None
            else "missing_reason" if not reason
            else "reason_too_long" if len(reason) > MAX_REASON
            else "invalid_reference" if len(reference) > MAX_REFERENCE
            else "duplicate_reference" if reference and reference in references
            else "own_points" if owner.id == admin.user.pk
            else None
        )  # fmt: skip
        if error is None and owner is not None and points is not None:
            if reference:
                references.add(reference)
                key = f"bulk:ref:{reference}"
            else:
                content = f"{owner.id}:{points}:{reason}"
                digest = hashlib.sha256(content.encode()).hexdigest()[:32]
                key = f"bulk:{digest}:{seen_keys[digest]}"
                seen_keys[digest] += 1
            line.update(
                status=LINE_READY,
                user_id=owner.id,
                city_code=owner.city_code,
                points=points,
                key=key,
            )
        else:
            line["error"] = error
            if points is not None:  # as written, for the admin mending the line
                line["points"] = points
        stored.append(line)
    keys = {line["key"]: line for line in stored if line["status"] == LINE_READY}
    if keys:
        for entry in LedgerEntry._get_collection().find(
            {"idempotency_key": {"$in": list(keys)}}, {"idempotency_key": 1}
        ):
            line = keys[entry["idempotency_key"]]
            line.update(status=LINE_ALREADY, entry_id=entry["_id"])
    return stored


def _points(text: str) -> int | None:
    """A whole number of points, not zero, within the adjustments' bounds."""
    cleaned = text.replace(",", "").replace("_", "")
    if not cleaned.lstrip("+-").isdigit() or not cleaned.isascii():
        return None
    points = int(cleaned)
    return points if points and abs(points) <= MAX_POINTS else None


# --- applying ----------------------------------------------------------------------------


def start(admin: Caller, job_id: str) -> BulkCredit:
    """Queue a previewed bulk credit for a worker (once: 409 `bulk_credit_started`)."""
    admin.require_admin()
    job = get_or_404(BulkCredit, job_id)

    def unit(session: ClientSession) -> None:
        taken = BulkCredit._get_collection().update_one(
            {"_id": job.pk, "status": BULK_PREVIEWED},
            {"$set": {"status": BULK_QUEUED, "started_by": admin.user.pk}},
            session=session,
        )
        if not taken.matched_count:
            raise errors.BulkCreditStarted()
        record_event(
            session,
            BULK_CREDIT_REQUESTED,
            NoPayload(),
            subject_id=job.pk,
            actor_id=admin.user.pk,
        )

    transaction(unit)
    log.info("bulk_credit_started", job_id=job_id, by=admin.id)
    job.reload()
    return job


def apply(job_id: str, batch: int = 200, now: datetime | None = None) -> BulkCredit | None:
    """Apply a queued bulk credit's ready lines, in line order, a batch at a time; each line
    in a transaction of its own, its status and the job's counts written after each batch.
    A message delivered again (a worker died) resumes with the lines still ready. Returns
    None for a job that is not queued or running."""
    jobs = BulkCredit._get_collection()
    oid = ledger.id_or_404(job_id)
    claimed = jobs.update_one(
        {"_id": oid, "status": {"$in": [BULK_QUEUED, BULK_RUNNING]}},
        {"$set": {"status": BULK_RUNNING, "started_at": now or utcnow()}},
    )
    if not claimed.matched_count:
        return None
    job = jobs.find_one({"_id": oid}) or {}
    lines = BulkCreditLine._get_collection()
    try:
        while True:
            ready = list(
                lines.find({"job_id": oid, "status": LINE_READY}).sort("line", 1).limit(batch)
            )
            if not ready:
                break
            outcomes = [_apply_line(job, line, now) for line in ready]
            lines.bulk_write(
                [
                    UpdateOne({"_id": line["_id"]}, {"$set": outcome})
                    for line, outcome in zip(ready, outcomes, strict=True)
                ],
                ordered=False,
            )
            moved = Counter(outcome["status"] for outcome in outcomes)
            jobs.update_one(
                {"_id": oid},
                {
                    "$inc": {
                        f"counts.{LINE_READY}": -len(ready),
                        **{f"counts.{status}": n for status, n in moved.items()},
                    }
                },
            )
    except Exception as exc:
        jobs.update_one({"_id": oid}, {"$set": {"status": BULK_FAILED, "error": repr(exc)[:2000]}})
        raise
    jobs.update_one({"_id": oid}, {"$set": {"status": BULK_DONE, "finished_at": utcnow()}})
    log.info("bulk_credit_applied", job_id=job_id)
    return BulkCredit.objects.get(pk=oid)


def _apply_line(job: dict[str, Any], line: dict[str, Any], now: datetime | None) -> dict:
    """Apply one line: its status after (applied, refused, already applied)."""

    def unit(session: ClientSession) -> tuple[dict[str, Any], bool]:
        existing = ledger.existing_entry(session, line["key"])
        if existing is not None:
            return existing, False
        entry = ledger.write(
            session,
            ledger.Movement(
                line["user_id"],
                ADJUST,
                line["points"],
                line["key"],
                line["reason"],
                {"rule": "admin.bulk_credit", "type": "bulk_credit", "id": str(job["_id"])},
                line.get("city_code"),
                actor_id=job.get("started_by") or job["uploaded_by"],
            ),
            now or utcnow(),
        )
        tell_owner_of_correction(session, entry)
        return entry, True

    try:
        entry, created = transaction(unit)
    except DomainError as refusal:
        return {"status": LINE_REFUSED, "error": refusal.error}
    # A line this job applied before a crash is applied; another upload's, already applied.
    ours = created or entry.get("source", {}).get("id") == str(job["_id"])
    return {"status": LINE_APPLIED if ours else LINE_ALREADY, "entry_id": entry["_id"]}


# --- reading -----------------------------------------------------------------------------


def job_for(admin: Caller, job_id: str) -> BulkCredit:
    admin.require_admin()
    return get_or_404(BulkCredit, job_id)


def recent_jobs(admin: Caller, limit: int = 20) -> list[BulkCredit]:
    admin.require_admin()
    return list(BulkCredit.objects.order_by("-created_at").limit(limit))


def lines_of(job: BulkCredit, status: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """The lines of a job the caller was found to see (`job_for`) of one status (all:
    None), in line order."""
    query = BulkCreditLine.objects(job_id=job.pk)
    if status is not None:
        query = query.filter(status=status)
    return paginate(query, cursor, limit, order=("line", "id"))


def not_applied(admin: Caller, job_id: str) -> Iterator[dict[str, Any]]:
    """Every line that was not applied, with why, in line order (the report's CSV)."""
    job = job_for(admin, job_id)
    for line in (
        BulkCreditLine._get_collection()
        .find({"job_id": job.pk, "status": {"$ne": LINE_APPLIED}})
        .sort("line", 1)
    ):
        yield {
            "line": line["line"],
            "account": line.get("account", ""),
            "points": line.get("points", ""),
            "reason": line.get("reason", ""),
            "status": line["status"],
            "error": line.get("error") or "",
        }
