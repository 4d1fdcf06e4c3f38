"""Accounts' rules called without HTTP."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from accounts import personal_data, services
from accounts.models import User
from app import compat
from app.clock import utcnow
from app.outbox import OutboxEvent
from tests.support import make_city, make_person


@pytest.fixture
def referral_codes(app, monkeypatch: pytest.MonkeyPatch):
    """Make sign-ups draw the given referral codes, in order, instead of random ones."""

    def draw(*drawn: str) -> None:
        sequence = iter(drawn)
        monkeypatch.setattr(
            compat.field_of(User, "referral_code"), "default", lambda: next(sequence)
        )
        monkeypatch.setattr(services, "new_referral_code", lambda: next(sequence))

    return draw


def sign_up(email: str) -> User:
    return services.register(
        email=email, password="password-123", display_name="Ann", city_code="SZ"
    )


def test_sign_up_draws_another_referral_code_when_one_is_taken(referral_codes):
    make_city("SZ")
    referral_codes("TAKEN234")
    sign_up("first@example.com")
    referral_codes("TAKEN234", "TAKEN234", "FREE2345")

    user = sign_up("second@example.com")

    assert User.objects.get(pk=user.pk).referral_code == "FREE2345"
    assert OutboxEvent.objects(type="user.registered", subject_id=str(user.pk)).count() == 1


def test_sign_up_fails_and_saves_nothing_when_no_referral_code_is_free(referral_codes):
    make_city("SZ")
    referral_codes("TAKEN234")
    sign_up("first@example.com")
    referral_codes(*["TAKEN234"] * services.REFERRAL_CODE_ATTEMPTS)

    with pytest.raises(RuntimeError, match="referral code"):
        sign_up("second@example.com")

    assert not User.objects(email="second@example.com")
    assert OutboxEvent.objects(type="user.registered").count() == 1


def test_active_accounts_leave_the_erased_out(app):
    kept, erased = make_person("SZ"), make_person("SZ")
    personal_data.erase_account(erased.user)
    assert [user.pk for user in User.objects.active()] == [kept.user.pk]
    assert services.find_active_owner(erased.id) is None
    assert services.active_owner(erased.id) is None


def test_other_domains_read_an_owner_as_a_small_frozen_view(app):
    person = make_person("SZ", phone="+8613800138000")
    owner = services.active_owner(person.id)
    expected = services.ActiveOwner(person.user.pk, "SZ", person.user.locale)
    assert owner == expected == services.find_active_owner(person.id)
    assert services.find_active_owner(phone=person.user.phone) == expected
    assert [f.name for f in dataclasses.fields(services.ActiveOwner)] == [
        "id",
        "city_code",
        "locale",
    ]
    with pytest.raises(dataclasses.FrozenInstanceError):
        owner.city_code = "CD"  # type: ignore[misc, union-attr]


def test_accounts_from_before_city_dates_hold_their_city_since_sign_up(app):
    ann, bob = make_person("SZ"), make_person("SZ")
    users = User._get_collection()
    users.update_one({"_id": ann.user.pk}, {"$unset": {"city_since": ""}})
    bob_since = User.objects.get(pk=bob.user.pk).city_since
    assert services.backfill_city_since() == 1
    backfilled = User.objects.get(pk=ann.user.pk)
    assert backfilled.city_since == backfilled.created_at
    assert User.objects.get(pk=bob.user.pk).city_since == bob_since
    assert services.backfill_city_since() == 0


def test_sign_up_fingerprints_are_forgotten_after_their_days(client, app):
    """A keyed hash of the client's IP and device name, never the IP itself; dropped once
    the account is CLIENT_FINGERPRINT_DAYS old (the daily accounts job)."""
    answer = client.post(
        "/api/v1/auth/register",
        json={
            "email": "print@example.com",
            "password": "password-123",
            "display_name": "Print",
            "city_code": make_city("SZ").code,
            "device": "Pixel 8",
        },
    )
    assert answer.status_code == 201
    user = User.objects.get(email="print@example.com")
    assert user.client_fingerprint == services.client_fingerprint("127.0.0.1", "pixel 8")
    assert "127.0.0.1" not in user.client_fingerprint
    assert services.fingerprint_of(user, utcnow()) == user.client_fingerprint
    later = utcnow() + timedelta(days=app.config["CLIENT_FINGERPRINT_DAYS"] + 1)
    assert services.fingerprint_of(user, later) is None
    assert services.forget_client_fingerprints(now=utcnow()) == 0
    assert services.forget_client_fingerprints(now=later) == 1
    assert User.objects.get(pk=user.pk).client_fingerprint is None
