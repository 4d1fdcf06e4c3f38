"""A registration usually takes an event's terms from its process's copy
(events/registration.py, `_terms_seen`) instead of reading the event. A change made by another
process (here: the document changed directly, which leaves this process's copy in place)
must still count from the next registration: the seat's claim is conditioned on each term
the copy decided from, and a refusal the copy decided is decided again from the event."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.clock import utcnow
from app.errors import DomainError
from events import registration
from events.models import Event, Registration
from tests.events.conftest import as_caller, many_owners
from tests.support import within_budget


def _changed_elsewhere(event: Event, **changes: object) -> None:
    Event._get_collection().update_one({"_id": event.pk}, {"$set": changes})


def test_an_event_registered_for_before_is_not_read(make_event):
    event = make_event(capacity=5)
    first, second = many_owners(2)
    registration.register(as_caller(first), str(event.pk))
    caller = as_caller(second)
    # One command with every write, which opens the transaction, and the commit: neither
    # the event's read nor an opening read (the caller's is made by the request).
    with within_budget(2) as commands:
        seated = registration.register(caller, str(event.pk))
    assert seated.status == "confirmed"
    assert not [name for name in commands.names if name.startswith(("find", "aggregate"))]
    assert Event.objects.get(pk=event.pk).seats_left == 3


def test_the_last_seat_taken_elsewhere_waitlists(make_event):
    event = make_event(capacity=3)
    first, second, third = many_owners(3)
    registration.register(as_caller(first), str(event.pk))
    _changed_elsewhere(event, seats_left=0)  # as if two registered through other processes
    waiting = registration.register(as_caller(second), str(event.pk))
    assert (waiting.status, waiting.waitlist_position) == ("waitlisted", 1)
    assert Event.objects.get(pk=event.pk).seats_left == 0
    # Read full: the next one reads the event again, and waits behind.
    assert registration.register(as_caller(third), str(event.pk)).waitlist_position == 2


@pytest.mark.parametrize(
    ("changes", "refusal"),
    [
        ({"status": "cancelled"}, "registration_closed"),
        ({"registration_closes_at": utcnow() - timedelta(minutes=1)}, "registration_closed"),
        ({"verified_owners_only": True}, "not_verified_owner"),
    ],
)
def test_terms_changed_elsewhere_count_from_the_next_registration(make_event, changes, refusal):
    event = make_event(capacity=5)
    first, second = many_owners(2)
    registration.register(as_caller(first), str(event.pk))
    _changed_elsewhere(event, **changes)
    with pytest.raises(DomainError) as refused:
        registration.register(as_caller(second), str(event.pk))
    assert refused.value.error == refusal
    assert Registration.objects(event_id=event.pk).count() == 1
    assert Event.objects.get(pk=event.pk).seats_left == 4


def test_a_refusal_the_copy_decided_is_decided_again_from_the_event(make_event):
    event = make_event(capacity=5, verified_owners_only=True)
    verified, unverified = many_owners(1, verified_owner=True)[0], many_owners(1)[0]
    registration.register(as_caller(verified), str(event.pk))
    _changed_elsewhere(event, verified_owners_only=False)
    assert registration.register(as_caller(unverified), str(event.pk)).status == "confirmed"
    assert Event.objects.get(pk=event.pk).seats_left == 3
