from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import dramatiq
import pytest

from app.db import transaction
from app.outbox import DomainEvent, OutboxEvent
from notifications import services
from tests.support import add_vehicle, make_city, make_person, wait_until


@pytest.mark.slow
def test_vehicle_verified_push_goes_through_the_webhook_and_is_retried(
    client, background, push_receiver
):
    # The gateway refuses the community push once (loyalty's points push may come first).
    push_receiver.refuse_once_containing = b'"kind":"account"'
    owner = make_person("SZ", locale="en")
    leader = make_person("SZ", role="circle_leader")
    vehicle = add_vehicle(client, owner.headers, "LSJA24U69MS012345")
    background(
        "worker",
        "dispatcher",
        PUSH_PROVIDER="webhook",
        PUSH_WEBHOOK_URL=push_receiver.url,
        PUSH_WEBHOOK_SECRET="s3cret",
    )

    assert (
        client.post(f"/api/v1/vehicles/{vehicle['id']}/verify", headers=leader.headers).status_code
        == 200
    )

    def community_pushes():
        return [
            (headers, body)
            for headers, body in push_receiver.requests
            if b'"kind":"account"' in body
        ]

    wait_until(lambda: len(community_pushes()) == 2, timeout=60, message="the retried push")
    first, second = community_pushes()
    assert first[1] == second[1]  # the same message, id included, so the gateway can dedupe
    for headers, body in (first, second):
        assert headers["X-Signature"] == hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    body = [b for b in push_receiver.bodies() if b["kind"] == "account"][0]
    assert body["title"] == "Vehicle verified"
    assert body["user_id"] == owner.id


def _zone_in_quiet_hours() -> str:
    """A fixed-offset zone where it is now between 23:00 and 06:00."""
    now = datetime.now(UTC)
    for hours in range(-12, 15):
        zone = f"Etc/GMT{'-' if hours >= 0 else '+'}{abs(hours)}"  # Etc/ signs are inverted
        if (now + timedelta(hours=hours)).hour in {23, 0, 1, 2, 3, 4, 5}:
            return zone
    raise AssertionError("some offset is always at night")


def test_marketing_push_in_quiet_hours_is_held_until_eight(app):
    zone = _zone_in_quiet_hours()
    make_city("NIGHT", timezone=zone)
    owner = make_person("NIGHT")
    services.update_preferences(owner.user.pk, {"marketing": {"push": True}})
    transaction(
        lambda session: services.notify(
            session,
            owner.id,
            "marketing",
            "announcement",
            {"headline": "Spring drive", "message": "Join us"},
            "campaign-1",
        )
    )
    requested = OutboxEvent.objects.get(type=services.PUSH_REQUESTED.name)

    # Imported once the app fixture configured the broker: an actor binds to the broker
    # that is current when it is declared.
    from notifications import tasks

    pushed = DomainEvent.from_document(requested.to_mongo().to_dict())
    tasks.push_notification(pushed.typed(services.PUSH_REQUESTED), None)

    broker = dramatiq.get_broker()
    [raw] = broker.client.hvals(f"{broker.namespace}:notifications.DQ.msgs")
    held = dramatiq.Message.decode(raw)
    assert held.actor_name == "notifications.send_push"
    release = datetime.fromtimestamp(held.options["eta"] / 1000, UTC)
    local_release = release.astimezone(ZoneInfo(zone))
    assert (local_release.hour, local_release.minute) in {(8, 0), (7, 59)}
    assert release - datetime.now(UTC) < timedelta(hours=10)
