from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
import requests

from app.db import transaction
from app.outbox import DomainEvent, OutboxEvent
from notifications import services
from notifications.domain_events import PUSH_REQUESTED
from notifications.models import Notification, NotificationPreferences, PushRequest
from notifications.push import PushMessage, WebhookProvider, quiet_hours_hold
from tests.support import make_person


def notify(
    person, kind="community", key="cause-1", template="vehicle_verified", params=None
) -> bool:
    params = params or {"model": "smart #1", "vin": "LSJA24U69MS012345", "vehicle_id": "v1"}
    return transaction(
        lambda session: services.notify(session, person.id, kind, template, params, key)
    )


def pushes() -> list[OutboxEvent]:
    return list(OutboxEvent.objects(type=services.PUSH_REQUESTED.name))


def test_notify_fills_the_inbox_in_the_owners_locale_and_requests_a_push(app):
    english, chinese = make_person("SZ", locale="en"), make_person("SZ", locale="zh-CN")
    assert notify(english, key="a") is True
    assert notify(chinese, key="b") is True

    assert Notification.objects.get(user_id=english.user.pk).title == "Vehicle verified"
    assert Notification.objects.get(user_id=chinese.user.pk).title == "车辆认证成功"
    [push_for_english, _] = sorted(pushes(), key=lambda e: e.payload["user_id"] != english.id)
    assert push_for_english.payload["title"] == "Vehicle verified"
    assert push_for_english.payload["kind"] == "community"


def test_notify_is_once_per_dedupe_key(app):
    owner = make_person("SZ")
    assert notify(owner) is True
    assert notify(owner) is False
    assert Notification.objects.count() == 1
    assert len(pushes()) == 1


def test_in_app_off_means_no_inbox_entry_but_push_still_goes_once(app):
    owner = make_person("SZ")
    services.update_preferences(owner.user.pk, {"community": {"in_app": False}})
    assert notify(owner) is True
    assert notify(owner) is False
    assert Notification.objects.count() == 0
    assert len(pushes()) == 1


def test_a_push_only_notice_is_sent_once_even_after_the_outbox_sweep(app):
    owner = make_person("SZ")
    services.update_preferences(owner.user.pk, {"community": {"in_app": False}})
    assert notify(owner) is True
    # The dispatcher sweeps outbox events after a week; the cause may come again later.
    OutboxEvent.objects.delete()
    assert notify(owner) is False
    assert pushes() == []


def test_both_channels_off_means_nothing(app):
    owner = make_person("SZ")
    services.update_preferences(owner.user.pk, {"community": {"in_app": False, "push": False}})
    assert notify(owner) is False
    assert Notification.objects.count() == 0
    assert pushes() == []


def test_marketing_push_is_off_by_default(app):
    owner = make_person("SZ")
    assert services.preferences(owner.user.pk)["marketing"] == {"in_app": True, "push": False}
    assert (
        notify(
            owner,
            kind="marketing",
            template="announcement",
            params={"headline": "Spring drive", "message": "Join us"},
        )
        is True
    )
    assert Notification.objects.get().title == "Spring drive"
    assert pushes() == []


def test_an_erased_owner_is_not_notified(app):
    owner = make_person("SZ")
    owner.user.update(set__erased_at=datetime.now(UTC))
    assert notify(owner) is False


def test_unknown_kind_is_a_programming_error(app):
    with pytest.raises(ValueError):
        notify(make_person("SZ"), kind="gossip")


def test_preferences_keep_what_is_not_changed(app):
    owner = make_person("SZ")
    services.update_preferences(owner.user.pk, {"events": {"push": False}})
    merged = services.update_preferences(owner.user.pk, {"marketing": {"push": True}})
    assert merged["events"] == {"in_app": True, "push": False}
    assert merged["marketing"] == {"in_app": True, "push": True}
    assert merged["points"] == {"in_app": True, "push": True}


def test_erasure_removes_inbox_and_preferences(app):
    owner = make_person("SZ")
    notify(owner)
    services.update_preferences(owner.user.pk, {"community": {"in_app": False}})
    notify(owner, key="push-only")
    transaction(lambda session: services.erase_user_data(session, owner.id))
    assert Notification.objects.count() == 0
    assert NotificationPreferences.objects.count() == 0
    assert PushRequest.objects.count() == 0


@pytest.mark.parametrize(
    ("utc", "zone", "hold"),
    [
        (datetime(2026, 5, 1, 15, 0, tzinfo=UTC), "Asia/Shanghai", timedelta(hours=9)),  # 23:00
        (datetime(2026, 5, 1, 23, 59, tzinfo=UTC), "Asia/Shanghai", timedelta(minutes=1)),
        (datetime(2026, 5, 2, 0, 0, tzinfo=UTC), "Asia/Shanghai", None),  # 08:00 sharp
        (datetime(2026, 5, 1, 13, 59, tzinfo=UTC), "Asia/Shanghai", None),  # 21:59
        (datetime(2026, 5, 1, 14, 0, tzinfo=UTC), "Asia/Shanghai", timedelta(hours=10)),  # 22:00
        # New York springs forward that night: 23:00 EST to 08:00 EDT is 8 hours, not 9.
        (datetime(2026, 3, 8, 4, 0, tzinfo=UTC), "America/New_York", timedelta(hours=8)),
    ],
)
def test_quiet_hours_hold_until_eight_in_the_city(utc, zone, hold):
    assert quiet_hours_hold(utc, zone) == hold


def test_webhook_provider_posts_signed_json(push_receiver):
    provider = WebhookProvider(push_receiver.url, "s3cret")
    provider.send(PushMessage(id="e1", user_id="u1", kind="events", title="标题", body="b"))

    [(headers, body)] = push_receiver.requests
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Signature"] == hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert push_receiver.bodies() == [
        {"id": "e1", "user_id": "u1", "kind": "events", "title": "标题", "body": "b", "data": {}}
    ]


def test_webhook_provider_raises_on_a_refusal_so_the_message_is_retried(push_receiver):
    push_receiver.answers = [503]
    with pytest.raises(requests.HTTPError):
        WebhookProvider(push_receiver.url, "s3cret").send(
            PushMessage(id="e1", user_id="u1", kind="events", title="t", body="b")
        )


def test_send_push_skips_when_push_was_turned_off_since(app):
    owner = make_person("SZ")
    notify(owner)
    [event] = pushes()
    requested = DomainEvent.from_document(event.to_mongo().to_dict()).typed(PUSH_REQUESTED)
    services.update_preferences(owner.user.pk, {"community": {"push": False}})
    assert services.send_push(requested) is False
    services.update_preferences(owner.user.pk, {"community": {"push": True}})
    assert services.send_push(requested) is True


def test_params_given_per_locale_are_rendered_in_the_owners_language():
    from notifications.templates import render

    reason = {"zh-CN": "参加活动", "en": "you attended an event"}
    assert render("points_earned", "en", {"points": 110, "reason": reason})[1] == (
        "You earned 110 points: you attended an event."
    )
    assert render("points_earned", "zh-CN", {"points": 110, "reason": reason})[1] == (
        "您获得了 110 积分：参加活动。"
    )
    assert render("points_earned", "en", {"points": 5, "reason": "Custom rule"})[1] == (
        "You earned 5 points: Custom rule."
    )
