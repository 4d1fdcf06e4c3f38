"""City partners: the one company that operates a city under contract, its staff (the city's
circle leaders), its monthly points budget and its monthly scorecards.

Not to be confused with the ecosystem partners of `loyalty.partner_systems` (a charging
operator crediting points machine-to-machine): everything here says `city_partner`.

Contract days are ISO dates (`YYYY-MM-DD`) in the city's time zone, both ends included;
they compare as strings, so "which partner runs the city today" is one indexed range query.
"""

from __future__ import annotations

from mongoengine import (
    DateTimeField,
    DictField,
    Document,
    IntField,
    ObjectIdField,
    StringField,
)

from app.clock import utcnow

# Budget ledger entry kinds: an admin allocates a month; publishing an event reserves
# capacity x reward; each check-in draws its reward from the reservation; completing or
# cancelling the event releases what was not drawn.
ALLOCATE = "allocate"
RESERVE = "reserve"
DRAW = "draw"
RELEASE = "release"
BUDGET_ENTRY_KINDS = (ALLOCATE, RESERVE, DRAW, RELEASE)


class CityPartner(Document):
    name = StringField(required=True, max_length=200)
    contact = StringField(required=True, max_length=500)
    city_code = StringField(required=True)
    contract_start = StringField(required=True)
    contract_end = StringField(required=True)
    created_by = ObjectIdField()
    created_at = DateTimeField(default=utcnow)
    # Set by the daily job once the contract is over and its leaders lost the city.
    ended_at = DateTimeField()

    meta = {
        "collection": "city_partners",
        "indexes": [("city_code", "contract_start"), ("ended_at", "contract_end")],
    }


class CityPartnerLock(Document):
    """One per city, bumped by every transaction that creates or extends a contract there:
    two such transactions write the same document, so the second aborts (WriteConflict),
    retries on a fresh snapshot and sees the first one's contract. This is what makes
    "at most one partner per city and day" hold under concurrency."""

    city_code = StringField(primary_key=True)
    version = IntField(default=0)

    meta = {"collection": "city_partner_locks", "indexes": []}


class CityPartnerLeader(Document):
    """A circle leader working for a city partner: attached when granted the city (or when
    the partner takes over the city's leaders), detached when the contract ends."""

    city_partner_id = ObjectIdField(required=True)
    user_id = ObjectIdField(required=True)
    city_code = StringField(required=True)
    attached_at = DateTimeField(default=utcnow)
    detached_at = DateTimeField()

    meta = {
        "collection": "city_partner_leaders",
        "indexes": [
            {"fields": ["city_partner_id", "user_id"], "unique": True},
            ("user_id", "detached_at"),
            ("city_code", "detached_at"),
        ],
    }


class CityPartnerBudget(Document):
    """The cached figures of one partner's month, updated in the transaction of each entry
    by conditional `$inc`s: `left = allocated - reserved + released` never goes below 0."""

    city_partner_id = ObjectIdField(required=True)
    month = StringField(required=True)
    allocated = IntField(default=0, min_value=0)
    reserved = IntField(default=0, min_value=0)
    drawn = IntField(default=0, min_value=0)
    released = IntField(default=0, min_value=0)
    left = IntField(default=0, min_value=0)

    meta = {
        "collection": "city_partner_budgets",
        "indexes": [{"fields": ["city_partner_id", "month"], "unique": True}],
    }


class CityPartnerReservation(Document):
    """What one event holds of its partner's month: check-ins draw from `outstanding`
    (conditionally, so never more than was reserved), the event's end releases the rest."""

    id = ObjectIdField(primary_key=True)  # the event's id
    city_partner_id = ObjectIdField(required=True)
    month = StringField(required=True)
    reserved = IntField(default=0, min_value=0)
    drawn = IntField(default=0, min_value=0)
    released = IntField(default=0, min_value=0)
    outstanding = IntField(default=0, min_value=0)

    meta = {"collection": "city_partner_reservations", "indexes": []}


class CityPartnerBudgetEntry(Document):
    """One immutable budget movement; the cached figures are sums of these."""

    city_partner_id = ObjectIdField(required=True)
    month = StringField(required=True)
    kind = StringField(required=True, choices=BUDGET_ENTRY_KINDS)
    points = IntField(required=True, min_value=0)
    event_id = ObjectIdField()
    # "draw:<registration id>": one draw per attendance, however the check-in is retried.
    once_key = StringField(unique=True, sparse=True)
    actor_id = ObjectIdField()
    created_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "city_partner_budget_entries",
        "indexes": [("city_partner_id", "month", "id")],
    }


class CityPartnerScorecard(Document):
    """A month's figures of one partner, computed by the nightly job (the current month
    also on demand, at most once per SCORECARD_REFRESH), so reading one is one lookup."""

    city_partner_id = ObjectIdField(required=True)
    month = StringField(required=True)
    city_code = StringField(required=True)
    name = StringField(required=True)
    figures = DictField()
    computed_at = DateTimeField(required=True)

    meta = {
        "collection": "city_partner_scorecards",
        "indexes": [{"fields": ["city_partner_id", "month"], "unique": True}, ("month",)],
    }
