"""Admins resolving the exceptions a partner's statement raised: accept theirs (apply the
missing or corrected movement to the ledger), keep ours, or reverse ours, with a reason.

A resolution is one transaction: it writes the movements (ledger entries under keys of the
exception's own, through `loyalty.partner_transactions`), corrects our transaction record to
what was agreed, books the movements for the settlement, marks the exception resolved with
who, when, why and what it wrote, and tells each owner whose balance changed. The exception
goes from open to resolved in that transaction, so however often or concurrently it is sent,
the ledger changes once: a concurrent twin conflicts on the exception, runs again, finds it
resolved and answers that resolution (another action is 409 `exception_resolved`).

What each kind allows:
- `missing_ours`: accept theirs (their credit, debit or reversal is applied as they say),
  keep ours (nothing happened);
- `missing_theirs`: reverse ours (take back what is left of it), which accepting theirs
  also does, or keep ours;
- `points_mismatch`, `member_mismatch`, `kind_mismatch` of a credit or debit: accept theirs
  (the difference, or the movement moved to their member or kind), keep ours, or reverse
  ours; of a reversal, keep or reverse ours;
- `duplicate`, `late`, `over_reversal`, `totals_mismatch`: keep ours (acknowledged; a
  reversal above its original is never applied).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import find_active_owner
from app.auth import Caller
from app.clock import utcnow
from app.db import transaction
from app.errors import NotFound
from loyalty import errors
from loyalty.models import (
    ACCEPT_THEIRS,
    CREDIT,
    DEBIT,
    EXCEPTION_RESOLVED,
    EXCEPTION_WITHDRAWN,
    KEEP_OURS,
    KIND_MISMATCH,
    MEMBER_MISMATCH,
    MISSING_OURS,
    MISSING_THEIRS,
    POINTS_MISMATCH,
    REVERSAL,
    REVERSE_OURS,
    EcosystemPartner,
    PartnerTransaction,
    StatementException,
)
from loyalty.partner_transactions import (
    Booking,
    Posting,
    credit_points,
    debit_points,
    give_back_debit,
    partner_source,
    take_back_credit,
    to_millis,
    transaction_record,
)
from loyalty.settlement import booking_day
from notifications.services import notify

log = structlog.get_logger()

MISMATCHES = (POINTS_MISMATCH, MEMBER_MISMATCH, KIND_MISMATCH)


def actions_for(exception: dict[str, Any]) -> tuple[str, ...]:
    """The actions that may resolve `exception`."""
    kind, ours, theirs = exception["kind"], exception["ours"], exception["theirs"]
    if kind == MISSING_OURS:
        # A transaction an admin took back stays so: adjust the owner if it must return.
        return (KEEP_OURS,) if ours.get("voided") else (ACCEPT_THEIRS, KEEP_OURS)
    if kind == MISSING_THEIRS:
        return (ACCEPT_THEIRS, KEEP_OURS, REVERSE_OURS)
    if kind in MISMATCHES:
        if REVERSAL in (ours["kind"], theirs["kind"]):
            return (KEEP_OURS, REVERSE_OURS)
        return (ACCEPT_THEIRS, KEEP_OURS, REVERSE_OURS)
    return (KEEP_OURS,)


def resolve_exception(
    admin: Caller,
    exception_id: str,
    action: str,
    reason: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Resolve a statement exception, once (see the module's docstring); returns it with
    the `actions` its kind allows."""
    admin.require_admin()
    exceptions = StatementException._get_collection()
    exception = exceptions.find_one({"_id": exception_id})
    if exception is None:
        raise NotFound(message="Statement exception not found.")
    if action not in (allowed := actions_for(exception)):
        raise errors.ResolutionNotApplicable(actions=", ".join(allowed))
    partner = EcosystemPartner.objects(pk=exception["partner_id"]).first()
    if partner is None:
        raise NotFound(message="Statement exception not found.")
    now = to_millis(now or utcnow())

    def unit(session: ClientSession) -> dict[str, Any]:
        current = exceptions.find_one({"_id": exception_id}, session=session)
        assert current is not None
        if current["status"] == EXCEPTION_RESOLVED:
            if current["resolution"]["action"] == action:
                return {**current, "actions": allowed}
            raise errors.ExceptionResolved(action=current["resolution"]["action"])
        if current["status"] == EXCEPTION_WITHDRAWN:
            raise errors.ExceptionWithdrawn()
        resolution = _Resolution(session, admin, partner, current, reason, now)
        if action == ACCEPT_THEIRS:
            resolution.accept_theirs()
        elif action == REVERSE_OURS:
            resolution.reverse_ours()
        resolved = {
            "status": EXCEPTION_RESOLVED,
            "resolution": {
                "action": action,
                "reason": reason,
                "by": admin.user.pk,
                "at": now,
                "entry_ids": resolution.entry_ids,
                "booked_on": resolution.booked_on,
            },
        }
        exceptions.update_one({"_id": exception_id}, {"$set": resolved}, session=session)
        resolution.tell_owners()
        return {**current, **resolved, "actions": allowed}

    resolved = transaction(unit, answers_request=True)
    log.info(
        "statement_exception_resolved",
        exception_id=exception_id,
        kind=exception["kind"],
        action=action,
        entries=len(resolved["resolution"]["entry_ids"]),
        by=admin.id,
    )
    return resolved


