"""Points: accounts, the immutable ledger, lots, earning rules, rewards, redemptions,
reconciliation runs, and the ecosystem partners exchanging points with owners (their
transactions, pay codes, daily statements and monthly settlements).

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
    passed; reconciliation rebuilds it (see `loyalty/points_account.py`)."""

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
    # No lot expiring before it holds points (unset: not known); see `loyalty.points_account`.
    spend_from = DateTimeField()
    # Its first lots with points, [{"_id", "remaining", "expires_at"}] in spending order
    # (unset or null: not known); see `loyalty.points_account`.
    spend_lots = ListField(DictField(), default=None)
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
    # Incremented by every edit of the terms above (and of `stock_buckets`): a redemption
    # decided from a process's copy of them writes on condition of it (loyalty/rewards.py).
    version = IntField()

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


# --- ecosystem partners: points both ways ----------------------------------------------
# Not to be confused with city partners (`partners/`), the operators that run a city.

CREDIT = "credit"
DEBIT = "debit"
REVERSAL = "reversal"
PARTNER_TXN_KINDS = (CREDIT, DEBIT, REVERSAL)
# What a movement counts as in a settlement: points the partner credited, or owners spent.
DIRECTIONS = (CREDIT, DEBIT)


class EcosystemPartner(Document):
    """A company whose system exchanges points with our owners (a charging operator, a car
    wash): it credits them, debits them with an owner's pay code, reverses either, and
    sends a statement of each day.

    Secrets are stored as issued: verifying an HMAC needs the shared key itself, so it
    cannot be hashed like a password, and encrypting it with a key held by this same
    service would only move the problem. They are never returned after they are issued.
    During a rotation two are valid: the new `secret` and `previous_secret` until
    `previous_secret_until`.
    """

    name = StringField(required=True, max_length=100)
    key = StringField(required=True, unique=True)
    secret = StringField(required=True)
    previous_secret = StringField()
    previous_secret_until = DateTimeField()
    secret_rotated_at = DateTimeField()
    max_points_per_txn = IntField(required=True, min_value=1)
    # Points per business day the partner may credit, and owners may spend there, through
    # its API (None: no cap).
    daily_credit_cap = IntField(min_value=1)
    daily_debit_cap = IntField(min_value=1)
    # Its business day: from `cutoff` ("HH:MM") to the next day's, in its time zone. A day's
    # statement covers that day; caps and settlement count in it.
    timezone = StringField(required=True, default="Asia/Shanghai")
    cutoff = StringField(required=True, default="00:00")
    # The contract's prices, in minor units of `currency` (fen, cents) per 1,000 points:
    # what the partner pays for the points it credits, what the brand pays for the points
    # owners spend there.
    currency = StringField(required=True, default="CNY")
    credit_rate_per_1000 = IntField(required=True, default=0, min_value=0)
    debit_rate_per_1000 = IntField(required=True, default=0, min_value=0)
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)
    created_by = ObjectIdField()

    meta = {"collection": "partners", "indexes": []}


class PartnerTransaction(Document):
    """One of a partner's transactions as our ledger holds it: a credit, a debit paid with a
    pay code, or a reversal of either, unique per partner and `partner_txn_id`.

    `kind`, `user_id` and `points` are what we agree happened: a statement's lines are
    matched against them, and an admin resolving an exception corrects them. What the
    transaction and its corrections moved is in the ledger (`entry_ids`) and counted by day
    in `PartnerDayTotal`, which settlements add up."""

    partner_id = ObjectIdField(required=True)
    partner_txn_id = StringField(required=True)
    kind = StringField(required=True, choices=PARTNER_TXN_KINDS)
    user_id = ObjectIdField(required=True)
    points = IntField(required=True, min_value=1)
    # A credit or debit: the points its reversals took back so far (at most `points`).
    reversed = IntField(default=0)
    # A debit: the lots it took points from and no reversal has given back yet.
    restorable = ListField(DictField())
    # A reversal: the transaction it reverses, and that one's kind.
    original_txn_id = StringField()
    original_kind = StringField(choices=DIRECTIONS)
    pay_code = StringField()
    entry_id = ObjectIdField(required=True)
    entry_ids = ListField(ObjectIdField())
    balance_after = IntField(required=True)
    occurred_at = DateTimeField()
    # The partner's business day the transaction belongs to (of `occurred_at`, else of
    # `created_at`): the day of the statement that must list it.
    business_day = StringField(required=True)
    # Written by an admin accepting a statement line we lacked.
    exception_id = StringField()
    # Taken back by an admin resolving this statement exception: no statement should list it.
    voided_by = StringField()
    created_at = DateTimeField(required=True)

    meta = {
        "collection": "partner_transactions",
        "indexes": [
            {"fields": ["partner_id", "partner_txn_id"], "unique": True},
            ("partner_id", "business_day"),
        ],
    }


