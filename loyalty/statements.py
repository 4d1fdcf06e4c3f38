"""Daily statements: an ecosystem partner's list of one business day's transactions, matched
line by line against our ledger on a worker.

A partner sends the day once it is over (`receive_statement`): a header with its control
totals and a line per transaction. The lines are stored in chunks, the statement records
its upload and the domain event `partner_statement.received` in one transaction, and the
request answers 202. A worker then matches the upload (`match_statement`): it reads our
transactions of that business day in one indexed range, looks up the few lines that are not
among them by id, and records an exception for each difference:

- `duplicate`: a transaction listed more than once (its first line is matched);
- `missing_ours`: a line we have no transaction for (or one an admin took back), or
  `over_reversal` when it is a reversal that would take back more than its original moved;
- `kind_mismatch`, `member_mismatch`, `points_mismatch`: a line that disagrees with ours;
- `late`: a line that agrees, but whose time falls outside the day (its cut-off, in the
  partner's time zone), so it belongs in another day's statement;
- `missing_theirs`: a transaction of ours of that day the statement lacks;
- `totals_mismatch`: a header whose count or totals are not those of its lines.

So the cost grows with the statement and the day's transactions, not with the ledger. An
exception's id is derived from the partner, the day, its kind and its transaction: a
statement sent again for the day replaces the upload, and matching it again finds the same
exceptions (keeping what admins resolved), withdraws those it no longer shows and adds the
new ones, so nothing is counted twice.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any

import structlog
from bson import ObjectId
from mongoengine.queryset import QuerySet
from pymongo import UpdateOne
from pymongo.client_session import ClientSession

from accounts.services import active_owner_ids_by_phone
from app.auth import Caller
from app.clock import utcnow
from app.db import transaction
from app.errors import NotFound
from app.outbox import record_event
from loyalty import errors
from loyalty.domain_events import STATEMENT_RECEIVED, StatementReceived
from loyalty.models import (
    DUPLICATE,
    EXCEPTION_OPEN,
    EXCEPTION_WITHDRAWN,
    KIND_MISMATCH,
    LATE,
    MEMBER_MISMATCH,
    MISSING_OURS,
    MISSING_THEIRS,
    OVER_REVERSAL,
    POINTS_MISMATCH,
    REVERSAL,
    STATEMENT_FAILED,
    STATEMENT_MATCHED,
    STATEMENT_QUEUED,
    TOTALS_MISMATCH,
    EcosystemPartner,
    PartnerTransaction,
    Statement,
    StatementChunk,
    StatementException,
)
from loyalty.partner_systems import day_window, partner_for
from loyalty.partner_transactions import to_millis

log = structlog.get_logger()

# Lines per stored chunk: a few hundred kilobytes, far below a document's 16 MB.
CHUNK_LINES = 2_000
# Ids per lookup of the lines that are not among the day's transactions.
LOOKUP_BATCH = 1_000
# What matching reads of our transactions.
_FIELDS = {
    "partner_txn_id": 1,
    "kind": 1,
    "user_id": 1,
    "points": 1,
    "reversed": 1,
    "occurred_at": 1,
    "business_day": 1,
    "original_txn_id": 1,
    "voided_by": 1,
}


def statement_id(partner_id: Any, day: str) -> str:
    return f"{partner_id}:{day}"


def exception_id(partner_id: Any, day: str, kind: str, partner_txn_id: str | None) -> str:
    """The same difference on the same day is the same exception, whichever upload shows it."""
    text = f"{partner_id}|{day}|{kind}|{partner_txn_id or ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# --- receiving -------------------------------------------------------------------------


def receive_statement(
    partner: EcosystemPartner,
    *,
    day: date,
    count: int,
    total_credit: int,
    total_debit: int,
    lines: list[dict[str, Any]],
    body: bytes,
    total_reversal: int | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Store the statement of business day `day` and queue its matching; the same day
    again replaces the upload (the same bytes again change nothing). 409 `day_not_over`
    before the day's cut-off has passed."""
    now = to_millis(now or utcnow())
    _, ends_at = day_window(partner, day)
    if now < ends_at:
        raise errors.DayNotOver(date=day.isoformat(), ends_at=ends_at.isoformat())
    key = statement_id(partner.pk, day.isoformat())
    body_hash = hashlib.sha256(body).hexdigest()
    statements = Statement._get_collection()
    current = statements.find_one({"_id": key})
    same = current is not None and current["body_hash"] == body_hash
    if same and current["status"] != STATEMENT_FAILED:
        return current
    upload_id = ObjectId()
    chunks = [
        {
            "statement_id": key,
            "upload_id": upload_id,
            "index": index,
            "lines": [_stored(line) for line in lines[start : start + CHUNK_LINES]],
        }
        for index, start in enumerate(range(0, len(lines), CHUNK_LINES))
    ]
    # Outside the transaction (a big statement is more than a transaction should carry),
    # under an upload id that nothing names until the transaction commits.
    if chunks:
        StatementChunk._get_collection().insert_many(chunks, ordered=False)
    header = {"count": count, "total_credit": total_credit, "total_debit": total_debit}
    if total_reversal is not None:
        header["total_reversal"] = total_reversal

    def unit(session: ClientSession) -> dict[str, Any]:
        statements.update_one(
            {"_id": key},
            {
                "$set": {
                    "upload_id": upload_id,
                    "status": STATEMENT_QUEUED,
                    "header": header,
                    "line_count": len(lines),
                    "body_hash": body_hash,
                    "received_at": now,
                    "matched_at": None,
                    "error": None,
                },
                "$inc": {"version": 1},
                "$setOnInsert": {"partner_id": partner.pk, "date": day.isoformat()},
            },
            upsert=True,
            session=session,
        )
        record_event(
            session,
            STATEMENT_RECEIVED,
            StatementReceived(str(upload_id), len(lines)),
            subject_id=key,
        )
        stored = statements.find_one({"_id": key}, session=session)
        assert stored is not None
        return stored

    statement = transaction(unit)
    log.info(
        "partner_statement_received",
        partner_id=str(partner.pk),
        date=day.isoformat(),
        lines=len(lines),
        version=statement["version"],
    )
    return statement


