"""What ecosystem partners move: credits, debits paid with an owner's pay code, and
reversals of either, each once per `partner_txn_id`.

Each is one transaction that writes the ledger entry (through `loyalty.ledger`, so a debit
spends lots oldest expiry first like a redemption), the partner's transaction record, the
day's totals (`partner_systems.count_movement`, which holds the daily caps) and, for a
debit, the used pay code, all in one command. The transaction record's unique
(partner, `partner_txn_id`) and the entry's ledger key make a retried request a replay: the
same id with the same content answers the first result and changes nothing; with other
content it is `partner_txn_reused`. A transaction's reversals never add up to more than it
moved: each one raises the original's `reversed` under the condition that it stays within
the original's points.

The movements here also serve the admins resolving statement exceptions
(`loyalty.statement_exceptions`), which write them with keys of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import find_active_owner
from app.clock import utcnow
from app.db import batch, one_at_a_time, transaction
from loyalty import errors, ledger
from loyalty.models import (
    CREDIT,
    DEBIT,
    EARN,
    REDEEM,
    REFUND,
    REVERSAL,
    REVERSE,
    EcosystemPartner,
    LedgerEntry,
    Lot,
    PartnerTransaction,
    PayCode,
)
from loyalty.partner_systems import business_day, count_movement, day_total_id
from loyalty.points_account import Account, read_account
from notifications.services import notify

log = structlog.get_logger()


class _TxnTaken(Exception):
    """A concurrent request with the same `partner_txn_id` committed first."""


def to_millis(moment: datetime) -> datetime:
    """A time as MongoDB stores it (UTC, milliseconds), so that the answer a transaction
    renders and the record a replay reads back are the same bytes."""
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def ledger_key(partner_id: Any, partner_txn_id: str) -> str:
    return f"partner:{partner_id}:{partner_txn_id}"


def partner_source(partner: EcosystemPartner, rule: str, txn_id: str, **more: Any) -> dict:
    """An entry's `source`: the owner's ledger names the partner."""
    return {
        "rule": rule,
        "type": "partner",
        "id": str(partner.pk),
        "name": partner.name,
        "txn_id": txn_id,
        **more,
    }


# --- the movements -----------------------------------------------------------------------


@dataclass(frozen=True)
class Booking:
    """Where a movement is counted: the partner's business day, and whether the partner
    sent it through its API (then it counts towards the daily cap)."""

    day: str
    through_api: bool = True
    # Queue the ledger's writes for the unit's one command (False), or send them now so
    # that a later movement of the same owner in the unit reads them (True).
    send: bool = False


@dataclass(frozen=True)
class Posting:
    """How a movement is written: its ledger key, the reason and source the owner reads in
    their ledger, where it is booked, and when."""

    key: str
    reason: str
    source: dict[str, Any]
    booking: Booking
    now: datetime
    # The admin whose decision it carries out (a statement exception's resolution).
    actor_id: ObjectId | None = None


def _post(
    session: ClientSession,
    partner: EcosystemPartner,
    posting: Posting,
    direction: str,
    movement: ledger.Movement,
    account: Account | None = None,
) -> dict[str, Any]:
    """Write the movement to the ledger and count it in the day's total of `direction`
    (a credit's reversal counts against the credits, a debit's refund against the debits);
    the partner's own credits and debits count towards its daily cap."""
    movement = replace(movement, actor_id=posting.actor_id)
    entry = ledger.write(session, movement, posting.now, account=account, send=posting.booking.send)
    booked = movement.amount if direction == CREDIT else -movement.amount
    through_api = booked if posting.booking.through_api and booked > 0 else 0
    count_movement(
        batch(session), partner, posting.booking.day, direction, booked, through_api=through_api
    )
    return entry


def credit_points(
    session: ClientSession,
    partner: EcosystemPartner,
    user_id: ObjectId,
    city_code: str | None,
    points: int,
    posting: Posting,
) -> dict[str, Any]:
    """Earn `points` for the owner (no tier multiplier: the partner decided the amount)."""
    movement = ledger.Movement(
        user_id, EARN, points, posting.key, posting.reason, posting.source, city_code
    )
    account = read_account(session, user_id, posting.now, tier=True)
    return _post(session, partner, posting, CREDIT, movement, account)


