"""Points: accounts, the immutable ledger, lots, earning rules, rewards, redemptions, partners
and reconciliation runs.

Writes go through `_get_collection()` inside `app.db.transaction` (see `loyalty/ledger.py`);
these classes declare the shape and the indexes every query needs.
"""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from app.clock import utcnow

EARN = "earn"
REDEEM = "redeem"
REFUND = "refund"
EXPIRE = "expire"
ADJUST = "adjust"
REVERSE = "reverse"
ENTRY_KINDS = (EARN, REDEEM, REFUND, EXPIRE, ADJUST, REVERSE)

PENDING = "pending"
FULFILLED = "fulfilled"
CANCELLED = "cancelled"
REDEMPTION_STATUSES = (PENDING, FULFILLED, CANCELLED)
FULFILLMENTS = ("pickup", "shipping", "digital")

RUN_QUEUED = "queued"
RUN_RUNNING = "running"
RUN_DONE = "done"
RUN_FAILED = "failed"
RUN_STATUSES = (RUN_QUEUED, RUN_RUNNING, RUN_DONE, RUN_FAILED)


class PointsAccount(Document):
    """The cached figures of one owner's ledger (`_id` is the user id). Written only in the
    transaction that writes the entry it reflects, or that recomputes a figure whose time
    passed; reconciliation rebuilds it (see `loyalty/figures.py`)."""

    id = ObjectIdField(primary_key=True)
    balance = IntField(required=True, default=0, min_value=0)
    lifetime_earned = IntField(required=True, default=0)
    # The tier figure: points earned in the 12 months up to `tier_as_of`, and the tier they
    # make; unchanged until `tier_until`, when the oldest earn in the window leaves it.
    tier = StringField(required=True, default="member")
    tier_points = IntField()
    tier_as_of = DateTimeField()
    tier_until = DateTimeField()
    # Points expiring within 90 days of `expiring_as_of`, [{"points", "expires_at"}], by
    # date; unchanged until `expiring_until`, when the next lot enters the 90 days.
    expiring = ListField(DictField())
    expiring_as_of = DateTimeField()
    expiring_until = DateTimeField()
    # Per reward id, the quantity redeemed and not cancelled (per-owner limits).
    redeemed = DictField()
    # No lot expiring before it holds points (unset: not known); see `loyalty.figures`.
    spend_from = DateTimeField()
    # Points set aside for entries in drops (`loyalty.holds`): per hold key, its points, and
    # their sum, which spending leaves alone (unset: none held).
    holds = DictField()
    held = IntField(min_value=0)
    created_at = DateTimeField(default=utcnow)
    updated_at = DateTimeField(default=utcnow)

    meta = {"collection": "points_accounts", "indexes": []}


class LedgerEntry(Document):
    account_id = ObjectIdField(required=True)
    kind = StringField(required=True, choices=ENTRY_KINDS)
    amount = IntField(required=True)
    balance_after = IntField(required=True, min_value=0)
    reason = StringField(required=True)
    # {"rule": <rule or origin code>, "type": <what caused it>, "id": <its id>}
    source = DictField()
    idempotency_key = StringField(required=True, unique=True)
    # A second uniqueness that does not depend on how the cause is delivered: "attendance
    # points once per owner and event", "welcome points once per owner".
    once_key = StringField(unique=True, sparse=True)
    # For debits: which lots paid, [{"lot_id", "points"}], so a refund restores exactly them.
    lots = ListField(DictField())
    city_code = StringField()
    actor_id = ObjectIdField()
    expires_at = DateTimeField()
    # For the reversal of an earn: when that earn was written. The reversal is counted at
    # this date in the rolling tier figure, so it leaves exactly the windows the earn was in.
    earned_at = DateTimeField()
    # For a reversal: the admin's Idempotency-Key (scoped to the admin), so that the same
    # request replayed gets its entry back while any other attempt is `already_reversed`.
    request_key = StringField()
    created_at = DateTimeField(required=True)

    meta = {
        "collection": "ledger_entries",
        "indexes": [
            ("account_id", "-id"),
            ("account_id", "kind", "created_at"),
            ("account_id", "source.rule", "created_at"),
            # What one post or comment earned, which follows it when moderation removes it.
            ("account_id", "source.id"),
            ("city_code", "created_at"),
        ],
    }


class Lot(Document):
    """What is left of one credit. Spent oldest expiry first; expired on its date."""

    account_id = ObjectIdField(required=True)
    entry_id = ObjectIdField(required=True)
    amount = IntField(required=True, min_value=1)
    remaining = IntField(required=True, min_value=0)
    # Total already expired from this lot: makes each expiry's idempotency key unique even
    # when a refund puts points back into an expired lot.
    expired = IntField(required=True, default=0)
    expires_at = DateTimeField(required=True)
    created_at = DateTimeField(required=True)
    warned_at = DateTimeField()

    meta = {
        "collection": "points_lots",
        "indexes": [
            ("account_id", "expires_at"),
            ("expires_at", "remaining"),
        ],
    }