def _stored(line: dict[str, Any]) -> dict[str, Any]:
    return {
        name: to_millis(value) if isinstance(value, datetime) else value
        for name, value in line.items()
        if value is not None
    }


# --- matching --------------------------------------------------------------------------


def match_statement(statement_id_: str, upload_id: str, now: datetime | None = None) -> bool:
    """Match one upload of a statement against the ledger and record its exceptions.
    Returns False when there is nothing to do: the statement is gone, or a later upload
    replaced this one (its own message matches it)."""
    statements = Statement._get_collection()
    statement = statements.find_one({"_id": statement_id_})
    upload = ObjectId(upload_id)
    if statement is None or statement["upload_id"] != upload:
        return False
    partner = EcosystemPartner.objects(pk=statement["partner_id"]).first()
    if partner is None:
        return False
    now = to_millis(now or utcnow())
    try:
        lines = list(_lines(upload))
        found, matched = compare(partner, statement["date"], statement["header"], lines)
        _record_exceptions(partner, statement, upload, found, now)
    except Exception as exc:
        statements.update_one(
            {"_id": statement_id_, "upload_id": upload},
            {"$set": {"status": STATEMENT_FAILED, "error": repr(exc)[:500]}},
        )
        raise
    counts = Counter(exception["kind"] for exception in found)
    statements.update_one(
        {"_id": statement_id_, "upload_id": upload},
        {
            "$set": {
                "status": STATEMENT_MATCHED,
                "matched": matched,
                "exception_counts": dict(counts),
                "matched_at": now,
            }
        },
    )
    StatementChunk._get_collection().delete_many(
        {"statement_id": statement_id_, "upload_id": {"$ne": upload}}
    )
    log.info(
        "partner_statement_matched",
        statement_id=statement_id_,
        lines=len(lines),
        matched=matched,
        exceptions=dict(counts),
    )
    return True


