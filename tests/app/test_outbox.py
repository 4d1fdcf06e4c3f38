"""Typed domain events: a payload is checked when the event is recorded, a handler reads
it as its dataclass, and documents stored by earlier releases still load."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

import pytest

from accounts.domain_events import VEHICLE_VERIFIED, VehicleVerified
from app.db import transaction
from app.outbox import (
    DomainEvent,
    NoPayload,
    OutboxEvent,
    PayloadMismatch,
    declare,
    record_event,
)
from community.domain_events import POST_REMOVED, ContentChanged, ContentPoints
from events.domain_events import EVENT_PUBLISHED, EventStatusChanged


@dataclass(frozen=True)
class Nested:
    owes: list[str]
    extra: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Shaped:
    count: int
    ratio: float
    who: str | None
    inner: Nested | None = None


SHAPED = declare("test.shaped", Shaped, subject_type="test", about="A test's event")


def test_a_payload_is_checked_field_by_field_when_recorded(app):
    good = Shaped(2, 0.5, None, Nested(["post.published"], {"a": 1}))
    assert SHAPED.dump(good) == {
        "count": 2,
        "ratio": 0.5,
        "who": None,
        "inner": {"owes": ["post.published"], "extra": {"a": 1}},
    }
    for wrong, where in [
        (Shaped("2", 0.5, None), "test.shaped.count"),  # type: ignore[arg-type]
        (Shaped(True, 0.5, None), "test.shaped.count"),
        (Shaped(2, 0.5, 7), "test.shaped.who"),  # type: ignore[arg-type]
        (Shaped(2, 1, "x", Nested([3])), r"test.shaped.inner.owes\[0\]"),  # type: ignore[list-item]
        (Shaped(2, 1, "x", Nested([], {"a": "1"})), r"inner.extra\['a'\]"),  # type: ignore[dict-item]
    ]:
        with pytest.raises(PayloadMismatch, match=where):
            SHAPED.dump(wrong)
    with pytest.raises(PayloadMismatch, match="carries Shaped, not NoPayload"):
        transaction(lambda session: record_event(session, SHAPED, NoPayload(), subject_id="1"))  # type: ignore[arg-type]
    assert OutboxEvent.objects.count() == 0  # the transaction recorded nothing


class Mood(StrEnum):
    GLAD = "glad"


@dataclass(frozen=True)
class Flat:
    who: str
    count: int
    ratio: float
    seen: bool
    why: str | None


FLAT = declare("test.flat", Flat, subject_type="test", about="A test's scalar event")


def test_a_payload_of_scalars_is_checked_and_stored_as_asdict_would(app):
    for good in [Flat("a", 2, 0.5, True, None), Flat(Mood.GLAD, 0, 1, False, "x")]:
        assert FLAT.dump(good) == asdict(good)
    for wrong, where in [
        (Flat("a", True, 0.5, True, None), "test.flat.count"),
        (Flat("a", 2, True, True, None), "test.flat.ratio"),
        (Flat("a", 2, 0.5, 1, None), "test.flat.seen"),  # type: ignore[arg-type]
        (Flat(b"a", 2, 0.5, True, None), "test.flat.who"),  # type: ignore[arg-type]
        (Flat("a", 2, 0.5, True, 7), "test.flat.why"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(PayloadMismatch, match=where):
            FLAT.dump(wrong)


def test_a_handler_reads_its_event_as_declared(app):
    event_id = transaction(
        lambda session: record_event(
            session, VEHICLE_VERIFIED, VehicleVerified("u1", "VIN1", "#1", True), subject_id="v1"
        )
    )
    stored = OutboxEvent._get_collection().find_one({"_id": event_id})
    assert stored["subject_type"] == "vehicle" and stored["payload"]["vin"] == "VIN1"
    wire = DomainEvent.from_document(stored).to_message()
    typed = DomainEvent.from_message(wire).typed(VEHICLE_VERIFIED)
    assert typed.payload == VehicleVerified("u1", "VIN1", "#1", True)
    with pytest.raises(PayloadMismatch, match="not post.removed"):
        typed.typed(POST_REMOVED)


def test_documents_of_earlier_releases_still_load():
    # Content events from before points followed content carried no `points`.
    before_versions = POST_REMOVED.load({"author_id": "u1"})
    assert before_versions == ContentChanged("u1", None)
    current = POST_REMOVED.load(
        {"author_id": "u1", "points": {"version": 3, "owes": [], "status": "removed"}}
    )
    assert current.points == ContentPoints(3, [], "removed")
    # `event.published` carried every text field the publication changed (budget_month).
    published = EVENT_PUBLISHED.load({"title": "Drive", "budget_month": "2026-05"})
    assert published == EventStatusChanged("Drive")
    with pytest.raises(PayloadMismatch, match="no 'vin'"):
        VEHICLE_VERIFIED.load({"owner_id": "u1", "model": "#1", "first_verified_vehicle": True})
