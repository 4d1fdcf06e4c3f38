"""City partners: contracts (at most one partner per city and day, under concurrency too),
their staff (the city's circle leaders) and the daily turn of contracts.

Who works for whom: a circle leader granted a city works for the partner running it then
(the `role.granted` handler attaches them); a partner whose contract begins takes over the
city's leaders that work for nobody; when a contract is over its leaders lose the city
(their grants for it are withdrawn through accounts) and are detached. What the partner ran
stays its own: events carry the id of the partner that published them.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from accounts.roles import city_role_holders, withdraw_city
from accounts.services import (
    CIRCLE_LEADER,
    DEFAULT_TIMEZONE,
    city_timezones,
    display_names,
    require_city,
)
from app import compat
from app.auth import Caller
from app.clock import utcnow
from app.db import get_or_404, transaction
from app.domains import CityPartnerRef
from app.web import paginate
from partners import budget
from partners.errors import CityPartnerNotFound, CityTaken, InvalidContract
from partners.models import CityPartner, CityPartnerLeader, CityPartnerLock

log = structlog.get_logger()


def local_today(city_code: str, now: datetime | None = None) -> str:
    """Today's date in the city's time zone, as contracts write it (the zones each process
    keeps: a city keeps its zone)."""
    moment = now or utcnow()
    zone = city_timezones({city_code}).get(city_code, DEFAULT_TIMEZONE)
    return moment.astimezone(ZoneInfo(zone)).date().isoformat()


def _running(today: str) -> dict[str, Any]:
    return {"contract_start": {"$lte": today}, "contract_end": {"$gte": today}, "ended_at": None}


def active_partner(
    city_code: str, now: datetime | None = None, session: ClientSession | None = None
) -> dict[str, Any] | None:
    """The partner running the city now; None when HQ runs it."""
    return CityPartner._get_collection().find_one(
        {"city_code": city_code, **_running(local_today(city_code, now))}, session=session
    )


# --- contracts ---------------------------------------------------------------------------


def _claim_city(
    session: ClientSession, city_code: str, start: str, end: str, partner_id: ObjectId
) -> None:
    """Refuse (409 `city_taken`) a contract overlapping another partner's in the city. The
    lock's write makes concurrent claims of one city conflict, so the one that retries
    sees the other's contract."""
    CityPartnerLock._get_collection().update_one(
        {"_id": city_code}, {"$inc": {"version": 1}}, session=session
    )
    overlapping = CityPartner._get_collection().find_one(
        {
            "city_code": city_code,
            "_id": {"$ne": partner_id},
            "contract_start": {"$lte": end},
            "contract_end": {"$gte": start},
        },
        {"name": 1, "contract_start": 1, "contract_end": 1},
        session=session,
    )
    if overlapping is not None:
        raise CityTaken(
            city_partner_id=str(overlapping["_id"]),
            contract_start=overlapping["contract_start"],
            contract_end=overlapping["contract_end"],
        )


def _lock_exists(city_code: str) -> None:
    # Created outside the transactions: two transactions inserting it would end in a
    # duplicate key error, which is not retried.
    with contextlib.suppress(DuplicateKeyError):
        CityPartnerLock._get_collection().update_one(
            {"_id": city_code}, {"$setOnInsert": {"version": 0}}, upsert=True
        )


def _check_dates(start: str, end: str) -> None:
    if end < start:
        raise InvalidContract(errors={"contract_end": ["Must not be before contract_start."]})


def create_partner(
    admin: Caller,
    *,
    name: str,
    contact: str,
    city_code: str,
    contract_start: date,
    contract_end: date,
) -> CityPartner:
    admin.require_admin()
    partner = contract_partner(
        name=name,
        contact=contact,
        city_code=city_code,
        contract_start=contract_start,
        contract_end=contract_end,
        created_by=admin.user.pk,
    )
    log.info("city_partner_created", city_partner_id=str(partner.pk), city=city_code, by=admin.id)
    return partner


