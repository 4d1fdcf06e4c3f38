from __future__ import annotations

from app.db import transaction
from notifications import services
from notifications.models import Notification
from tests.support import make_person

INBOX = "/api/v1/me/notifications"
PREFERENCES = "/api/v1/me/notification-preferences"


def fill(person, count: int) -> list[str]:
    for number in range(count):
        transaction(
            lambda session, n=number: services.notify(
                session,
                person.id,
                "marketing",
                "announcement",
                {"headline": f"News {n}", "message": "..."},
                f"{person.id}:{n}",
            )
        )
    return [str(n.pk) for n in Notification.objects(user_id=person.user.pk).order_by("id")]


def test_inbox_is_the_callers_own_newest_first_in_pages(client):
    owner, other = make_person("SZ"), make_person("SZ")
    ids = fill(owner, 5)
    fill(other, 2)
    first = client.get(INBOX, query_string={"limit": 3}, headers=owner.headers)
    assert first.status_code == 200
    second = client.get(
        INBOX, query_string={"limit": 3, "cursor": first.json["next_cursor"]}, headers=owner.headers
    ).json
    listed = [item["id"] for item in first.json["items"] + second["items"]]
    assert listed == list(reversed(ids))
    assert second["next_cursor"] is None
    assert first.json["items"][0]["title"] == "News 4"
    assert first.json["items"][0]["read"] is False


def test_read_one_then_unread_filter(client):
    owner = make_person("SZ")
    ids = fill(owner, 3)
    assert client.post(f"{INBOX}/{ids[1]}/read", headers=owner.headers).status_code == 204
    assert client.post(f"{INBOX}/{ids[1]}/read", headers=owner.headers).status_code == 204
    unread = client.get(INBOX, query_string={"unread": "true"}, headers=owner.headers).json
    assert [item["id"] for item in unread["items"]] == [ids[2], ids[0]]
    everything = client.get(INBOX, headers=owner.headers).json["items"]
    assert [item["read"] for item in everything] == [False, True, False]


def test_another_owners_notification_is_not_found(client):
    owner, intruder = make_person("SZ"), make_person("SZ")
    [notification_id] = fill(owner, 1)
    assert (
        client.post(f"{INBOX}/{notification_id}/read", headers=intruder.headers).status_code == 404
    )
    assert client.post(f"{INBOX}/not-an-id/read", headers=intruder.headers).status_code == 404
    assert Notification.objects.get(pk=notification_id).read_at is None


def test_read_all_touches_only_the_callers(client):
    owner, other = make_person("SZ"), make_person("SZ")
    fill(owner, 3)
    fill(other, 1)
    assert client.post(f"{INBOX}/read-all", headers=owner.headers).status_code == 204
    assert (
        client.get(INBOX, query_string={"unread": "true"}, headers=owner.headers).json["items"]
        == []
    )
    assert Notification.objects(user_id=other.user.pk, read_at=None).count() == 1


def test_inbox_needs_a_token(client):
    assert client.get(INBOX).status_code == 401


def test_preferences_default_then_partial_put(client):
    owner = make_person("SZ")
    defaults = client.get(PREFERENCES, headers=owner.headers)
    assert defaults.status_code == 200
    assert defaults.json == {
        "events": {"in_app": True, "push": True},
        "points": {"in_app": True, "push": True},
        "community": {"in_app": True, "push": True},
        "marketing": {"in_app": True, "push": False},
        "account": {"in_app": True, "push": True},
    }

    changed = client.put(
        PREFERENCES,
        headers=owner.headers,
        json={"marketing": {"push": True}, "events": {"in_app": False}},
    )
    assert changed.status_code == 200
    assert changed.json["marketing"] == {"in_app": True, "push": True}
    assert changed.json["events"] == {"in_app": False, "push": True}
    assert client.get(PREFERENCES, headers=owner.headers).json == changed.json


def test_preferences_refuse_unknown_kinds_and_non_booleans(client):
    owner = make_person("SZ")
    for body in (
        {"gossip": {"push": True}},
        {"events": {"push": 1}},
        {"events": {"push": "true"}},
        {"events": {"sms": True}},
    ):
        response = client.put(PREFERENCES, headers=owner.headers, json=body)
        assert response.status_code == 422, body


def test_preferences_put_must_change_something(client):
    owner = make_person("SZ")
    for body in (None, {}, {"events": {}}):
        refused = client.put(PREFERENCES, headers=owner.headers, json=body)
        assert refused.status_code == 422, (body, refused.json)
    missing = client.put(PREFERENCES, headers=owner.headers)
    assert missing.status_code == 422
    assert client.get(PREFERENCES, headers=owner.headers).json["events"] == {
        "in_app": True,
        "push": True,
    }