def debit_points(
    session: ClientSession,
    partner: EcosystemPartner,
    user_id: ObjectId,
    city_code: str | None,
    points: int,
    posting: Posting,
) -> dict[str, Any]:
    """Spend `points` of the owner's lots, oldest expiry first, as a redemption does
    (409 `insufficient_points` when the balance is short)."""
    movement = ledger.Movement(
        user_id, REDEEM, -points, posting.key, posting.reason, posting.source, city_code
    )
    return _post(session, partner, posting, DEBIT, movement)


def take_back_credit(
    session: ClientSession,
    partner: EcosystemPartner,
    credit: dict[str, Any],
    points: int,
    posting: Posting,
) -> dict[str, Any]:
    """Reverse `points` of a credit: out of what is left of its own lot first, and out of
    the points earned while the credit is in the tier window (409 `insufficient_points`
    when the owner spent them)."""
    original = ledger_entry(session, credit["entry_id"])
    own_lot = Lot._get_collection().find_one(
        {"account_id": credit["user_id"], "entry_id": credit["entry_id"]},
        {"_id": 1},
        session=session,
    )
    movement = ledger.Movement(
        credit["user_id"],
        REVERSE,
        -points,
        posting.key,
        posting.reason,
        {**posting.source, "kind": EARN},
        original.get("city_code"),
        first_lot=own_lot["_id"] if own_lot else None,
        earned_at=original["created_at"],
    )
    return _post(session, partner, posting, CREDIT, movement)