def contract_partner(
    *,
    name: str,
    contact: str,
    city_code: str,
    contract_start: date,
    contract_end: date,
    created_by: ObjectId | None = None,
) -> CityPartner:
    """Store a contract (409 `city_taken` when it overlaps another in the city) and let the
    partner take over the city's leaders if it runs the city now. No role check: the demo
    seed calls this, `create_partner` for admins."""
    require_city(city_code)
    start, end = contract_start.isoformat(), contract_end.isoformat()
    _check_dates(start, end)
    partner = CityPartner(
        id=ObjectId(),
        name=name,
        contact=contact,
        city_code=city_code,
        contract_start=start,
        contract_end=end,
        created_by=created_by,
    )
    partner.validate()
    _lock_exists(city_code)

    def unit(session: ClientSession) -> None:
        _claim_city(session, city_code, start, end, partner.pk)
        CityPartner._get_collection().insert_one(partner.to_mongo(), session=session)

    transaction(unit)
    take_over_leaders(partner)
    return partner


def update_partner(admin: Caller, partner_id: str, changes: dict[str, Any]) -> CityPartner:
    """Change the contact or the contract's end (an extension must not reach the next
    partner's contract: 409 `city_taken`)."""
    admin.require_admin()
    partner = get_or_404(CityPartner, partner_id)
    sets: dict[str, Any] = {}
    if "contact" in changes:
        sets["contact"] = changes["contact"]
    if "contract_end" in changes:
        sets["contract_end"] = changes["contract_end"].isoformat()
        _check_dates(partner.contract_start, sets["contract_end"])
    _lock_exists(partner.city_code)

    def unit(session: ClientSession) -> None:
        if "contract_end" in sets:
            _claim_city(
                session, partner.city_code, partner.contract_start, sets["contract_end"], partner.pk
            )
        CityPartner._get_collection().update_one(
            {"_id": partner.pk}, {"$set": sets}, session=session
        )

    transaction(unit)
    partner.reload()
    log.info("city_partner_updated", city_partner_id=partner_id, fields=sorted(sets), by=admin.id)
    return partner


