"""Reconciliation: recompute every account's cached totals from its ledger, report the
drifts and repair them (the ledger is the source of truth)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from app.auth import Caller
from app.clock import utcnow
from app.db import get_or_404, transaction
from app.outbox import NoPayload, record_event
from loyalty import ledger, points_account
from loyalty.domain_events import RECONCILIATION_REQUESTED
from loyalty.models import (
    RUN_DONE,
    RUN_FAILED,
    RUN_QUEUED,
    RUN_RUNNING,
    LedgerEntry,
    Lot,
    PointsAccount,
    ReconciliationRun,
)

log = structlog.get_logger()


def request_reconciliation(admin: Caller) -> ReconciliationRun:
    """Store a queued run and its domain event; a worker runs it."""
    admin.require_admin()
    run_id = ObjectId()

    def unit(session: ClientSession) -> None:
        ReconciliationRun._get_collection().insert_one(
            ReconciliationRun(id=run_id, requested_by=admin.user.pk).to_mongo().to_dict(),
            session=session,
        )
        record_event(
            session,
            RECONCILIATION_REQUESTED,
            NoPayload(),
            subject_id=run_id,
            actor_id=admin.user.pk,
        )

    transaction(unit)
    return ReconciliationRun.objects.get(pk=run_id)


def recent_runs(admin: Caller, limit: int = 20) -> list[ReconciliationRun]:
    """The latest runs, newest first (an admin's list)."""
    admin.require_admin()
    return list(ReconciliationRun.objects.order_by("-created_at").limit(limit))


def run_for(admin: Caller, run_id: str) -> ReconciliationRun:
    """One run with its drifts (an admin's)."""
    admin.require_admin()
    return get_or_404(ReconciliationRun, run_id)


def _ledger_totals(
    session: ClientSession | None, account_id: ObjectId, now: datetime
) -> dict[str, Any]:
    """Everything the account caches, computed from the ledger, lots and redemptions."""
    rows = list(
        LedgerEntry._get_collection().aggregate(
            [
                {"$match": {"account_id": account_id}},
                {
                    "$group": {
                        "_id": None,
                        "balance": {"$sum": "$amount"},
                        "entries": {"$sum": 1},
                        "earned": {"$sum": points_account.EARNED_POINTS},
                    }
                },
            ],
            session=session,
        )
    )
    lots = [
        (row["_id"], row["remaining"])
        for row in Lot._get_collection().aggregate(
            [
                {"$match": {"account_id": account_id}},
                {"$group": {"_id": "$expires_at", "remaining": {"$sum": "$remaining"}}},
                {"$sort": {"_id": 1}},
            ],
            session=session,
        )
    ]
    totals = rows[0] if rows else {"balance": 0, "entries": 0, "earned": 0}
    return {
        "balance": totals["balance"],
        "entries": totals["entries"],
        "earned": totals["earned"],
        "lots": sum(remaining for _, remaining in lots),
        "figures": {
            **points_account.tier_figure(
                *points_account.rolling_earned(session, account_id, now), now
            ),
            **points_account.expiring_figure(lots, now),
            "redeemed": points_account.redemption_counts(session, account_id),
            "spend_from": next((expires_at for expires_at, points in lots if points), None),
            "spend_lots": list(
                points_account.open_lots(session, account_id, None, ledger.SPEND_LOTS_KEPT)
            ),
        },
    }


def _stale_figures(account: dict[str, Any], computed: dict[str, Any], now: datetime) -> list[str]:
    """The cached figures that are current but differ from the ledger's, a `spend_from`
    past a lot with points (an earlier one than needed only costs a debit a few more lots)
    and kept lots (`spend_lots`) that are not the first lots with points as they are."""
    stale = []
    for figure, fields in (
        ("tier", ("tier_points", "tier_until")),
        ("expiring", ("expiring", "expiring_until")),
    ):
        if points_account.is_current(account, figure, now) and any(
            account.get(name) != computed[name] for name in fields
        ):
            stale.append(figure)
    cached_from, first_open = account.get("spend_from"), computed["spend_from"]
    if cached_from and first_open and cached_from > first_open:
        stale.append("spend_from")
    kept = account.get("spend_lots")
    if kept is not None and kept != computed["spend_lots"][: len(kept)]:
        stale.append("spend_lots")
    held = {reward: count for reward, count in account.get("redeemed", {}).items() if count}
    if "redeemed" in account and held != computed["redeemed"]:
        stale.append("redeemed")
    if (account.get("held") or 0) != _held(account):
        stale.append("held")
    return stale


def _held(account: dict[str, Any]) -> int:
    """The points the account's holds hold (`loyalty.holds`): what `held` must say."""
    return sum((account.get("holds") or {}).values())


def check_account(
    account_id: ObjectId, now: datetime | None = None
) -> tuple[int, dict[str, Any] | None]:
    """Compare one account's cache with its ledger and lots, all read in one snapshot so an
    entry written meanwhile is either in both or in neither. Returns (entries, drift)."""
    now = now or utcnow()

    def read(session: ClientSession) -> tuple[dict[str, Any], dict[str, Any]]:
        account = (
            PointsAccount._get_collection().find_one({"_id": account_id}, session=session) or {}
        )
        return account, _ledger_totals(session, account_id, now)

    account, totals = transaction(read)
    cached = {"balance": account.get("balance", 0), "earned": account.get("lifetime_earned", 0)}
    stale = _stale_figures(account, totals["figures"], now)
    if not stale and (cached["balance"], cached["earned"], totals["lots"]) == (
        totals["balance"],
        totals["earned"],
        totals["balance"],
    ):
        return totals["entries"], None
    drift = {
        "account_id": str(account_id),
        "cached_balance": cached["balance"],
        "computed_balance": totals["balance"],
        "lots_total": totals["lots"],
        "cached_lifetime_earned": cached["earned"],
        "computed_lifetime_earned": totals["earned"],
    }
    if stale:
        drift["stale_figures"] = stale
    return totals["entries"], drift


def repair_account(account_id: ObjectId, now: datetime | None = None) -> None:
    """Rewrite the cached figures from the ledger, the source of truth."""
    now = now or utcnow()

    def unit(session: ClientSession) -> None:
        totals = _ledger_totals(session, account_id, now)
        accounts = PointsAccount._get_collection()
        holds = accounts.find_one({"_id": account_id}, {"holds": 1}, session=session) or {}
        accounts.update_one(
            {"_id": account_id},
            {
                "$set": {
                    "balance": totals["balance"],
                    "lifetime_earned": totals["earned"],
                    **totals["figures"],
                    "held": _held(holds),
                    "updated_at": now,
                }
            },
            session=session,
        )

    transaction(unit)


def run_reconciliation(run_id: str | None = None, batch: int = 500) -> ReconciliationRun | None:
    """Check every account against its ledger, record drifts and repair them.

    Each account is read in its own short snapshot, so redemptions never wait for a run.
    Returns None when the run is already running or done (a redelivered message).
    """
    runs = ReconciliationRun._get_collection()
    if run_id is None:
        run_id = str(runs.insert_one(ReconciliationRun().to_mongo().to_dict()).inserted_id)
    run_oid = ledger.id_or_404(run_id)
    claimed = runs.update_one(
        {"_id": run_oid, "status": {"$in": [RUN_QUEUED, RUN_FAILED]}},
        {"$set": {"status": RUN_RUNNING, "started_at": utcnow()}},
    )
    if not claimed.matched_count:
        return None
    accounts = PointsAccount._get_collection()
    progress = {"accounts_checked": 0, "entries_checked": 0, "repaired": 0}
    drifts: list[dict[str, Any]] = []
    try:
        last: ObjectId | None = None
        while True:
            page = [
                row["_id"]
                for row in accounts.find({"_id": {"$gt": last}} if last else {}, {"_id": 1})
                .sort("_id", 1)
                .limit(batch)
            ]
            for account_id in page:
                entries, drift = check_account(account_id)
                progress["accounts_checked"] += 1
                progress["entries_checked"] += entries
                if drift is not None:
                    drifts.append(drift)
                    repair_account(account_id)
                    progress["repaired"] += 1
            if len(page) < batch:
                break
            last = page[-1]
    except Exception as exc:
        runs.update_one(
            {"_id": run_oid},
            {
                "$set": {
                    "status": RUN_FAILED,
                    "error": repr(exc)[:2000],
                    **progress,
                    "drifts": drifts,
                }
            },
        )
        raise
    runs.update_one(
        {"_id": run_oid},
        {"$set": {"status": RUN_DONE, "finished_at": utcnow(), **progress, "drifts": drifts}},
    )
    log.info("reconciliation_done", run_id=str(run_oid), drifts=len(drifts), **progress)
    return ReconciliationRun.objects.get(pk=run_oid)
