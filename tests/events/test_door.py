"""The door over HTTP: the door kit, Ed25519 tickets a device verifies with its keys alone,
scans with nonces (sent again and again, concurrently, from two devices), offline scans
kept as conflicts, and key rotation."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.clock import utcnow
from events import ticket_keys, tickets
from events.models import CheckInScan, Registration, TicketKey
from tests.events.conftest import API, deliver, register
from tests.support import make_person


@pytest.fixture
def door(client, leader, make_event):
    """An event starting in an hour with two owners registered, and its check-in path."""
    event = make_event(starts_in=timedelta(hours=1), points_reward=120)
    owners = [make_person("SZ", phone=f"+86 138 0013 80{n:02d}") for n in range(2)]
    for owner in owners:
        assert register(client, event.pk, owner).status_code == 201
    return event, owners, f"{API}/events/{event.pk}/check-ins"


def ticket_of(client, event, owner) -> str:
    return client.get(f"{API}/events/{event.pk}/ticket", headers=owner.headers).json["token"]


def scan(token: str, nonce: str, device: str = "door-1", minutes_ago: int = 1, **more) -> dict:
    return {
        "token": token,
        "nonce": nonce,
        "device_id": device,
        "scanned_at": (utcnow() - timedelta(minutes=minutes_ago)).isoformat(),
        **more,
    }


def verifies_with_kit(token: str, kit: dict) -> bool:
    """Check a ticket as a door device does: the kit's keys and nothing else."""
    version, claims_text, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(claims_text + "=" * (-len(claims_text) % 4)))
    [key] = [key for key in kit["keys"] if key["kid"] == claims["k"]]
    public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(key["public_key"]))
    public_key.verify(
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
        f"{version}.{claims_text}".encode(),
    )
    return claims["e"] == kit["event"]["id"] and claims["t"] not in kit["revoked"]


def test_the_kit_verifies_tickets_offline_and_lists_who_is_expected(client, leader, door):
    event, (ann, bob), _ = door
    token = ticket_of(client, event, ann)
    assert (
        client.delete(f"{API}/events/{event.pk}/registrations/me", headers=bob.headers).status_code
        == 204
    )

    kit = client.get(f"{API}/events/{event.pk}/door-kit", headers=leader.headers)
    assert kit.status_code == 200, kit.json
    kit = kit.json
    assert verifies_with_kit(token, kit)
    assert [
        (a["user_id"], a["display_name"], a["phone_tail"], a["status"]) for a in kit["attendees"]
    ] == [(ann.id, ann.user.display_name, "8000", "confirmed")]
    bob_registration = Registration.objects.get(user_id=bob.user.pk)
    assert kit["revoked"] == [str(bob_registration.pk)]
    assert kit["counts"] == {"checked_in": 0, "expected": 1}
    assert kit["event"]["title"] == event.title and kit["check_in_opens_at"]
    # A forged signature or another event's ticket does not pass the device's check.
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidSignature
        verifies_with_kit(forged, kit)

    chengdu = make_person("CD", role="circle_leader")
    assert (
        client.get(f"{API}/events/{event.pk}/door-kit", headers=chengdu.headers).status_code == 404
    )
    assert client.get(f"{API}/events/{event.pk}/door-kit", headers=ann.headers).status_code == 404


