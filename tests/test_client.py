"""The OpenAPI document is good enough to build an app on: a Python client generated from the
served document with openapi-python-client (no warning allowed) drives an owner's journey
against a live server, and a refusal reaches the caller as a typed object with its slug."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest

from app.clock import utcnow
from tests.conftest import built_once
from tests.support import make_city, make_person

PACKAGE = "generated_api_client"


@pytest.fixture(scope="module")
def generated(app, run_dir: Path) -> Path:
    """The client generated from the served document, once per run."""
    document = app.test_client().get("/api/v1/openapi.json").json

    def generate(folder: Path) -> None:
        (folder / "openapi.json").write_text(json.dumps(document))
        bin_dir = Path(sys.executable).parent  # ruff, which formats the generated code
        done = subprocess.run(
            [
                str(bin_dir / "openapi-python-client"),
                "generate",
                "--path",
                str(folder / "openapi.json"),
                "--output-path",
                str(folder / PACKAGE),
                "--meta",
                "none",
                "--fail-on-warning",
            ],
            env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "warning" not in (done.stdout + done.stderr).lower()

    return built_once(run_dir, "generated-client", generate)


@pytest.fixture
def api_client(generated: Path) -> Iterator[ModuleType]:
    """The generated client package, importable for this test."""
    sys.path.insert(0, str(generated))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(generated))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def endpoint(name: str) -> ModuleType:
    """A generated endpoint module by tag and operation: `endpoint("events.get_events")`."""
    return importlib.import_module(f"{PACKAGE}.api.{name}")


def models() -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.models")


@pytest.mark.slow
def test_an_owner_journey_through_a_generated_client(api_client, live_server):
    make_city("SZ")
    leader = make_person("SZ", role="circle_leader")
    admin = make_person("SZ", role="admin")
    m = models()
    anonymous = api_client.Client(base_url=live_server, raise_on_unexpected_status=True)

    def as_(token: str):
        return api_client.AuthenticatedClient(
            base_url=live_server, token=token, raise_on_unexpected_status=True
        )

    signed_up = endpoint("auth.post_register").sync(
        client=anonymous,
        body=m.Register(
            email="li.na@example.com",
            password="a-long-password",
            display_name="Li Na",
            city_code="SZ",
        ),
    )
    assert isinstance(signed_up, m.Registered) and signed_up.user.city_code == "SZ"
    # Fields always present are required: typed as present, not `str | Unset`.
    required = inspect.signature(m.User).parameters
    assert required["display_name"].default is inspect.Parameter.empty
    assert required["grants"].default is inspect.Parameter.empty
    assert signed_up.user.grants == [] and signed_up.user.city_partners == []
    assert inspect.signature(m.RewardOffer).parameters["locked_reason"].default is not None
    # Generator-friendly names: a figure and an order, no VALUE_21.
    assert m.GetScorecardsSort.ACTIVE_OWNERS.value == "active_owners"
    assert m.GetScorecardsOrder.DESC.value == "desc"
    tokens = endpoint("auth.post_login").sync(
        client=anonymous, body=m.Login(email="li.na@example.com", password="a-long-password")
    )
    assert isinstance(tokens, m.Tokens)
    owner = as_(tokens.access_token)

    vehicle = endpoint("vehicles.post_my_vehicles").sync(
        client=owner, body=m.VehicleCreate(vin="LSVAB2BM1CN000123", model="ID.7")
    )
    assert vehicle.status == m.VehicleStatus.PENDING
    verified = endpoint("vehicles.post_verify_vehicle").sync(vehicle.id, client=as_(leader.token))
    assert verified.status == m.VehicleStatus.VERIFIED

    starts_at = utcnow().replace(microsecond=0) + timedelta(days=3)
    draft = endpoint("events.post_events").sync(
        client=as_(leader.token),
        body=m.EventCreate(
            city_code="SZ",
            title="Coffee salon",
            venue="Brand space",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(hours=2),
            registration_closes_at=starts_at - timedelta(hours=1),
            capacity=10,
            verified_owners_only=True,
        ),
    )
    endpoint("events.post_publish_event").sync(draft.id, client=as_(leader.token))
    [listed] = endpoint("events.get_events").sync(client=owner).items
    assert listed.id == draft.id and listed.my_registration is None

    register = endpoint("events.post_event_registrations")
    first = register.sync_detailed(draft.id, client=owner, idempotency_key="journey-1")
    replayed = register.sync_detailed(draft.id, client=owner, idempotency_key="journey-1")
    assert first.status_code == replayed.status_code == 201
    assert first.parsed.status == m.RegistrationStatus.CONFIRMED
    assert replayed.parsed.id == first.parsed.id
    [listed] = endpoint("events.get_events").sync(client=owner).items
    assert listed.my_registration.status == m.RegistrationStatus.CONFIRMED

    twice = register.sync(draft.id, client=owner)
    assert isinstance(twice, m.AlreadyRegistered)
    assert twice.error == m.AlreadyRegisteredError.ALREADY_REGISTERED

    endpoint("points.post_adjustments").sync(
        client=as_(admin.token),
        body=m.Adjustment(user_id=signed_up.user.id, amount=300, reason="Welcome gift"),
        idempotency_key="gift-1",
    )
    points = endpoint("points.get_my_points").sync(client=owner)
    assert points.balance == 300 and points.tier == m.PointsTier.MEMBER

    mug = endpoint("rewards.post_admin_rewards").sync(
        client=as_(admin.token),
        body=m.RewardCreate(
            title="Mug",
            cost=100,
            stock=5,
            fulfillment=m.RewardCreateFulfillment.PICKUP,
            per_owner_limit=1,
        ),
    )
    [offer] = endpoint("rewards.get_rewards").sync(client=owner).items
    assert offer.id == mug.id and offer.redeemable is True
    assert offer.locked_reason is importlib.import_module(f"{PACKAGE}.types").UNSET
    redemption = endpoint("rewards.post_redemptions").sync(
        client=owner, body=m.RedemptionCreate(reward_id=mug.id), idempotency_key="mug-1"
    )
    assert redemption.status == m.RedemptionStatus.PENDING
    assert endpoint("rewards.get_redemption_item").sync(redemption.id, client=owner).points == 100

    again = endpoint("rewards.post_redemptions").sync(
        client=owner, body=m.RedemptionCreate(reward_id=mug.id)
    )
    assert isinstance(again, m.LimitReached)
    assert again.error == m.LimitReachedError.LIMIT_REACHED and again.code == 409


def test_scorecards_as_json_and_csv_through_a_generated_client(api_client, live_server):
    # Each CSV has its own path: the generated client parses JSON as JSON and leaves CSV text.
    from datetime import date

    from app.auth import load_caller
    from partners import services as partners

    make_city("SZ")
    admin = make_person("SZ", role="admin")
    leader = make_person("SZ", role="circle_leader")
    partner = partners.create_partner(
        load_caller(admin.id),
        name="SZ Motors",
        contact="ops@example.com",
        city_code="SZ",
        contract_start=date(2026, 1, 1),
        contract_end=date(2030, 12, 31),
    )
    client = api_client.AuthenticatedClient(
        base_url=live_server, token=leader.token, raise_on_unexpected_status=True
    )
    month = utcnow().strftime("%Y-%m")
    card = endpoint("city_partners.get_scorecard").sync(str(partner.pk), client=client, month=month)
    assert isinstance(card, models().Scorecard) and card.month == month
    as_csv = endpoint("city_partners.get_scorecard_csv").sync_detailed(
        str(partner.pk), client=client, month=month
    )
    assert as_csv.status_code == 200
    assert as_csv.content.decode().startswith("city_partner_id,name,city_code,month,")
    refused = endpoint("city_partners.get_scorecard").sync(
        str(partner.pk), client=client, month="2001-01"
    )
    assert isinstance(refused, models().MonthOutsideContract)