def give_back_debit(
    session: ClientSession,
    partner: EcosystemPartner,
    debit: dict[str, Any],
    points: int,
    posting: Posting,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Refund `points` of a debit into the lots it took them from (keeping their expiry
    dates); returns the entry and the lots still to give back."""
    restore, left = _split_lots(debit.get("restorable") or [], points)
    original = ledger_entry(session, debit["entry_id"])
    movement = ledger.Movement(
        debit["user_id"],
        REFUND,
        points,
        posting.key,
        posting.reason,
        posting.source,
        original.get("city_code"),
        restore=restore,
    )
    return _post(session, partner, posting, DEBIT, movement), left


def ledger_entry(session: ClientSession, entry_id: ObjectId) -> dict[str, Any]:
    found = LedgerEntry._get_collection().find_one({"_id": entry_id}, session=session)
    assert found is not None, f"partner transaction without its entry {entry_id}"
    return found


def _split_lots(
    lots: list[dict[str, Any]], points: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Take `points` from the end of `lots` (the last spent come back first): the parts
    taken, and what is left of the list."""
    left = [dict(lot) for lot in lots]
    taken: list[dict[str, Any]] = []
    while points:
        last = left[-1]
        part = min(points, last["points"])
        taken.append({"lot_id": last["lot_id"], "points": part})
        last["points"] -= part
        points -= part
        if not last["points"]:
            left.pop()
    return taken, left


# --- the partner's requests ----------------------------------------------------------------


def transaction_record(
    partner: EcosystemPartner,
    partner_txn_id: str,
    kind: str,
    user_id: ObjectId,
    points: int,
    entry: dict[str, Any],
    occurred_at: datetime | None,
    now: datetime,
    **more: Any,
) -> dict[str, Any]:
    """The record of a partner's transaction that `entry` wrote."""
    return {
        "_id": ObjectId(),
        "partner_id": partner.pk,
        "partner_txn_id": partner_txn_id,
        "kind": kind,
        "user_id": user_id,
        "points": points,
        "reversed": 0,
        "entry_id": entry["_id"],
        "entry_ids": [entry["_id"]],
        "balance_after": entry["balance_after"],
        "occurred_at": occurred_at,
        "business_day": business_day(partner, occurred_at or now),
        "created_at": now,
        **more,
    }


def _insert(session: ClientSession, record: dict[str, Any]) -> None:
    """Queue the record first in the unit's command: a concurrent request with the same id
    that committed first makes it fail on the unique index before anything else is written."""
    batch(session).insert(
        PartnerTransaction._get_collection(), record, duplicate=_TxnTaken(), first=True
    )


def _find(partner: EcosystemPartner, partner_txn_id: str) -> dict[str, Any] | None:
    return PartnerTransaction._get_collection().find_one(
        {"partner_id": partner.pk, "partner_txn_id": partner_txn_id}
    )


def _run(
    partner: EcosystemPartner,
    kind: str,
    partner_txn_id: str,
    unit: Callable[[ClientSession], dict[str, Any]],
    hot_document: str,
    same: Callable[[dict[str, Any]], dict[str, Any]],
) -> tuple[dict[str, Any], bool]:
    """Run the movement's unit, taking turns within the process on the document its
    movements contend for (every credit of the partner that day writes its day total); a
    concurrent twin that committed first makes this a replay."""
    try:
        with one_at_a_time(hot_document):
            record = transaction(unit)
    except _TxnTaken:
        first = _find(partner, partner_txn_id)
        assert first is not None
        return same(first), False
    log.info(
        f"partner_{kind}",
        partner_id=str(partner.pk),
        txn=partner_txn_id,
        user_id=str(record["user_id"]),
        points=record["points"],
    )
    return record, True


def _same(record: dict[str, Any], kind: str, points: int, **fields: Any) -> dict[str, Any]:
    """The stored record, when the request repeats it: a transaction id reused for another
    kind, member, pay code, original or amount is not a replay."""
    if record["kind"] != kind or record["points"] != points:
        raise errors.PartnerTxnReused()
    if any(record.get(name) != value for name, value in fields.items()):
        raise errors.PartnerTxnReused()
    return record


def credit_from_partner(
    partner: EcosystemPartner,
    *,
    partner_txn_id: str,
    points: int,
    member_id: str | None = None,
    member_phone: str | None = None,
    occurred_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Credit points once per `partner_txn_id`. Returns the transaction and whether it is
    new; a replay (the same member and points) returns the first one."""
    owner = find_active_owner(member_id, member_phone)
    owner_id = owner.id if owner else None
    if (first := _find(partner, partner_txn_id)) is not None:
        return _same(first, CREDIT, points, user_id=owner_id), False
    if points > partner.max_points_per_txn:
        raise errors.OverCap(max_points_per_txn=partner.max_points_per_txn)
    if owner is None:
        raise errors.UnknownMember()
    now = to_millis(now or utcnow())
    occurred_at = to_millis(occurred_at) if occurred_at else None
    booking = Booking(business_day(partner, now))

    def unit(session: ClientSession) -> dict[str, Any]:
        entry = credit_points(
            session,
            partner,
            owner.id,
            owner.city_code,
            points,
            Posting(
                ledger_key(partner.pk, partner_txn_id),
                f"Credited by {partner.name}",
                partner_source(partner, "partner.credit", partner_txn_id),
                booking,
                now,
            ),
        )
        record = transaction_record(
            partner, partner_txn_id, CREDIT, owner.id, points, entry, occurred_at, now
        )
        _insert(session, record)
        return record

    return _run(
        partner,
        CREDIT,
        partner_txn_id,
        unit,
        day_total_id(partner.pk, booking.day, CREDIT),
        lambda first: _same(first, CREDIT, points, user_id=owner.id),
    )


def debit_with_pay_code(
    partner: EcosystemPartner,
    *,
    pay_code: str,
    partner_txn_id: str,
    points: int,
    occurred_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Debit the owner who showed `pay_code`, once per `partner_txn_id`: refused for a code
    of another partner or none (422 `invalid_pay_code`), used (`pay_code_used`), expired
    (`pay_code_expired`), above its maximum (`over_pay_code_max`) or the owner's balance
    (`insufficient_points`). A replay (the same code and points) returns the first debit."""
    if (first := _find(partner, partner_txn_id)) is not None:
        return _same(first, DEBIT, points, pay_code=pay_code), False
    if points > partner.max_points_per_txn:
        raise errors.OverCap(max_points_per_txn=partner.max_points_per_txn)
    now = to_millis(now or utcnow())
    occurred_at = to_millis(occurred_at) if occurred_at else None
    booking = Booking(business_day(partner, now))
    codes = PayCode._get_collection()

    def unit(session: ClientSession) -> dict[str, Any]:
        # By `_id` alone (see `app.auth.load_caller`); its conditions checked here.
        code = codes.find_one({"_id": pay_code}, session=session)
        if code is None or code.get("partner_id") not in (None, partner.pk):
            raise errors.InvalidPayCode()
        if code.get("used_at") is not None:
            raise errors.PayCodeUsed()
        if now >= code["expires_at"]:
            raise errors.PayCodeExpired()
        if points > code["max_points"]:
            raise errors.OverPayCodeMax(max_points=code["max_points"])
        entry = debit_points(
            session,
            partner,
            code["user_id"],
            code.get("city_code"),
            points,
            Posting(
                ledger_key(partner.pk, partner_txn_id),
                f"Spent at {partner.name}",
                partner_source(partner, "partner.debit", partner_txn_id),
                booking,
                now,
            ),
        )
        batch(session).update(
            codes,
            {"_id": pay_code, "used_at": None},
            {"$set": {"used_at": now, "used_by": partner.pk, "used_for": partner_txn_id}},
            refusal=errors.PayCodeUsed(),
        )
        record = transaction_record(
            partner,
            partner_txn_id,
            DEBIT,
            code["user_id"],
            points,
            entry,
            occurred_at,
            now,
            pay_code=pay_code,
            restorable=entry["lots"],
        )
        _insert(session, record)
        return record

    return _run(
        partner,
        DEBIT,
        partner_txn_id,
        unit,
        day_total_id(partner.pk, booking.day, DEBIT),
        lambda first: _same(first, DEBIT, points, pay_code=pay_code),
    )


def reverse_from_partner(
    partner: EcosystemPartner,
    *,
    partner_txn_id: str,
    reversal_txn_id: str,
    points: int,
    occurred_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[dict[str, Any], bool]:
    """Reverse `points` of the partner's credit or debit `partner_txn_id`, once per
    `reversal_txn_id`; all its reversals together never exceed it (409 `over_reversal`).
    A credit's points come back out of the owner's balance, a debit's go back into the lots
    they were spent from. The owner is told."""
    if (first := _find(partner, reversal_txn_id)) is not None:
        return _same(first, REVERSAL, points, original_txn_id=partner_txn_id), False
    now = to_millis(now or utcnow())
    occurred_at = to_millis(occurred_at) if occurred_at else None
    booking = Booking(business_day(partner, now), through_api=False)
    transactions = PartnerTransaction._get_collection()

    def unit(session: ClientSession) -> dict[str, Any]:
        original = transactions.find_one(
            {"partner_id": partner.pk, "partner_txn_id": partner_txn_id}, session=session
        )
        if original is None:
            raise errors.UnknownPartnerTxn()
        if original["kind"] == REVERSAL:
            raise errors.NotReversible(message="A reversal cannot be reversed.")
        reversible = original["points"] - original.get("reversed", 0)
        if points > reversible:
            raise errors.OverReversal(reversible=reversible)
        credit = original["kind"] == CREDIT
        reason = f"{'Reversed' if credit else 'Refunded'} by {partner.name}"
        posting = Posting(
            ledger_key(partner.pk, reversal_txn_id),
            reason,
            partner_source(partner, "partner.reversal", reversal_txn_id, reverses=partner_txn_id),
            booking,
            now,
        )
        changes: dict[str, Any] = {}
        if credit:
            entry = take_back_credit(session, partner, original, points, posting)
        else:
            entry, changes["restorable"] = give_back_debit(
                session, partner, original, points, posting
            )
        batch(session).update(
            transactions,
            {"_id": original["_id"], "reversed": {"$lte": original["points"] - points}},
            {"$inc": {"reversed": points}, **({"$set": changes} if changes else {})},
            refusal=errors.OverReversal(reversible=reversible),
        )
        record = transaction_record(
            partner,
            reversal_txn_id,
            REVERSAL,
            original["user_id"],
            points,
            entry,
            occurred_at,
            now,
            original_txn_id=partner_txn_id,
            original_kind=original["kind"],
        )
        _insert(session, record)
        template = "points_reversed" if credit else "points_adjusted"
        notify(
            session,
            original["user_id"],
            "points",
            template,
            {"points": points, "reason": reason},
            dedupe_key=f"{entry['_id']}:{template}",
        )
        return record

    return _run(
        partner,
        REVERSAL,
        reversal_txn_id,
        unit,
        # Reversals of one transaction take turns on it.
        f"{partner.pk}:{partner_txn_id}",
        lambda first: _same(first, REVERSAL, points, original_txn_id=partner_txn_id),
    )
