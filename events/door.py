"""The door: what a check-in device keeps for an event so that it checks tickets with no
network (the door kit), the figures it shows, and the scans it sent offline that the
server would have refused (the conflicts its leaders review).

A kit holds the public keys that verify the event's tickets (several during a rotation),
its seated attendees with what the door shows of them, and the revoked tickets: the
registrations that were cancelled. A device checks a ticket against it: the signature, the
event, the expiry, the revocation and its own earlier scans (docs/api-guide.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from accounts.services import person_cards
from app import compat
from app.auth import Caller
from app.clock import utcnow
from app.web import paginate
from events import ticket_keys
from events.access import managed_event
from events.listings import describe_event
from events.models import (
    ATTENDED,
    CANCELLED,
    CONFIRMED,
    SCAN_CONFLICT,
    SEATED,
    CheckInScan,
    Event,
    Registration,
)
from events.tickets import CHECK_IN_OPENS, TICKET_GRACE


def door_kit(caller: Caller, event_id: str) -> dict[str, Any]:
    """Everything a door device needs to check the event's tickets offline (the event's
    city's circle leaders, admins)."""
    event = managed_event(caller, event_id)
    now = utcnow()
    registrations = list(
        Registration._get_collection().find(
            {"event_id": event.pk}, {"user_id": 1, "status": 1, "attended_at": 1}
        )
    )
    seated = [r for r in registrations if r["status"] in SEATED]
    cards = person_cards([r["user_id"] for r in seated])
    keys = ticket_keys.verifying_keys(event.city_code, event.city_partner_id, now)
    return {
        "event": describe_event(event),
        "check_in_opens_at": event.starts_at - CHECK_IN_OPENS,
        "check_in_closes_at": event.ends_at + TICKET_GRACE,
        "keys": [{"kid": key.kid, "public_key": key.public_key} for key in keys],
        "attendees": [
            {
                "registration_id": r["_id"],
                "user_id": r["user_id"],
                "display_name": card.display_name if card else "",
                "phone_tail": card.phone_tail if card else None,
                "vehicle": card.vehicle if card else None,
                "status": r["status"],
                "attended_at": r.get("attended_at"),
            }
            for r in seated
            for card in (cards.get(r["user_id"]),)
        ],
        "revoked": [r["_id"] for r in registrations if r["status"] == CANCELLED],
        "counts": _counts(Counter(r["status"] for r in registrations)),
        "generated_at": now,
    }


def _counts(statuses: Mapping[str, int]) -> dict[str, int]:
    return {
        "checked_in": statuses.get(ATTENDED, 0),
        "expected": statuses.get(ATTENDED, 0) + statuses.get(CONFIRMED, 0),
    }


def door_counts(event: Event) -> dict[str, int]:
    """Checked in against expected (checked in or confirmed), counted in one read."""
    rows = Registration._get_collection().aggregate(
        [
            {"$match": {"event_id": event.pk, "status": {"$in": [ATTENDED, CONFIRMED]}}},
            {"$group": {"_id": "$status", "count": {"$sum": 1}}},
        ]
    )
    return _counts({row["_id"]: row["count"] for row in rows})


def conflicts_of(event: Event, cursor: str | None, limit: int) -> dict[str, Any]:
    """The event's offline scans the server would have refused, newest first, with the
    names of the owners they were of."""
    page = paginate(CheckInScan.objects(event_id=event.pk, outcome=SCAN_CONFLICT), cursor, limit)
    cards = person_cards({scan.user_id for scan in page["items"] if scan.user_id})
    page["items"] = [
        {
            **compat.field_values(scan),
            "display_name": card.display_name if card else None,
        }
        for scan in page["items"]
        for card in (cards.get(scan.user_id) if scan.user_id else None,)
    ]
    return page


def check_in_conflicts(
    caller: Caller, event_id: str, cursor: str | None, limit: int
) -> dict[str, Any]:
    """The conflicts of an event its caller manages (its city's leaders, admins)."""
    return conflicts_of(managed_event(caller, event_id), cursor, limit)