def test_a_nonce_is_taken_once_however_often_it_is_sent(client, leader, door):
    event, (ann, _), check_ins = door
    body = scan(ticket_of(client, event, ann), "n-1", offline=True)
    answers = [client.post(check_ins, headers=leader.headers, json=body) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [201, 201, 201]
    assert answers[0].json == answers[1].json == answers[2].json
    assert answers[0].json["status"] == "attended"
    registration = Registration.objects.get(user_id=ann.user.pk)
    # Attended when the door saw it, not when the upload arrived.
    assert abs(registration.attended_at - utcnow()) > timedelta(seconds=50)
    assert CheckInScan.objects(event_id=event.pk).count() == 1
    deliver("event.attended")
    assert client.get(f"{API}/me/points", headers=ann.headers).json["balance"] == 120


def test_one_ticket_scanned_on_two_devices_is_one_attendance_and_one_conflict(client, leader, door):
    event, (ann, _), check_ins = door
    token = ticket_of(client, event, ann)
    first = client.post(
        check_ins, headers=leader.headers, json=scan(token, "a-1", "door-a", offline=True)
    )
    second = client.post(
        check_ins, headers=leader.headers, json=scan(token, "b-1", "door-b", 2, offline=True)
    )
    again = client.post(
        check_ins, headers=leader.headers, json=scan(token, "b-1", "door-b", 2, offline=True)
    )
    assert (first.status_code, second.status_code, again.status_code) == (201, 202, 202)
    assert second.json == again.json
    assert second.json["reason"] == "already_checked_in"
    assert (second.json["device_id"], second.json["user_id"]) == ("door-b", ann.id)

    conflicts = client.get(f"{API}/events/{event.pk}/check-in-conflicts", headers=leader.headers)
    assert conflicts.status_code == 200
    [conflict] = conflicts.json["items"]
    assert (conflict["reason"], conflict["display_name"], conflict["nonce"]) == (
        "already_checked_in",
        ann.user.display_name,
        "b-1",
    )
    deliver("event.attended")
    assert client.get(f"{API}/me/points", headers=ann.headers).json["balance"] == 120
    # Online, the same second scan is no conflict: the owner is simply in already.
    online = client.post(check_ins, headers=leader.headers, json=scan(token, "c-1", "door-c"))
    assert online.status_code == 200 and online.json["status"] == "attended"


def test_offline_scans_the_server_refuses_are_kept_with_their_reason(client, leader, door):
    event, (ann, bob), check_ins = door
    revoked = ticket_of(client, event, bob)
    client.delete(f"{API}/events/{event.pk}/registrations/me", headers=bob.headers)
    own = make_person("SZ")
    reasons = {}
    for nonce, body in {
        "revoked": scan(revoked, "r-1", offline=True),
        "forged": scan(revoked[:-3] + "AAA", "f-1", offline=True),
        "early": scan(ticket_of(client, event, ann), "e-1", minutes_ago=60 * 24 * 2, offline=True),
        "stranger": {**scan("", "s-1", offline=True), "token": None, "user_id": own.id},
        "self": {**scan("", "l-1", offline=True), "token": None, "user_id": leader.id},
    }.items():
        body = {k: v for k, v in body.items() if v is not None}
        answer = client.post(check_ins, headers=leader.headers, json=body)
        assert answer.status_code == 202, (nonce, answer.json)
        reasons[nonce] = answer.json["reason"]
    assert reasons == {
        "revoked": "ticket_revoked",
        "forged": "invalid_ticket",
        "early": "check_in_closed",
        "stranger": "not_registered",
        "self": "self_check_in",
    }
    assert Registration.objects(status="attended").count() == 0
    # Online the same scans are refused, and leave nothing behind.
    refused = client.post(check_ins, headers=leader.headers, json=scan(revoked, "r-2"))
    assert refused.status_code == 404
    assert not CheckInScan.objects(nonce="r-2")


def test_an_offline_scan_needs_its_nonce_and_time_and_no_future(client, leader, door):
    event, (ann, _), check_ins = door
    token = ticket_of(client, event, ann)
    for body in (
        {"token": token, "offline": True},
        {"token": token, "offline": True, "nonce": "x"},
        scan(token, "y", minutes_ago=-60),
        scan(token, "z", minutes_ago=60 * 24 * 30, offline=True),
        {**scan(token, "w"), "nonce": ""},
    ):
        answer = client.post(check_ins, headers=leader.headers, json=body)
        assert answer.status_code == 422, (body, answer.json)
    assert not CheckInScan.objects()


def test_concurrent_uploads_of_one_scan_check_in_once(live_server, leader, door, client):
    event, (ann, _), check_ins = door
    body = scan(ticket_of(client, event, ann), "burst-1", offline=True)

    def upload(_: int) -> tuple[int, str]:
        answer = requests.post(
            live_server + check_ins, json=body, headers=leader.headers, timeout=30
        )
        return answer.status_code, answer.text

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(upload, range(6)))
    assert {status for status, _ in answers} == {201}, answers
    assert len({text for _, text in answers}) == 1
    assert CheckInScan.objects(nonce="burst-1").count() == 1
    deliver("event.attended")
    assert client.get(f"{API}/me/points", headers=ann.headers).json["balance"] == 120


def test_keys_rotate_and_several_verify_at_once(app, client, leader, door, monkeypatch):
    event, (ann, bob), check_ins = door
    old = ticket_of(client, event, ann)
    old_kid = json.loads(base64.urlsafe_b64decode(old.split(".")[1] + "==="))["k"]

    turned = ticket_keys.rotate_keys(tickets.TICKET_GRACE, rotation=timedelta(0))
    assert turned["rotated"] == 1
    ticket_keys.forget_keys()  # every process within KEY_KEPT_SECONDS
    new = ticket_of(client, event, bob)
    kit = client.get(f"{API}/events/{event.pk}/door-kit", headers=leader.headers).json
    assert len(kit["keys"]) == 2 and kit["keys"][1]["kid"] == old_kid
    assert verifies_with_kit(old, kit) and verifies_with_kit(new, kit)

    # Once no process may sign with it, the old key verifies until its last ticket ends.
    later = utcnow() + timedelta(minutes=5)
    ticket_keys.rotate_keys(tickets.TICKET_GRACE, now=later)
    settled = TicketKey.objects.get(kid=old_kid)
    assert settled.verifies_until == event.ends_at + tickets.TICKET_GRACE
    assert client.post(check_ins, headers=leader.headers, json={"token": old}).status_code == 201

    # Retired by hand, it verifies nothing more, and leaves the kit.
    assert ticket_keys.retire_key(old_kid)
    ticket_keys.forget_keys()
    refused = client.post(
        check_ins, headers=leader.headers, json={"token": old, "nonce": "after-retirement"}
    )
    kit = client.get(f"{API}/events/{event.pk}/door-kit", headers=leader.headers).json
    assert [key["kid"] for key in kit["keys"]] != [old_kid] and len(kit["keys"]) == 1
    assert refused.status_code == 422 and refused.json["error"] == "invalid_ticket"

    # A new SECRET_KEY makes a new key on the next signature.
    monkeypatch.setitem(app.config, "SECRET_KEY_PREVIOUS", app.config["SECRET_KEY"])
    monkeypatch.setitem(app.config, "SECRET_KEY", "another-secret-key-0123456789abcdefgh")
    ticket_keys.forget_keys()
    newest = ticket_of(client, event, bob)
    kit = client.get(f"{API}/events/{event.pk}/door-kit", headers=leader.headers).json
    assert len(kit["keys"]) == 2 and verifies_with_kit(newest, kit) and verifies_with_kit(new, kit)


def test_a_ticket_issued_before_ed25519_still_works_online(client, leader, door):
    event, (ann, _), check_ins = door
    legacy = tickets._legacy_serializer().dumps(
        {"e": str(event.pk), "u": ann.id, "x": int((utcnow() + timedelta(hours=8)).timestamp())}
    )
    answer = client.post(check_ins, headers=leader.headers, json={"token": legacy})
    assert answer.status_code == 201 and answer.json["status"] == "attended"