class EarningRule(Document):
    code = StringField(required=True, unique=True)
    event_type = StringField(required=True)
    description = StringField()
    points = IntField(required=True, min_value=0)
    # {"day": n, "week": n, "month": n}: earns per owner per period in the owner's city time
    # zone; a missing period is unlimited.
    caps = DictField()
    active = BooleanField(default=True)
    multipliable = BooleanField(default=True)
    # `event.attended` only: the most points one event may award each attendee.
    max_points = IntField(min_value=0)
    updated_at = DateTimeField(default=utcnow)
    updated_by = ObjectIdField()

    meta = {"collection": "earning_rules", "indexes": []}


class ContentPoints(Document):
    """What one post or comment has paid its author (`loyalty.content_points`): per earning
    rule, the points it pays while the content stands (decided when first owed: its tier
    multiplier and caps then), whether they are paid now, and the entry that paid them.
    Written in the transaction of the entries it records."""

    # "<content type>:<content id>".
    id = StringField(primary_key=True)
    account_id = ObjectIdField(required=True)
    # The newest state of the content applied (community's `points_version`).
    version = IntField(required=True, default=0)
    # The author erased their account: the content pays nothing any more, whatever arrives.
    closed = BooleanField(required=True, default=False)
    # rule code -> {"amount": int, "paid": bool, "entry_id": ObjectId | None, "earns": int}
    rules = DictField()
    updated_at = DateTimeField(default=utcnow)

    meta = {"collection": "content_points", "indexes": [("account_id",)]}


class Reward(Document):
    title = StringField(required=True, max_length=200)
    description = StringField(max_length=2000)
    cost = IntField(required=True, min_value=1)
    stock = IntField(required=True, min_value=0)
    per_owner_limit = IntField(min_value=1)
    min_tier = StringField(required=True, default="member")
    # Empty: every city.
    city_codes = ListField(StringField())
    fulfillment = StringField(required=True, choices=FULFILLMENTS)
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    # More than 1: the stock is kept in that many `StockBucket`s, and `stock` stays 0 (see
    # `loyalty.stock`). Unset: 1.
    stock_buckets = IntField(min_value=1, max_value=64)
    # The drop the reward is released through while it runs: redemptions come from it alone.
    drop_id = ObjectIdField()

    meta = {"collection": "rewards", "indexes": [("active", "city_codes", "min_tier")]}


class StockBucket(Document):
    """One part of a reward's stock (`_id` is "<reward id>:<bucket>"), taken from by
    concurrent redemptions instead of the reward's own document (`loyalty.stock`)."""

    id = StringField(primary_key=True)
    reward_id = ObjectIdField(required=True)
    bucket = IntField(required=True, min_value=0)
    stock = IntField(required=True, min_value=0)

    meta = {"collection": "reward_stock", "indexes": [("reward_id", "bucket")]}


class Redemption(Document):
    user_id = ObjectIdField(required=True)
    reward_id = ObjectIdField(required=True)
    reward_title = StringField()
    quantity = IntField(required=True, min_value=1)
    points = IntField(required=True, min_value=1)
    fulfillment = StringField(required=True, choices=FULFILLMENTS)
    # The pickup city for pickup rewards: its circle leaders hand the reward over.
    city_code = StringField()
    status = StringField(required=True, default=PENDING, choices=REDEMPTION_STATUSES)
    client_key = StringField(unique=True, sparse=True)
    entry_id = ObjectIdField()
    refund_entry_id = ObjectIdField()
    # The drop that allocated it (`client_key` is then "drop:<entry id>").
    drop_id = ObjectIdField()
    created_at = DateTimeField(required=True)
    fulfilled_at = DateTimeField()
    fulfilled_by = ObjectIdField()
    cancelled_at = DateTimeField()
    cancelled_by = ObjectIdField()

    meta = {
        "collection": "redemptions",
        "indexes": [("user_id", "-id"), ("reward_id", "user_id", "status")],
    }


class Partner(Document):
    """A partner system crediting points (a charging operator...).

    The secret is stored as issued: verifying an HMAC needs the shared key itself, so it
    cannot be hashed like a password, and encrypting it with a key held by this same
    service would only move the problem. It is never returned after creation.
    """

    name = StringField(required=True, max_length=100)
    key = StringField(required=True, unique=True)
    secret = StringField(required=True)
    max_points_per_txn = IntField(required=True, min_value=1)
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    created_by = ObjectIdField()

    meta = {"collection": "partners", "indexes": []}


class PartnerCredit(Document):
    partner_id = ObjectIdField(required=True)
    partner_txn_id = StringField(required=True)
    user_id = ObjectIdField(required=True)
    points = IntField(required=True)
    entry_id = ObjectIdField(required=True)
    balance_after = IntField(required=True)
    occurred_at = DateTimeField()
    created_at = DateTimeField(required=True)

    meta = {
        "collection": "partner_credits",
        "indexes": [{"fields": ["partner_id", "partner_txn_id"], "unique": True}],
    }


class ReconciliationRun(Document):
    status = StringField(required=True, default=RUN_QUEUED)
    requested_by = ObjectIdField()
    accounts_checked = IntField(default=0)
    entries_checked = IntField(default=0)
    # [{"account_id", "cached_balance", "computed_balance", "lots_total",
    #   "cached_lifetime_earned", "computed_lifetime_earned"}]
    drifts = ListField(DictField())
    repaired = IntField(default=0)
    error = StringField()
    created_at = DateTimeField(default=utcnow)
    started_at = DateTimeField()
    finished_at = DateTimeField()

    meta = {"collection": "reconciliation_runs", "indexes": ["-created_at"]}
