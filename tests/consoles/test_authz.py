"""The consoles' rows of the authorization table (tests/authz_table.py's CONSOLE_ACCESS),
walked like the API's: every console route has a row, and each caller, signed in with a
console session of their own, is served or refused as the row says."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from app.auth import load_caller
from loyalty import bulk_credits
from tests.authz_table import ANONYMOUS, CALLERS, CONSOLE_ACCESS
from tests.conftest import Worlds
from tests.consoles.support import csrf_token, sign_in
from tests.test_authz import World, build_world

PATH_VALUES = {
    "code": "en",
    "filename": "console.css",
    "path:filename": "console.css",
    "rule_code": "event.attended",
}


def build_console_world() -> World:
    """The API's world, and a bulk credit for the admin console's paths to name."""
    world = build_world()
    admin = load_caller(world.people["admin"].id)
    upload = f"account,points,reason\n{world.people['owner'].id},10,Thanks\n".encode()
    world.ids["job_id"] = str(bulk_credits.preview(admin, io.BytesIO(upload), "authz.csv").pk)
    return world


@pytest.fixture
def console_world(worlds: Worlds) -> World:
    return worlds.restored(build_console_world)


def console_routes(app) -> set[str]:
    return {
        f"{method} {rule.rule}"
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("console.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_every_console_route_has_a_row_and_every_row_a_route(app):
    served = console_routes(app)
    assert sorted(served - set(CONSOLE_ACCESS)) == [], "console routes without a row"
    assert sorted(set(CONSOLE_ACCESS) - served) == [], "rows for routes the console lacks"


def body_for(operation: str, world: World) -> dict[str, Any]:
    """A valid form, so that a refused caller is refused for who they are."""
    owner = world.people["owner"]
    return {
        "POST /console/sign-in": {"account": owner.user.email, "password": "password-123"},
        "POST /console/events/<event_id>/cancel": {"reason": "Rain"},
        "POST /console/vehicles/<vehicle_id>/reject": {"reason": "Blurred photo"},
        "POST /console/follow-ups/<follow_up_id>/close": {"note": "Called back."},
    }.get(operation, {})


def _path(world: World, rule: str) -> str:
    values = {**world.ids, **PATH_VALUES}
    return re.sub(r"<([\w:]+)>", lambda m: values[m.group(1)], rule)


def _refused_as_a_stranger(response: Any) -> bool:
    """Sent to the sign-in form, or told to sign in (the door's JSON endpoints)."""
    location = response.headers.get("Location", "")
    return response.status_code == 401 or (
        response.status_code == 302 and "/console/sign-in" in location
    )


@pytest.mark.parametrize("operation", sorted(CONSOLE_ACCESS))
def test_each_caller_opens_or_is_refused_a_console_page_as_the_table_says(
    app, operation, console_world
):
    world = console_world
    method, rule = operation.split(" ", 1)
    allowed = CONSOLE_ACCESS[operation]
    order = [c for c in CALLERS if c not in allowed] + [c for c in CALLERS if c in allowed]
    for caller in order:
        client = app.test_client()
        if caller != ANONYMOUS:
            sign_in(client, world.people[caller])
        token = csrf_token(client)
        path = _path(world, rule)
        if rule.endswith("/door/scans"):
            response = client.post(
                path,
                json={"user_id": world.people["owner"].id, "nonce": f"authz-{caller}"},
                headers={"X-CSRFToken": token},
            )
        elif method == "POST":
            response = client.post(path, data={"csrf_token": token, **body_for(operation, world)})
        else:
            response = client.get(path)
        status = response.status_code
        if caller in allowed:
            assert not _refused_as_a_stranger(response) or rule == "/console/sign-out", (
                caller,
                status,
            )
            assert status not in (403, 404) and status < 500, (caller, status)
        elif caller in ("owner", "other_owner", "club_moderator", ANONYMOUS):
            assert _refused_as_a_stranger(response), (caller, status, response.headers)
        else:
            assert status in (403, 404), (caller, status)