class PartnerDayTotal(Document):
    """The points one partner moved in one direction on one business day (`_id`
    "<partner id>:<day>:<direction>"): `booked`, net of reversals and corrections, is what
    the day's settlement counts; `through_api`, the credits or debits the partner itself
    sent, is what its daily cap limits. Written in the transaction of each movement."""

    id = StringField(primary_key=True)
    partner_id = ObjectIdField(required=True)
    day = StringField(required=True)
    direction = StringField(required=True, choices=DIRECTIONS)
    booked = IntField(required=True, default=0)
    through_api = IntField(required=True, default=0)
    movements = IntField(required=True, default=0)

    meta = {"collection": "partner_day_totals", "indexes": [("partner_id", "day")]}


class PayCode(Document):
    """A one-time code an owner shows a partner to pay with points (`_id`: the six digits).

    Live two minutes, used once, for at most `max_points`, at `partner_id` if set. A code
    is issued again to someone else only long after it expired (`pay_codes.REISSUE_AFTER`),
    so a late request naming it finds it expired rather than another owner's."""

    id = StringField(primary_key=True)
    user_id = ObjectIdField(required=True)
    city_code = StringField()
    partner_id = ObjectIdField()
    max_points = IntField(required=True, min_value=1)
    issued_at = DateTimeField(required=True)
    expires_at = DateTimeField(required=True)
    used_at = DateTimeField()
    used_by = ObjectIdField()
    used_for = StringField()

    meta = {"collection": "pay_codes", "indexes": []}


STATEMENT_QUEUED = "queued"
STATEMENT_MATCHED = "matched"
STATEMENT_FAILED = "failed"
STATEMENT_STATUSES = (STATEMENT_QUEUED, STATEMENT_MATCHED, STATEMENT_FAILED)

MISSING_OURS = "missing_ours"
MISSING_THEIRS = "missing_theirs"
POINTS_MISMATCH = "points_mismatch"
MEMBER_MISMATCH = "member_mismatch"
KIND_MISMATCH = "kind_mismatch"
DUPLICATE = "duplicate"
LATE = "late"
OVER_REVERSAL = "over_reversal"
TOTALS_MISMATCH = "totals_mismatch"
EXCEPTION_KINDS = (
    MISSING_OURS,
    MISSING_THEIRS,
    POINTS_MISMATCH,
    MEMBER_MISMATCH,
    KIND_MISMATCH,
    DUPLICATE,
    LATE,
    OVER_REVERSAL,
    TOTALS_MISMATCH,
)
EXCEPTION_OPEN = "open"
EXCEPTION_RESOLVED = "resolved"
# A later statement of the same day no longer shows it.
EXCEPTION_WITHDRAWN = "withdrawn"
EXCEPTION_STATUSES = (EXCEPTION_OPEN, EXCEPTION_RESOLVED, EXCEPTION_WITHDRAWN)
ACCEPT_THEIRS = "accept_theirs"
KEEP_OURS = "keep_ours"
REVERSE_OURS = "reverse_ours"
RESOLUTIONS = (ACCEPT_THEIRS, KEEP_OURS, REVERSE_OURS)


class Statement(Document):
    """A partner's statement of one business day (`_id` "<partner id>:<date>"). A statement
    sent again for the day replaces the upload (`upload_id`); matching then replaces the
    result, keeping what admins resolved."""

    id = StringField(primary_key=True)
    partner_id = ObjectIdField(required=True)
    date = StringField(required=True)
    upload_id = ObjectIdField(required=True)
    version = IntField(required=True, default=1)
    status = StringField(required=True, choices=STATEMENT_STATUSES)
    # The header's control totals: {"count", "total_credit", "total_debit", "total_reversal"}.
    header = DictField()
    line_count = IntField(required=True)
    body_hash = StringField(required=True)
    received_at = DateTimeField(required=True)
    matched_at = DateTimeField()
    matched = IntField()
    # Exceptions of the last matching, by kind.
    exception_counts = DictField()
    error = StringField()

    meta = {"collection": "statements", "indexes": [("partner_id", "date")]}


