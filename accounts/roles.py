"""Role grants: an admin grants a role (circle leader or ambassador in some cities, or
admin everywhere) and revokes it. Each `RoleGrant` is copied onto its user in the same
transaction, so the one read of the caller's account every request makes carries its roles.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts import errors
from accounts.domain_events import ROLE_GRANTED, RoleGranted
from accounts.models import ADMIN, CIRCLE_LEADER, RoleGrant, User
from accounts.services import find_active_owner, require_cities
from app import domains
from app.auth import Caller
from app.db import get_or_404, transaction
from app.errors import NotFound
from app.outbox import record_event

log = structlog.get_logger()


def _copy_grants_to_user(session: ClientSession, user_id: ObjectId) -> None:
    """Rebuild `User.grants` from the user's RoleGrant documents, inside the transaction
    that changed them: the copy can never drift from the records."""
    grants = [
        {"grant_id": grant["_id"], "role": grant["role"], "city_codes": grant["city_codes"]}
        for grant in RoleGrant._get_collection().find(
            {"user_id": user_id}, sort=[("_id", 1)], session=session
        )
    ]
    User._get_collection().update_one(
        {"_id": user_id}, {"$set": {"grants": grants}}, session=session
    )


def add_role_grant(
    user_id: ObjectId, role: str, city_codes: list[str], granted_by: ObjectId | None = None
) -> RoleGrant:
    """Record a grant and copy it onto the user in one transaction (no checks: seeds and
    `grant_role` call this)."""
    grant = RoleGrant(
        id=ObjectId(),
        user_id=user_id,
        role=role,
        city_codes=[] if role == ADMIN else sorted(set(city_codes)),
        granted_by=granted_by,
    )
    grant.validate()

    def unit(session: ClientSession) -> None:
        RoleGrant._get_collection().insert_one(grant.to_mongo(), session=session)
        _copy_grants_to_user(session, user_id)
        # City partners attach a new circle leader to the city's partner on this event.
        record_event(
            session,
            ROLE_GRANTED,
            RoleGranted(str(grant.pk), role, list(grant.city_codes)),
            subject_id=user_id,
            actor_id=granted_by,
        )

    transaction(unit)
    return grant


def grant_role(granted_by: Caller, user_id: str, role: str, city_codes: list[str]) -> RoleGrant:
    granted_by.require_admin()
    target = find_active_owner(user_id)
    if target is None:
        raise NotFound(message="User not found.")
    if role != "admin":
        if not city_codes:
            raise errors.CityCodesRequired(errors={"city_codes": ["At least one city."]})
        require_cities(city_codes)
    grant = add_role_grant(target.id, role, city_codes, granted_by.user.pk)
    log.info("role_granted", user_id=user_id, role=role, cities=grant.city_codes, by=granted_by.id)
    return grant


def revoke_role(revoked_by: Caller, grant_id: str) -> None:
    revoked_by.require_admin()
    grant = get_or_404(RoleGrant, grant_id)

    def unit(session: ClientSession) -> None:
        RoleGrant._get_collection().delete_one({"_id": grant.pk}, session=session)
        _copy_grants_to_user(session, grant.user_id)

    transaction(unit)
    log.info("role_revoked", grant_id=grant_id, user_id=str(grant.user_id), by=revoked_by.id)


def city_role_holders(city_code: str, role: str = CIRCLE_LEADER) -> list[ObjectId]:
    """The accounts holding `role` in `city_code` (a city partner takes over its leaders)."""
    return sorted(
        {
            grant["user_id"]
            for grant in RoleGrant._get_collection().find(
                {"city_codes": city_code, "role": role}, {"user_id": 1}
            )
        }
    )


def withdraw_city(user_id: ObjectId, role: str, city_code: str) -> bool:
    """Take `city_code` out of the account's `role` grants (a grant left with no city goes),
    in one transaction with the copy on the user. Returns whether anything changed."""

    def unit(session: ClientSession) -> bool:
        grants = RoleGrant._get_collection()
        found = list(
            grants.find(
                {"user_id": user_id, "role": role, "city_codes": city_code}, session=session
            )
        )
        for grant in found:
            if grant["city_codes"] == [city_code]:
                grants.delete_one({"_id": grant["_id"]}, session=session)
            else:
                grants.update_one(
                    {"_id": grant["_id"]}, {"$pull": {"city_codes": city_code}}, session=session
                )
        if found:
            _copy_grants_to_user(session, user_id)
        return bool(found)

    withdrawn = transaction(unit)
    if withdrawn:
        log.info("role_city_withdrawn", user_id=str(user_id), role=role, city=city_code)
    return withdrawn


def copy_grants_to_users() -> int:
    """Backfill (2026-12-01, run by `flask init-db`): role grants used to be read from
    `role_grants` on every request; now each request reads them from the user. Copies
    every user's grants onto the user, each in its own transaction; running it again
    changes nothing. Returns how many users it wrote."""
    user_ids = {grant["user_id"] for grant in RoleGrant._get_collection().find({}, {"user_id": 1})}
    user_ids |= {
        user["_id"]
        for user in User._get_collection().find({"grants.0": {"$exists": True}}, {"_id": 1})
    }
    for user_id in user_ids:
        transaction(partial(_copy_grants_to_user, user_id=user_id))
    return len(user_ids)


def staff_discovery(caller: Caller) -> dict[str, Any]:
    """Where a staff member acts, for an app or console holding no id yet: each role grant
    with its cities (none for an admin, who acts everywhere), and the city partners they
    work for (`GET /me`; a console's home page calls it too). An owner's are empty, at no
    cost."""
    return {
        "grants": [
            {"role": grant.role, "city_codes": list(grant.city_codes)} for grant in caller.grants
        ],
        "city_partners": domains.employers(caller),
    }
