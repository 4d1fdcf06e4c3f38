"""2026-12-06: ecosystem partners' credits become partner transactions.

Until this release an ecosystem partner could only credit points, and each credit was kept
in `partner_credits`. Partners now also debit with pay codes and reverse, and send daily
statements matched against what we hold: all of it lives in `partner_transactions`
(kind `credit`, `debit` or `reversal`, with the partner's business day), and each business
day's points are counted in `partner_day_totals`, which daily caps and monthly settlements
read. This copies every credit into `partner_transactions` and sets the day totals of those
credits (booked on the day each was received, in the partner's time zone, Asia/Shanghai
unless set). Run it after stopping the previous release's API and before starting this
release's (a credit taken meanwhile would be missing); running it again writes the same.
`partner_credits` is no longer read and can be dropped afterwards.

    python -m migrations.2026_12_06_partner_transactions
"""

from __future__ import annotations

from collections import Counter

from pymongo import UpdateOne

from loyalty.models import CREDIT, EcosystemPartner, PartnerDayTotal, PartnerTransaction
from loyalty.partner_systems import business_day, day_total_id

BATCH = 1_000


def migrate() -> dict[str, int]:
    """Returns how many credits were copied and how many day totals set."""
    database = PartnerTransaction._get_db()
    partners = {partner.pk: partner for partner in EcosystemPartner.objects}
    transactions = PartnerTransaction._get_collection()
    booked: Counter[tuple[object, str]] = Counter()
    movements: Counter[tuple[object, str]] = Counter()
    copied = 0
    batch: list[UpdateOne] = []
    for credit in database["partner_credits"].find():
        partner = partners.get(credit["partner_id"])
        if partner is None:
            continue
        received = business_day(partner, credit["created_at"])
        booked[(partner.pk, received)] += credit["points"]
        movements[(partner.pk, received)] += 1
        record = {
            "partner_id": credit["partner_id"],
            "partner_txn_id": credit["partner_txn_id"],
            "kind": CREDIT,
            "user_id": credit["user_id"],
            "points": credit["points"],
            "reversed": 0,
            "entry_id": credit["entry_id"],
            "entry_ids": [credit["entry_id"]],
            "balance_after": credit["balance_after"],
            "occurred_at": credit.get("occurred_at"),
            "business_day": business_day(
                partner, credit.get("occurred_at") or credit["created_at"]
            ),
            "created_at": credit["created_at"],
        }
        batch.append(
            UpdateOne(
                {"partner_id": credit["partner_id"], "partner_txn_id": credit["partner_txn_id"]},
                {"$setOnInsert": record},
                upsert=True,
            )
        )
        if len(batch) == BATCH:
            copied += transactions.bulk_write(batch, ordered=False).upserted_count
            batch = []
    if batch:
        copied += transactions.bulk_write(batch, ordered=False).upserted_count
    totals = PartnerDayTotal._get_collection()
    for (partner_id, day), points in booked.items():
        totals.update_one(
            {"_id": day_total_id(partner_id, day, CREDIT)},
            {
                "$set": {
                    "partner_id": partner_id,
                    "day": day,
                    "direction": CREDIT,
                    "booked": points,
                    "through_api": points,
                    "movements": movements[(partner_id, day)],
                }
            },
            upsert=True,
        )
    return {"credits_copied": copied, "day_totals_set": len(booked)}


if __name__ == "__main__":
    from app import create_app

    create_app()
    print(migrate())