class _Resolution:
    """The movements of one resolution, inside its transaction: each under the key
    "statement:<exception id>:<n>", booked for the settlement, sent at once so that a later
    movement of the same owner reads it."""

    def __init__(
        self,
        session: ClientSession,
        admin: Caller,
        partner: EcosystemPartner,
        exception: dict[str, Any],
        reason: str,
        now: datetime,
    ) -> None:
        self.session, self.admin, self.partner = session, admin, partner
        self.exception, self.now = exception, now
        self.reason = f"{partner.name}, statement of {exception['date']}: {reason}"
        self.entry_ids: list[ObjectId] = []
        self.changes: Counter[ObjectId] = Counter()
        self.booked_on: str | None = None
        self.last_entry: dict[str, Any] = {}
        self.transactions = PartnerTransaction._get_collection()

    # --- what the actions do --------------------------------------------------------------

    def accept_theirs(self) -> None:
        kind = self.exception["kind"]
        if kind == MISSING_OURS:
            self._apply_theirs()
        elif kind == MISSING_THEIRS:
            self.reverse_ours()
        else:
            self._correct_ours()

    def reverse_ours(self) -> None:
        """Take back what is left of our transaction (a reversal: give back what it took),
        and mark it taken back, so that no statement asks for it again."""
        txn = self._ours()
        self._guard(txn["user_id"])
        left = txn["points"] - txn.get("reversed", 0)
        changes: dict[str, Any] = {"voided_by": self.exception["_id"]}
        if txn["kind"] == REVERSAL:
            self._undo_reversal(txn)
        elif left:
            changes.update(self._undo(txn, left))
            changes["reversed"] = txn["points"]
        self._save(txn, changes)

    def _apply_theirs(self) -> None:
        """A line we lack: their credit, debit or reversal, as they list it."""
        theirs = self.exception["theirs"]
        owner = find_active_owner(theirs.get("member_id"), theirs.get("member_phone"))
        if owner is None:
            raise errors.UnknownMember()
        self._guard(owner.id)
        txn_id = self.exception["partner_txn_id"]
        points = theirs["points"]
        record: dict[str, Any] = {}
        if theirs["kind"] == REVERSAL:
            original = self._find(theirs.get("original_txn_id"))
            if original is None:
                raise errors.UnknownPartnerTxn()
            if original["user_id"] != owner.id:
                raise errors.ResolutionNotApplicable(actions=KEEP_OURS)
            reversible = original["points"] - original.get("reversed", 0)
            if points > reversible:
                raise errors.OverReversal(reversible=reversible)
            changes = self._undo(original, points)
            self.transactions.update_one(
                {"_id": original["_id"]},
                {"$inc": {"reversed": points}, "$set": changes},
                session=self.session,
            )
            record = {
                "original_txn_id": original["partner_txn_id"],
                "original_kind": original["kind"],
            }
            entry = self.last_entry
        else:
            entry = self._move(theirs["kind"], owner.id, owner.city_code, points)
            if theirs["kind"] == DEBIT:
                record["restorable"] = entry["lots"]
        record = transaction_record(
            self.partner,
            txn_id,
            theirs["kind"],
            owner.id,
            points,
            entry,
            theirs.get("occurred_at"),
            self.now,
            exception_id=self.exception["_id"],
            **record,
        )
        self.transactions.insert_one(record, session=self.session)

    def _correct_ours(self) -> None:
        """Our credit or debit, made what they say: the difference in points, or moved to
        their member or kind."""
        txn, theirs = self._ours(), self.exception["theirs"]
        changes: dict[str, Any] = {}
        if self.exception["kind"] == POINTS_MISMATCH:
            self._guard(txn["user_id"])
            difference = theirs["points"] - txn["points"]
            if difference > 0:
                entry = self._move(txn["kind"], txn["user_id"], None, difference)
                if txn["kind"] == DEBIT:
                    changes["restorable"] = [*txn.get("restorable", []), *entry["lots"]]
            elif -difference > txn["points"] - txn.get("reversed", 0):
                raise errors.OverReversal(reversible=txn["points"] - txn.get("reversed", 0))
            else:
                changes.update(self._undo(txn, -difference))
            changes["points"] = theirs["points"]
        else:
            if txn.get("reversed"):
                # Reversals name the transaction as it was: keep it, or take it back.
                raise errors.ResolutionNotApplicable(actions=f"{KEEP_OURS}, {REVERSE_OURS}")
            owner = find_active_owner(theirs.get("member_id"), theirs.get("member_phone"))
            if owner is None:
                raise errors.UnknownMember()
            self._guard(txn["user_id"])
            self._guard(owner.id)
            self._undo(txn, txn["points"])
            entry = self._move(theirs["kind"], owner.id, owner.city_code, theirs["points"])
            changes.update(
                kind=theirs["kind"],
                user_id=owner.id,
                points=theirs["points"],
                restorable=entry["lots"] if theirs["kind"] == DEBIT else [],
            )
        self._save(txn, changes)

    # --- the movements ----------------------------------------------------------------------

    def _posting(self) -> Posting:
        """The next movement's: its own key, the admin's reason, booked on the statement's
        day while its month is open (`settlement.booking_day`), sent at once."""
        if self.booked_on is None:
            self.booked_on = booking_day(
                self.session, self.partner, self.exception["date"], self.now
            )
        return Posting(
            f"statement:{self.exception['_id']}:{len(self.entry_ids) + 1}",
            self.reason,
            partner_source(
                self.partner,
                "partner.statement",
                self.exception["partner_txn_id"],
                exception=self.exception["_id"],
            ),
            Booking(self.booked_on, through_api=False, send=True),
            self.now,
            self.admin.user.pk,
        )

    def _move(
        self, kind: str, user_id: ObjectId, city_code: str | None, points: int
    ) -> dict[str, Any]:
        """Credit or debit `points` as the partner's transaction of `kind` would."""
        if city_code is None:
            owner = find_active_owner(str(user_id))
            city_code = owner.city_code if owner else None
        move = credit_points if kind == CREDIT else debit_points
        entry = move(self.session, self.partner, user_id, city_code, points, self._posting())
        return self._wrote(entry, user_id)

    def _undo(self, txn: dict[str, Any], points: int) -> dict[str, Any]:
        """Take back `points` of our credit, or give back `points` of our debit; returns the
        record's changes."""
        if txn["kind"] == CREDIT:
            entry = take_back_credit(self.session, self.partner, txn, points, self._posting())
            self._wrote(entry, txn["user_id"])
            return {}
        entry, left = give_back_debit(self.session, self.partner, txn, points, self._posting())
        self._wrote(entry, txn["user_id"])
        return {"restorable": left}

    def _undo_reversal(self, reversal: dict[str, Any]) -> None:
        """Our reversal taken back: its original moves again, as far as it was reversed."""
        original = self._find(reversal["original_txn_id"])
        assert original is not None, "a reversal without its original"
        entry = self._move(original["kind"], original["user_id"], None, reversal["points"])
        changes: dict[str, Any] = {}
        if original["kind"] == DEBIT:
            changes["restorable"] = [*original.get("restorable", []), *entry["lots"]]
        self.transactions.update_one(
            {"_id": original["_id"]},
            {"$inc": {"reversed": -reversal["points"]}, "$set": changes},
            session=self.session,
        )

    def _wrote(self, entry: dict[str, Any], user_id: ObjectId) -> dict[str, Any]:
        self.entry_ids.append(entry["_id"])
        self.changes[user_id] += entry["amount"]
        self.last_entry = entry
        return entry

    # --- our side -----------------------------------------------------------------------------

    def _find(self, partner_txn_id: str | None) -> dict[str, Any] | None:
        if not partner_txn_id:
            return None
        return self.transactions.find_one(
            {"partner_id": self.partner.pk, "partner_txn_id": partner_txn_id},
            session=self.session,
        )

    def _ours(self) -> dict[str, Any]:
        txn = self._find(self.exception["partner_txn_id"])
        if txn is None or txn.get("voided_by"):
            raise errors.ResolutionNotApplicable(actions=KEEP_OURS)
        return txn

    def _save(self, txn: dict[str, Any], changes: dict[str, Any]) -> None:
        update: dict[str, Any] = {"$push": {"entry_ids": {"$each": self.entry_ids}}}
        if changes:
            update["$set"] = changes
        self.transactions.update_one({"_id": txn["_id"]}, update, session=self.session)

    def _guard(self, user_id: ObjectId) -> None:
        """Nobody resolves a statement in their own favour (403 `own_points`)."""
        if user_id == self.admin.user.pk:
            raise errors.OwnPoints()

    def tell_owners(self) -> None:
        """Points never change behind an owner's back: each owner whose balance the
        resolution changed is told by how much, and why."""
        for user_id, points in self.changes.items():
            if points:
                notify(
                    self.session,
                    user_id,
                    "points",
                    "points_adjusted",
                    {"points": points, "reason": self.reason},
                    dedupe_key=f"{self.exception['_id']}:{user_id}:resolution",
                )