class StatementChunk(Document):
    """Up to `statements.CHUNK_LINES` lines of one upload, in order: a statement of 100,000
    lines is some fifty documents, written and read in a few commands."""

    statement_id = StringField(required=True)
    upload_id = ObjectIdField(required=True)
    index = IntField(required=True)
    lines = ListField(DictField())

    meta = {"collection": "statement_chunks", "indexes": [("upload_id", "index")]}


class StatementException(Document):
    """A difference between a statement and our ledger. Its `_id` is derived from the
    partner, the day, the kind and the transaction, so matching the day again finds the
    same exception (and what an admin decided about it) rather than a new one."""

    id = StringField(primary_key=True)
    partner_id = ObjectIdField(required=True)
    statement_id = StringField(required=True)
    date = StringField(required=True)
    kind = StringField(required=True, choices=EXCEPTION_KINDS)
    partner_txn_id = StringField()
    # The transaction as each side has it: {"kind", "member_id", "points", "occurred_at"}
    # (and for a reversal "original_txn_id"); control totals for `totals_mismatch`.
    ours = DictField()
    theirs = DictField()
    status = StringField(required=True, choices=EXCEPTION_STATUSES)
    last_seen_upload = ObjectIdField(required=True)
    created_at = DateTimeField(required=True)
    # {"action", "reason", "by", "at", "entry_ids", "user_ids", "booked_on"}
    resolution = DictField()

    meta = {
        "collection": "statement_exceptions",
        "indexes": [("statement_id", "status"), ("partner_id", "status", "date")],
    }


SETTLEMENT_OPEN = "open"
SETTLEMENT_CLOSED = "closed"


class PartnerSettlement(Document):
    """A partner's month (`_id` "<partner id>:<YYYY-MM>"): open while movements may still
    be booked in it, then closed once, with the figures it closed on."""

    id = StringField(primary_key=True)
    partner_id = ObjectIdField(required=True)
    month = StringField(required=True)
    status = StringField(required=True, choices=(SETTLEMENT_OPEN, SETTLEMENT_CLOSED))
    figures = DictField()
    closed_at = DateTimeField()
    closed_by = ObjectIdField()
    updated_at = DateTimeField()

    meta = {"collection": "partner_settlements", "indexes": []}


BULK_PREVIEWED = "previewed"
BULK_QUEUED = "queued"
BULK_RUNNING = "running"
BULK_DONE = "done"
BULK_FAILED = "failed"
BULK_STATUSES = (BULK_PREVIEWED, BULK_QUEUED, BULK_RUNNING, BULK_DONE, BULK_FAILED)

# A line of a bulk credit: ready to apply, invalid as uploaded, applied, refused when
# applied (the owner spent the points a debit needed), or already applied by an earlier
# upload (its key is in the ledger).
LINE_READY = "ready"
LINE_INVALID = "invalid"
LINE_APPLIED = "applied"
LINE_REFUSED = "refused"
LINE_ALREADY = "already_applied"
LINE_STATUSES = (LINE_READY, LINE_INVALID, LINE_APPLIED, LINE_REFUSED, LINE_ALREADY)


class BulkCredit(Document):
    """An admin's upload of a list of owners to credit (`loyalty.bulk_credits`): previewed
    when uploaded, applied on a worker in batches, with a report of every line."""

    status = StringField(required=True, default=BULK_PREVIEWED, choices=BULK_STATUSES)
    filename = StringField(max_length=300)
    uploaded_by = ObjectIdField(required=True)
    started_by = ObjectIdField()
    # Counts by line status, and the points of the lines ready when previewed.
    counts = DictField()
    points = IntField(default=0)
    lines = IntField(default=0)
    error = StringField()
    created_at = DateTimeField(default=utcnow)
    started_at = DateTimeField()
    finished_at = DateTimeField()

    meta = {"collection": "bulk_credits", "indexes": ["-created_at"]}


class BulkCreditLine(Document):
    job_id = ObjectIdField(required=True)
    line = IntField(required=True)
    # The owner as the file names them (id, email or phone), and who that is.
    account = StringField()
    user_id = ObjectIdField()
    city_code = StringField()
    points = IntField()
    reason = StringField()
    # The ledger's idempotency key: the file's `reference`, or the line's content and
    # how many identical lines came before it, so the same file uploaded again applies
    # nothing twice.
    key = StringField()
    status = StringField(required=True, choices=LINE_STATUSES)
    error = StringField()
    entry_id = ObjectIdField()

    meta = {
        "collection": "bulk_credit_lines",
        "indexes": [("job_id", "status", "line"), ("job_id", "line")],
    }
