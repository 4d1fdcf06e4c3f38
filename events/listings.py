"""Events as the API lists and shows them: schedule times in the city's time zone, free
seats, the waitlist length and the caller's own registration; the lists of published
events, of the events a circle leader manages, of an event's registrations and of an
owner's registrations. Their lifecycle is `events.services`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bson import ObjectId

from accounts.services import CIRCLE_LEADER, DEFAULT_TIMEZONE, Owner, city_timezones, person_cards
from app import compat
from app.auth import Caller
from app.clock import utcnow
from app.errors import Forbidden
from app.web import paginate, paginate_stored
from events import seats
from events.access import managed_event, visible_event
from events.models import ACTIVE, DRAFT, PUBLISHED, WAITLISTED, Event, Registration

TIME_FIELDS = ("starts_at", "ends_at", "registration_closes_at")


def as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def city_zone(code: str, zones: dict[str, str] | None = None) -> str:
    """The city's time zone name (`zones` saves the lookup when describing many events)."""
    return (zones if zones is not None else city_timezones()).get(code, DEFAULT_TIMEZONE)


def city_time(event: Event, moment: datetime) -> datetime:
    """A time of an event's (a window it opens or closes), in its city's time zone like the
    event's own times."""
    return moment.astimezone(ZoneInfo(city_zone(event.city_code)))


def waitlist_counts(event_ids: list[ObjectId]) -> dict[ObjectId, int]:
    """How many owners wait for each of the events (absent: none), counted afresh: what
    `Event.waitlisted` keeps (migrations, checks)."""
    rows = Registration._get_collection().aggregate(
        [
            {"$match": {"event_id": {"$in": event_ids}, "status": WAITLISTED}},
            {"$group": {"_id": "$event_id", "count": {"$sum": 1}}},
        ]
    )
    return {row["_id"]: row["count"] for row in rows}


@dataclass(frozen=True, slots=True)
class OwnRegistration:
    """The caller's registration for an event of a list, as the list shows it, taken from
    the stored document directly (`RegistrationSchema`'s fields); also what `register`
    answers, from the document it wrote."""

    id: ObjectId
    event_id: ObjectId
    user_id: ObjectId
    city_code: str
    status: str
    waitlist_position: int | None
    created_at: datetime
    confirmed_at: datetime | None
    promoted_at: datetime | None
    cancelled_at: datetime | None
    attended_at: datetime | None

    @property
    def pk(self) -> ObjectId:
        return self.id

    @classmethod
    def stored(cls, found: dict[str, Any]) -> OwnRegistration:
        return cls(
            id=found["_id"],
            event_id=found["event_id"],
            user_id=found["user_id"],
            city_code=found["city_code"],
            status=found["status"],
            waitlist_position=found.get("waitlist_position"),
            created_at=found.get("created_at") or utcnow(),  # the model's default
            confirmed_at=found.get("confirmed_at"),
            promoted_at=found.get("promoted_at"),
            cancelled_at=found.get("cancelled_at"),
            attended_at=found.get("attended_at"),
        )


_OWN_REGISTRATION = [f.name for f in fields(OwnRegistration) if f.name != "id"]


def registrations_of(
    user_id: ObjectId, event_ids: list[ObjectId]
) -> dict[ObjectId, OwnRegistration]:
    """The owner's registration for each of the events that has one, in one query. The owner
    leads the filter: SecantusDB reads it from the (user_id, -id) index, where an `$in` on
    `event_id` written first scans the whole collection (0.7 ms against 215 ms at 50,000
    registrations)."""
    found = Registration._get_collection().find(
        {"user_id": user_id, "event_id": {"$in": event_ids}}, _OWN_REGISTRATION
    )
    return {row["event_id"]: OwnRegistration.stored(row) for row in found}


@dataclass(frozen=True, slots=True)
class ListedEvent:
    """An event of the published list, taken from its stored document directly (the fields
    `describe_events` shows), not decoded into an `Event`: every owner opening the app
    lists events, and the documents' decode was a fifth of the list's CPU."""

    pk: ObjectId
    city_code: str
    club_id: ObjectId | None
    organizer_id: ObjectId
    title: str
    description: str
    venue: str
    starts_at: datetime
    ends_at: datetime
    registration_closes_at: datetime
    capacity: int
    seats_left: int
    seat_buckets: int | None
    waitlisted: int
    points_reward: int
    verified_owners_only: bool
    status: str
    cancel_reason: str | None
    created_at: datetime
    published_at: datetime | None
    cancelled_at: datetime | None
    completed_at: datetime | None
    city_partner_id: ObjectId | None
    drop_id: ObjectId | None
    # The fields above but `pk`, by name, as `stored` took them: what `field_values` hands
    # out without reading each attribute again.
    values: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def stored(cls, found: dict[str, Any]) -> ListedEvent:
        """From the stored document, with the model's defaults for what it lacks."""
        values = {name: found.get(name, default) for name, default in _LISTED_DEFAULTS}
        values["created_at"] = found.get("created_at") or utcnow()
        return cls(pk=found["_id"], values=values, **values)

    def field_values(self) -> dict[str, Any]:
        """Its fields by name, as `compat.field_values` gives a document's (with `id`)."""
        return {"id": self.pk, **self.values}


# What `ListedEvent.stored` takes from the document as stored (the model's fields of the
# same names), and the model's defaults for those a document may lack.
_LISTED_FIELDS = [
    f.name for f in fields(ListedEvent) if f.name not in {"pk", "created_at", "values"}
]
_EVENT_DEFAULTS = {
    "description": "",
    "waitlisted": 0,
    "points_reward": 100,
    "verified_owners_only": False,
    "status": DRAFT,
}
_LISTED_DEFAULTS = [(name, _EVENT_DEFAULTS.get(name)) for name in _LISTED_FIELDS]
_LISTED_PROJECTION = [*_LISTED_FIELDS, "created_at"]


