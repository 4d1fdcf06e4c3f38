"""HTTP request -> outbox -> dispatcher -> Redis -> real worker process -> MongoDB."""

from __future__ import annotations

from app.handlers import HandledEvent
from app.outbox import OutboxEvent
from notifications.models import Notification
from tests.support import add_vehicle, make_person, wait_until


def test_vehicle_verified_reaches_owner_inbox_through_real_worker(client, background):
    owner = make_person("SZ", locale="en")
    leader = make_person("SZ", role="circle_leader")
    vehicle = add_vehicle(client, owner.headers, "LSJA24U69MS012345")
    background("worker", "dispatcher")

    assert (
        client.post(f"/api/v1/vehicles/{vehicle['id']}/verify", headers=leader.headers).status_code
        == 200
    )

    notification = wait_until(
        lambda: Notification.objects(user_id=owner.user.pk, template="vehicle_verified").first(),
        message="the owner's notification",
    )
    assert notification.title == "Vehicle verified"
    # About the owner's own account, not the community (preferences switch it on its own).
    assert notification.kind == "account"
    assert "LSJA24U69MS012345" in notification.body
    event = OutboxEvent.objects.get(type="vehicle.verified")
    assert (
        HandledEvent.objects(event_id=event.pk, handler="notifications.vehicle_verified").count()
        == 1
    )