def list_partners(city: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    query = CityPartner.objects(city_code=city) if city else CityPartner.objects
    return paginate(query, cursor, limit)


def is_running(partner: CityPartner, now: datetime | None = None) -> bool:
    today = local_today(partner.city_code, now)
    return partner.ended_at is None and partner.contract_start <= today <= partner.contract_end


# --- staff -------------------------------------------------------------------------------


def _attach(session: ClientSession | None, partner_id: ObjectId, city_code: str, user_ids) -> None:
    for user_id in user_ids:
        CityPartnerLeader._get_collection().update_one(
            {"city_partner_id": partner_id, "user_id": user_id},
            {"$setOnInsert": {"city_code": city_code, "attached_at": utcnow()}},
            upsert=True,
            session=session,
        )


def attach_leader(session: ClientSession, user_id: ObjectId, city_codes: list[str]) -> None:
    """A circle leader granted cities works for the partner running each of them."""
    for city_code in city_codes:
        partner = active_partner(city_code, session=session)
        if partner is not None:
            _attach(session, partner["_id"], city_code, [user_id])


def take_over_leaders(partner: CityPartner) -> int:
    """A running partner takes over the city's circle leaders who work for no other partner
    (those granted while HQ ran the city). Returns how many it took."""
    if not is_running(partner):
        return 0
    holders = city_role_holders(partner.city_code, CIRCLE_LEADER)
    taken = {
        leader["user_id"]
        for leader in CityPartnerLeader._get_collection().find(
            {"city_code": partner.city_code, "detached_at": None, "user_id": {"$in": holders}},
            {"user_id": 1},
        )
    }
    free = [user_id for user_id in holders if user_id not in taken]
    _attach(None, partner.pk, partner.city_code, free)
    return len(free)


def works_for(caller: Caller, partner: CityPartner) -> bool:
    """Whether the caller is a circle leader of the city working for this partner."""
    return caller.acts_in(partner.city_code, CIRCLE_LEADER) and (
        CityPartnerLeader.objects(
            city_partner_id=partner.pk, user_id=caller.user.pk, detached_at=None
        ).first()
        is not None
    )


def partner_for(caller: Caller, partner_id: Any) -> CityPartner:
    """A partner the caller may read: its own leaders and admins; 404 for anyone else."""
    partner = get_or_404(CityPartner, partner_id)
    if caller.is_admin or works_for(caller, partner):
        return partner
    raise CityPartnerNotFound()


def may_see_partner_of(caller: Caller, partner_id: Any) -> bool:
    """For what a partner ran (an event's feedback): admins, and that partner's leaders.
    What HQ ran (no partner) is for the city's leaders, which the caller checks."""
    if caller.is_admin or partner_id is None:
        return True
    partner = CityPartner.objects(pk=partner_id).first()
    return partner is not None and works_for(caller, partner)


def partners_of(caller: Caller) -> list[ObjectId]:
    """The partners the caller works for."""
    return [
        leader["city_partner_id"]
        for leader in CityPartnerLeader._get_collection().find(
            {"user_id": caller.user.pk, "detached_at": None}, {"city_partner_id": 1}
        )
    ]


def employers(caller: Caller) -> list[CityPartnerRef]:
    """The city partners the caller works for, as a leader of their cities (staff
    discovery: GET /me, the consoles). Nobody but a circle leader costs a read."""
    leads = {
        code for grant in caller.grants if grant.role == CIRCLE_LEADER for code in grant.city_codes
    }
    if not leads:
        return []
    partners = CityPartner.objects(pk__in=partners_of(caller), city_code__in=sorted(leads))
    return [
        CityPartnerRef(id=str(partner.pk), name=partner.name, city_code=partner.city_code)
        for partner in partners.order_by("city_code", "id")
    ]


def my_partners(caller: Caller) -> list[CityPartner]:
    """The partners the caller works for (an admin: every partner whose contract has not
    ended), in two reads, one for an admin: a console's home and pickers."""
    if caller.is_admin:
        return list(CityPartner.objects(ended_at=None).order_by("city_code"))
    return list(CityPartner.objects(pk__in=partners_of(caller)).order_by("city_code"))


def leaders(partner: CityPartner) -> list[dict[str, Any]]:
    attached = list(CityPartnerLeader.objects(city_partner_id=partner.pk, detached_at=None))
    names = display_names([leader.user_id for leader in attached])
    return [
        {
            "user_id": leader.user_id,
            "display_name": names.get(leader.user_id),
            "attached_at": leader.attached_at,
        }
        for leader in attached
    ]


def leader_counts(partner_ids: list[ObjectId]) -> dict[ObjectId, int]:
    """How many circle leaders work for each partner now, in one read."""
    counts: dict[ObjectId, int] = dict.fromkeys(partner_ids, 0)
    if not partner_ids:
        return counts
    for row in CityPartnerLeader._get_collection().aggregate(
        [
            {"$match": {"city_partner_id": {"$in": partner_ids}, "detached_at": None}},
            {"$group": {"_id": "$city_partner_id", "leaders": {"$sum": 1}}},
        ]
    ):
        counts[row["_id"]] = row["leaders"]
    return counts


def partner_details(partner: CityPartner) -> dict[str, Any]:
    return {
        **describe(partner),
        "leaders": leaders(partner),
        "budget": budget.summary(partner.pk, local_today(partner.city_code)[:7]),
    }


def describe(partner: CityPartner) -> dict[str, Any]:
    return {
        **compat.field_values(partner),
        "active": is_running(partner),
    }


# --- the daily turn ----------------------------------------------------------------------


def end_contracts(now: datetime | None = None) -> list[str]:
    """End every contract that is over: its leaders lose the city and are detached; then
    each running partner takes over the leaders who work for nobody. Returns the ids of
    the partners it ended."""
    now = now or utcnow()
    ended = []
    # Over in every time zone by tomorrow's UTC date; each is checked in its city's zone.
    candidates = CityPartner.objects(ended_at=None, contract_end__lte=now.date().isoformat())
    for partner in candidates:
        if partner.contract_end >= local_today(partner.city_code, now):
            continue
        for leader in CityPartnerLeader.objects(city_partner_id=partner.pk, detached_at=None):
            withdraw_city(leader.user_id, CIRCLE_LEADER, partner.city_code)
            leader.update(set__detached_at=now)
        partner.update(set__ended_at=now)
        ended.append(str(partner.pk))
        log.info("city_partner_contract_ended", city_partner_id=str(partner.pk))
    for partner in CityPartner.objects(ended_at=None, contract_start__lte=now.date().isoformat()):
        take_over_leaders(partner)
    return ended