def _lines(upload_id: ObjectId) -> Iterator[dict[str, Any]]:
    chunks = StatementChunk._get_collection().find({"upload_id": upload_id}).sort("index", 1)
    for chunk in chunks:
        yield from chunk["lines"]


def _by_id(transactions: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {txn["partner_txn_id"]: txn for txn in transactions}


def our_transactions(
    partner_id: ObjectId, day: str, other_ids: Iterable[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Our transactions of business day `day` (one indexed range), and those among
    `other_ids` that are not of that day (one lookup per `LOOKUP_BATCH` ids)."""
    collection = PartnerTransaction._get_collection()
    of_day = _by_id(collection.find({"partner_id": partner_id, "business_day": day}, _FIELDS))
    wanted = sorted({txn_id for txn_id in other_ids if txn_id not in of_day})
    others: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), LOOKUP_BATCH):
        query = {
            "partner_id": partner_id,
            "partner_txn_id": {"$in": wanted[start : start + LOOKUP_BATCH]},
        }
        others.update(_by_id(collection.find(query, _FIELDS)))
    return of_day, others


def _ours(txn: dict[str, Any]) -> dict[str, Any]:
    view = {
        "kind": txn["kind"],
        "member_id": str(txn["user_id"]),
        "points": txn["points"],
        "occurred_at": txn.get("occurred_at"),
        "business_day": txn["business_day"],
    }
    if txn.get("original_txn_id"):
        view["original_txn_id"] = txn["original_txn_id"]
    if txn.get("voided_by"):
        view["voided"] = True
    return view


def compare(
    partner: EcosystemPartner,
    day: str,
    header: dict[str, Any],
    lines: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], int]:
    """The exceptions a statement's lines and header raise against our transactions, and
    how many lines matched. Reads our side in a few commands (`our_transactions`)."""
    copies = Counter(line["partner_txn_id"] for line in lines)
    wanted = [line["partner_txn_id"] for line in lines]
    wanted += [line["original_txn_id"] for line in lines if line.get("original_txn_id")]
    of_day, others = our_transactions(partner.pk, day, wanted)
    ours_by_id = {**others, **of_day}
    phones = active_owner_ids_by_phone(
        {line["member_phone"] for line in lines if line.get("member_phone")}
    )
    found: list[dict[str, Any]] = []

    def add(kind: str, txn_id: str | None, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
        found.append({"kind": kind, "partner_txn_id": txn_id, "ours": ours, "theirs": theirs})

    def theirs(line: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {name: value for name, value in line.items() if name != "partner_txn_id"} | more

    start, end = day_window(partner, date.fromisoformat(day))
    matched = 0
    seen: set[str] = set()
    # What the statement's reversals would take back, per original we hold.
    reversing: Counter[str] = Counter()
    for line in lines:
        txn_id = line["partner_txn_id"]
        if txn_id in seen:
            continue
        seen.add(txn_id)
        if copies[txn_id] > 1:
            add(DUPLICATE, txn_id, {}, theirs(line, copies=copies[txn_id]))
        ours_txn = ours_by_id.get(txn_id)
        if ours_txn is None or ours_txn.get("voided_by"):
            original = ours_by_id.get(line.get("original_txn_id") or "")
            if line["kind"] == REVERSAL and original is not None and ours_txn is None:
                reversing[original["partner_txn_id"]] += line["points"]
                left = original["points"] - original.get("reversed", 0)
                if reversing[original["partner_txn_id"]] > left:
                    ours = {**_ours(original), "reversible": left}
                    add(OVER_REVERSAL, txn_id, ours, theirs(line))
                    continue
            add(MISSING_OURS, txn_id, _ours(ours_txn) if ours_txn else {}, theirs(line))
            continue
        member = line.get("member_id") or str(phones.get(line.get("member_phone") or "", ""))
        if ours_txn["kind"] != line["kind"]:
            kind = KIND_MISMATCH
        elif member != str(ours_txn["user_id"]):
            kind = MEMBER_MISMATCH
        elif ours_txn["points"] != line["points"]:
            kind = POINTS_MISMATCH
        elif not start <= line["occurred_at"] < end:
            kind = LATE  # outside the day's cut-off: another day's line
        else:
            matched += 1
            continue
        add(kind, txn_id, _ours(ours_txn), theirs(line))
    for txn_id, txn in of_day.items():
        if txn_id not in seen and not txn.get("voided_by"):
            add(MISSING_THEIRS, txn_id, _ours(txn), {})
    totals = control_totals(lines)
    given = {name: header[name] for name in totals if header.get(name) is not None}
    if any(totals[name] != value for name, value in given.items()):
        add(TOTALS_MISMATCH, None, totals, dict(header))
    return found, matched


def control_totals(lines: list[dict[str, Any]]) -> dict[str, int]:
    """What a statement's header must say of its lines."""
    totals = {"count": len(lines), "total_credit": 0, "total_debit": 0, "total_reversal": 0}
    for line in lines:
        totals[f"total_{line['kind']}"] += line["points"]
    return totals


def _record_exceptions(
    partner: EcosystemPartner,
    statement: dict[str, Any],
    upload: ObjectId,
    found: list[dict[str, Any]],
    now: datetime,
) -> None:
    """Upsert this upload's exceptions (an exception an admin resolved stays resolved),
    withdraw the open ones it no longer shows and reopen the withdrawn ones it shows again."""
    collection = StatementException._get_collection()
    writes = [
        UpdateOne(
            {
                "_id": exception_id(
                    partner.pk, statement["date"], item["kind"], item["partner_txn_id"]
                )
            },
            {
                "$set": {**item, "last_seen_upload": upload},
                "$setOnInsert": {
                    "partner_id": partner.pk,
                    "statement_id": statement["_id"],
                    "date": statement["date"],
                    "status": EXCEPTION_OPEN,
                    "created_at": now,
                },
            },
            upsert=True,
        )
        for item in found
    ]
    for start in range(0, len(writes), 1000):
        collection.bulk_write(writes[start : start + 1000], ordered=False)
    collection.update_many(
        {
            "statement_id": statement["_id"],
            "status": EXCEPTION_OPEN,
            "last_seen_upload": {"$ne": upload},
        },
        {"$set": {"status": EXCEPTION_WITHDRAWN}},
    )
    collection.update_many(
        {
            "statement_id": statement["_id"],
            "status": EXCEPTION_WITHDRAWN,
            "last_seen_upload": upload,
        },
        {"$set": {"status": EXCEPTION_OPEN}},
    )


# --- reading -----------------------------------------------------------------------------


def statements_of(admin: Caller, partner_id: str) -> QuerySet:
    """A partner's statements, latest day first (admins)."""
    partner = partner_for(admin, partner_id)
    return Statement.objects(partner_id=partner.pk).order_by("-date")


def statement_for(admin: Caller, partner_id: str, day: str) -> dict[str, Any]:
    """A partner's statement of a day with its result, for admins (404 when none was sent,
    or for a day that cannot be)."""
    partner = partner_for(admin, partner_id)
    try:
        day = date.fromisoformat(day).isoformat()
    except ValueError:
        day = ""
    found = Statement.objects(pk=statement_id(partner.pk, day)).as_pymongo().first()
    if found is None:
        raise NotFound(message="No statement of this day.")
    return found


def exceptions_of(statement: dict[str, Any]) -> Any:
    """The statement's exceptions an admin has to see: those of its last matching, and the
    resolved ones (a resolution changed the ledger)."""
    return StatementException.objects(statement_id=statement["_id"], status__ne=EXCEPTION_WITHDRAWN)


def open_exception_count(partner_id: ObjectId, first_day: str, last_day: str) -> int:
    return StatementException.objects(
        partner_id=partner_id, status=EXCEPTION_OPEN, date__gte=first_day, date__lte=last_day
    ).count()