def describe_events(
    events: Sequence[Event | ListedEvent], user_id: ObjectId | None = None
) -> list[dict[str, Any]]:
    """Events as the API shows them: schedule times in the city's time zone, free seats, the
    waitlist length and, for a caller (`user_id`), their own registration. The events carry
    all but the time zones, which every process keeps (`city_timezones`), and the caller's
    registrations, one read for the page however many events it holds."""
    zones = city_timezones({event.city_code for event in events})
    mine = registrations_of(user_id, [event.pk for event in events]) if user_id else {}
    # A flagship event's seats are split in buckets: one more read, only for such a page.
    split = seats.live_seats(events)
    documents = []
    for event in events:
        zone = city_zone(event.city_code, zones)
        document: dict[str, Any] = (
            event.field_values() if isinstance(event, ListedEvent) else compat.field_values(event)
        )
        for name in TIME_FIELDS:
            document[name] = getattr(event, name).astimezone(ZoneInfo(zone))
        document["timezone"] = zone
        document["waitlist_count"] = event.waitlisted
        document["seats_left"] = split.get(event.pk, event.seats_left)
        document["seat_buckets"] = event.seat_buckets or 1
        if user_id is not None:
            registration = mine.get(event.pk)
            active = registration is not None and registration.status in ACTIVE
            document["my_registration"] = registration if active else None
        documents.append(document)
    return documents


def describe_event(event: Event, user_id: ObjectId | None = None) -> dict[str, Any]:
    """One event as the API shows it (see `describe_events`) and, for a caller, their own
    registration."""
    [document] = describe_events([event], user_id)
    return document


def event_details(caller: Caller, event_id: str) -> dict[str, Any]:
    return describe_event(visible_event(caller, event_id), user_id=caller.user.pk)


def list_events(
    city: str | None,
    start: datetime | None,
    end: datetime | None,
    cursor: str | None,
    limit: int,
    user_id: ObjectId | None = None,
) -> dict[str, Any]:
    """Published events, soonest first; upcoming ones unless `start` says otherwise; each
    with `user_id`'s registration."""
    starts: dict[str, Any] = {"$gte": as_utc(start or utcnow())}
    if end is not None:
        starts["$lt"] = as_utc(end)
    query: dict[str, Any] = {"status": PUBLISHED, "starts_at": starts}
    if city:
        query["city_code"] = city
    page = paginate_stored(
        Event, query, _LISTED_PROJECTION, cursor, limit, order=("starts_at", "id")
    )
    page["items"] = describe_events([ListedEvent.stored(found) for found in page["items"]], user_id)
    return page


def managed_events(
    caller: Caller, city: str | None, status: str | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    """Events of the cities the caller leads (admins: every city) in any status, drafts
    included, soonest first; 403 for someone who leads no city, or not `city`."""
    cities = caller.cities_for(CIRCLE_LEADER)
    if cities is not None and (not cities or (city and city not in cities)):
        raise Forbidden(message="Only the city's circle leaders and admins see its events.")
    query = Event.objects(city_code=city) if city else Event.objects()
    if cities is not None and not city:
        query = query.filter(city_code__in=sorted(cities))
    if status:
        query = query.filter(status=status)
    page = paginate(query, cursor, limit, order=("starts_at", "id"))
    page["items"] = describe_events(page["items"])
    return page


def event_registrations(
    caller: Caller, event_id: str, status: str | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    event = managed_event(caller, event_id)
    query = Registration.objects(event_id=event.pk)
    if status:
        query = query.filter(status=status)
    return paginate(query, cursor, limit, order=("id",))


def my_registrations(user: Owner, cursor: str | None, limit: int) -> dict[str, Any]:
    page = paginate(Registration.objects(user_id=user.pk), cursor, limit)
    events = Event.objects(pk__in=[registration.event_id for registration in page["items"]])
    by_id = {document["id"]: document for document in describe_events(list(events))}
    page["items"] = [
        {
            **registration.to_mongo().to_dict(),
            "id": registration.pk,
            "event": by_id[registration.event_id],
        }
        for registration in page["items"]
        if registration.event_id in by_id
    ]
    return page


def registration_list(event: Event, search: str = "") -> list[dict[str, Any]]:
    """Every registration of an event, oldest first, with what staff see of its owner (name,
    phone tail, verified vehicle); with `search`, those whose name holds it or whose phone
    ends with it. Two reads, for the console's list and its CSV."""
    registrations = list(Registration.objects(event_id=event.pk).order_by("id"))
    cards = person_cards({registration.user_id for registration in registrations})
    rows = []
    needle = search.strip().casefold()
    for registration in registrations:
        card = cards.get(registration.user_id)
        name = card.display_name if card else ""
        tail = card.phone_tail if card else None
        by_phone = needle.isdigit() and tail is not None and tail.endswith(needle)
        if needle and needle not in name.casefold() and not by_phone:
            continue
        rows.append(
            {
                "registration_id": registration.pk,
                "user_id": registration.user_id,
                "display_name": name,
                "phone_tail": tail,
                "vehicle": card.vehicle if card else None,
                "status": registration.status,
                "waitlist_position": registration.waitlist_position,
                "created_at": registration.created_at,
                "attended_at": registration.attended_at,
            }
        )
    return rows
