"""Drops and their entries.

A drop releases a reward's stock or an event's seats to many owners at once. Owners enter
while it is open; each entry is one document of the owner's own (unique per owner and
drop), so entering writes nothing shared. A job on the workers decides the entries in
order (`drops.allocation`): the order of arrival for a first-come drop, the draw for a
draw (`drops.draw`), and writes each decision on its entry, which is all an owner polling
their entry reads.

The drop document is written by its creator once, then by its job alone (its progress and
figures): never by an entry, nor by the handlers that tell entrants, which each record
what they told in a document of their own (`Told`) rather than queue on the drop.
"""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    IntField,
    ListField,
    LongField,
    ObjectIdField,
    StringField,
)

from app.clock import utcnow

REWARD = "reward"
EVENT = "event"
TARGET_TYPES = (REWARD, EVENT)

FIRST_COME = "first_come"
DRAW = "draw"
MODES = (FIRST_COME, DRAW)

# An entry, as its owner sees it: entered until decided, then won, lost or refused (with
# the reason, an eligibility slug). `selected` is the job's own step between: a place is
# set aside for the entry, and the redemption or registration is being made.
ENTERED = "entered"
SELECTED = "selected"
WON = "won"
LOST = "lost"
REFUSED = "refused"
ENTRY_STATUSES = (ENTERED, SELECTED, WON, LOST, REFUSED)
SHOWN_STATUSES = (ENTERED, WON, LOST, REFUSED)
UNDECIDED = (ENTERED, SELECTED)

# The drop's own progress: open for entries (by its times), then decided once every entry
# is won, lost or refused and the reward or event is released again.
RUNNING = "running"
DECIDED = "decided"
DROP_STATUSES = (RUNNING, DECIDED)


class Drop(Document):
    target_type = StringField(required=True, choices=TARGET_TYPES)
    target_id = ObjectIdField(required=True)
    title = StringField(required=True)
    # The event's city (its leaders organise the drop); None for a reward.
    city_code = StringField()
    opens_at = DateTimeField(required=True)
    closes_at = DateTimeField(required=True)
    quantity = IntField(required=True, min_value=1)
    per_owner_limit = IntField(required=True, min_value=1)
    mode = StringField(required=True, choices=MODES)
    # Who may enter, checked on entry and again when the entry's turn comes.
    verified_owners_only = BooleanField(required=True, default=False)
    min_tier = StringField()
    city_codes = ListField(StringField())
    # A reward's points per unit, held for a draw's entries and spent by its winners.
    cost = IntField(min_value=0)
    # A draw's seed: made at creation, its SHA-256 published at once (`seed_hash`), the
    # seed itself only once the draw is made (`seed_revealed_at`).
    seed = StringField()
    seed_hash = StringField()
    seed_revealed_at = DateTimeField()
    status = StringField(required=True, default=RUNNING, choices=DROP_STATUSES)
    created_by = ObjectIdField(required=True)
    created_at = DateTimeField(default=utcnow)

    # --- the job's progress (`drops.allocation`) ---
    # One job runs a drop at a time: it holds the drop until `lease_until`.
    lease = StringField()
    lease_until = DateTimeField()
    # Entries that arrived before this (microseconds) are counted in the figures.
    counted_until = LongField(required=True, default=0)
    # First come: entries that arrived before this were considered, in order.
    ordered_until = LongField(required=True, default=0)
    # A reward's draw: entries that arrived before this have their points held (or were
    # refused for too few).
    held_until = LongField(required=True, default=0)
    # Places given to entries (won, or selected and being made), and entries considered.
    allocated = IntField(required=True, default=0)
    considered = IntField(required=True, default=0)
    # A draw's order is made (its seed then revealed).
    drawn = BooleanField(required=True, default=False)
    # Every place is won (or nothing is left to give): the rest of the entries lose.
    full = BooleanField(required=True, default=False)
    decided_at = DateTimeField()

    # --- the figures (`drops.organiser_figures`) ---
    entries = IntField(required=True, default=0)
    # The busiest second of arrivals so far, and when it was; the count of the second the
    # count stopped in, not yet complete ({"<unix second>": count}).
    peak_per_second = IntField(required=True, default=0)
    peak_second_at = DateTimeField()
    per_second = DictField()
    first_entry_at = DateTimeField()
    last_entry_at = DateTimeField()
    won = IntField(required=True, default=0)
    lost = IntField(required=True, default=0)
    # Refusals by reason: {"<slug>": count}.
    refused = DictField()

    meta = {
        "collection": "drops",
        "indexes": [("status", "opens_at"), ("target_id",)],
    }


class Entry(Document):
    drop_id = ObjectIdField(required=True)
    user_id = ObjectIdField(required=True)
    quantity = IntField(required=True, min_value=1)
    # When the API accepted it, in microseconds since the epoch (the API's clock): the
    # order of a first-come drop, with `_id` breaking ties.
    arrival = LongField(required=True)
    entered_at = DateTimeField(required=True)
    status = StringField(required=True, default=ENTERED, choices=ENTRY_STATUSES)
    # Why it was refused: an eligibility slug (`drops.errors`, or the service's own).
    reason = StringField()
    # Its place in the order it was decided in (1 first), once its turn came.
    position = IntField()
    # The points held for it (a reward's draw), until it is won or lost.
    held = IntField()
    # What it won: the quantity, and the redemption or registration made.
    allocated = IntField()
    made_id = ObjectIdField()
    decided_at = DateTimeField()
    # The Idempotency-Key it was entered with, and the hash of that request's body.
    request_key = StringField()
    request_hash = StringField()

    meta = {
        "collection": "drop_entries",
        "indexes": [
            # One entry per owner and drop; the owner leads, so that it also finds an
            # owner's entries (their export) on its own.
            {"fields": ["user_id", "drop_id"], "unique": True},
            # The job reads a drop's entries by time of arrival.
            ("drop_id", "arrival"),
        ],
    }


class Told(Document):
    """Entrants told of their entry's end by one `drop.entries_decided` event (`_id`)."""

    id = StringField(primary_key=True)
    drop_id = ObjectIdField(required=True)
    count = IntField(required=True)
    at = DateTimeField(required=True)

    meta = {"collection": "drop_told", "indexes": [("drop_id", "at")]}
