"""Creating a drop, and reading drops as the API shows them.

Admins drop rewards; the circle leaders of an event's city (and admins) drop its seats.
A drop is created in one transaction with the reservation of its reward or event, which
from then on is claimed through the drop alone (a direct redemption or registration is
409 `drop_only`), and with its domain event `drop.created`, whose handler starts its job.
Its rules never change once created, so each API process keeps what entering reads of a
drop (`rules_of`) and entering costs no read of the drop.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import CIRCLE_LEADER, require_cities
from app import compat
from app.auth import Caller
from app.clock import utcnow
from app.db import object_id, transaction
from app.errors import Forbidden, NotFound
from app.outbox import record_event
from app.web import paginate
from drops import draw, errors
from drops.domain_events import DROP_CREATED, DropCreated
from drops.models import DECIDED, DRAW, EVENT, REWARD, RUNNING, Drop
from events import registration as event_places
from loyalty import rewards
from loyalty.points_account import tier_rank

log = structlog.get_logger()

# A drop opens at most this far in the past (a request in flight) and stays open at most
# this long: a drop is a moment, not a listing.
OPENS_AT_SLACK = timedelta(minutes=1)
LONGEST_WINDOW = timedelta(days=30)


def create_drop(
    caller: Caller,
    *,
    target_type: str,
    target_id: str,
    opens_at: datetime,
    closes_at: datetime,
    quantity: int,
    mode: str,
    per_owner_limit: int = 1,
    verified_owners_only: bool = False,
    min_tier: str | None = None,
    city_codes: list[str] | None = None,
) -> Drop:
    """Mark a reward (admins) or an event (its city's circle leaders, admins) as a drop."""
    now = utcnow()
    problems: dict[str, list[str]] = {}
    if opens_at < now - OPENS_AT_SLACK:
        problems["opens_at"] = ["Must not be in the past."]
    if closes_at <= opens_at:
        problems["closes_at"] = ["Must be after opens_at."]
    elif closes_at - opens_at > LONGEST_WINDOW:
        problems["closes_at"] = ["A drop stays open 30 days at most."]
    city_codes = sorted(set(city_codes or ()))
    require_cities(city_codes)
    drop_id = ObjectId()
    target = object_id(target_id)
    if target is None:
        raise NotFound()
    fields: dict[str, Any] = {}
    if target_type == REWARD:
        if not caller.is_admin:
            raise Forbidden(message="Only admins drop rewards.")
        terms = rewards.reward_terms(target)
        if terms is None:
            raise NotFound(message="Reward not found.")
        if terms.per_owner_limit and per_owner_limit > terms.per_owner_limit:
            problems["per_owner_limit"] = [f"The reward allows {terms.per_owner_limit}."]
        if terms.city_codes and not set(city_codes) <= set(terms.city_codes):
            problems["city_codes"] = ["Only cities the reward is offered in."]
        if min_tier is not None and tier_rank(min_tier) < tier_rank(terms.min_tier):
            problems["min_tier"] = [f"The reward needs {terms.min_tier} at least."]
        fields.update(
            title=terms.title,
            cost=terms.cost,
            min_tier=max(min_tier or terms.min_tier, terms.min_tier, key=tier_rank),
            city_codes=city_codes or terms.city_codes,
        )
    else:
        event = event_places.event_terms(caller, target_id)
        if per_owner_limit != 1:
            problems["per_owner_limit"] = ["One place per owner at an event."]
        if closes_at > event.registration_closes_at:
            problems["closes_at"] = ["Must not be after the event's registration closes."]
        fields.update(
            title=event.title,
            city_code=event.city_code,
            min_tier=min_tier,
            city_codes=city_codes,
            verified_owners_only=verified_owners_only or event.verified_owners_only,
        )
    if problems:
        raise errors.InvalidDrop(errors=problems)
    seed, seed_hash = draw.new_seed() if mode == DRAW else (None, None)
    drop = Drop(
        id=drop_id,
        target_type=target_type,
        target_id=target,
        opens_at=max(opens_at, now),
        closes_at=closes_at,
        quantity=quantity,
        per_owner_limit=per_owner_limit,
        mode=mode,
        verified_owners_only=fields.pop("verified_owners_only", verified_owners_only),
        seed=seed,
        seed_hash=seed_hash,
        created_by=caller.user.pk,
        created_at=now,
        **fields,
    )
    drop.validate()

    def unit(session: ClientSession) -> None:
        # What is left, and the reservation, in one snapshot: nothing is claimed between.
        if target_type == REWARD:
            terms = rewards.reward_terms(target, session)
            left = terms.stock_left if terms else 0
            reserved = rewards.reserve_for_drop(session, target, drop_id)
        else:
            left = event_places.event_terms(caller, target_id, session).seats_left
            reserved = event_places.reserve_for_drop(session, target, drop_id)
        if not reserved:
            raise errors.TargetInDrop()
        if left < quantity:
            raise errors.NotEnoughLeft(left=left)
        Drop._get_collection().insert_one(drop.to_mongo(), session=session)
        record_event(
            session,
            DROP_CREATED,
            DropCreated(
                target_type,
                str(target),
                mode,
                quantity,
                drop.opens_at.isoformat(),
                closes_at.isoformat(),
                seed_hash,
            ),
            subject_id=drop_id,
            actor_id=caller.user.pk,
            city_code=drop.city_code,
        )

    transaction(unit)
    log.info("drop_created", drop_id=str(drop_id), target_type=target_type, by=caller.id)
    return drop


# --- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """What entering reads of a drop: fixed when the drop is created."""

    id: ObjectId
    target_type: str
    target_id: ObjectId
    mode: str
    opens_at: datetime
    closes_at: datetime
    per_owner_limit: int
    verified_owners_only: bool
    min_tier: str | None
    city_codes: tuple[str, ...]
    cost: int

    @property
    def hold_key(self) -> str:
        """The key of the points a reward's draw holds for an entry."""
        return f"drop:{self.id}"

    @property
    def holds_points(self) -> bool:
        """A reward's draw holds its entries' points until the draw (a first-come drop
        takes them seconds after entry, when it serves the entry)."""
        return self.target_type == REWARD and self.mode == DRAW


_KEPT_RULES = 1024
_rules: dict[ObjectId, Rules] = {}
_rules_lock = threading.Lock()


def rules_of(drop_id: Any) -> Rules:
    """A drop's rules, read once per process (404: no such drop)."""
    oid = object_id(drop_id)
    if oid is None:
        raise NotFound(message="Drop not found.")
    known = _rules.get(oid)
    if known is not None:
        return known
    found = Drop._get_collection().find_one(
        {"_id": oid}, {"seed": 0, "per_second": 0, "refused": 0}
    )
    if found is None:
        raise NotFound(message="Drop not found.")
    rules = Rules(
        id=oid,
        target_type=found["target_type"],
        target_id=found["target_id"],
        mode=found["mode"],
        opens_at=found["opens_at"],
        closes_at=found["closes_at"],
        per_owner_limit=found["per_owner_limit"],
        verified_owners_only=found.get("verified_owners_only", False),
        min_tier=found.get("min_tier"),
        city_codes=tuple(found.get("city_codes") or ()),
        cost=found.get("cost") or 0,
    )
    with _rules_lock:
        if len(_rules) >= _KEPT_RULES:
            del _rules[next(iter(_rules))]
        _rules[oid] = rules
    return rules


def phase(drop: Drop, now: datetime | None = None) -> str:
    """`scheduled`, `open`, `allocating` (closed, entries being decided) or `decided`."""
    now = now or utcnow()
    if drop.status == DECIDED:
        return DECIDED
    if now < drop.opens_at:
        return "scheduled"
    return "open" if now < drop.closes_at else "allocating"


def shown(drop: Drop, now: datetime | None = None) -> dict[str, Any]:
    """A drop as anyone signed in sees it: its rules, its figures so far, and a draw's seed
    once revealed."""
    document = {
        name: value for name, value in compat.field_values(drop).items() if name not in _PRIVATE
    }
    revealed = drop.seed_revealed_at is not None
    return {
        **document,
        "phase": phase(drop, now),
        "seed": drop.seed if revealed else None,
        "waiting": max(drop.entries - drop.won - drop.lost - sum(drop.refused.values()), 0),
    }


# Kept from everyone: the seed until revealed (`shown` adds it), and the job's bookkeeping.
_PRIVATE = {
    "seed",
    "lease",
    "lease_until",
    "counted_until",
    "ordered_until",
    "held_until",
    "per_second",
}


def drop_for(caller: Caller, drop_id: str) -> dict[str, Any]:
    oid = object_id(drop_id)
    drop = Drop.objects(pk=oid).first() if oid else None
    if drop is None:
        raise NotFound(message="Drop not found.")
    return shown(drop)


def list_drops(cursor: str | None, limit: int, include_decided: bool = False) -> dict[str, Any]:
    """Drops soonest first: those to come and open (and decided ones when asked)."""
    query = Drop.objects() if include_decided else Drop.objects(status=RUNNING)
    page = paginate(query, cursor, limit, order=("opens_at", "id"))
    now = utcnow()
    page["items"] = [shown(drop, now) for drop in page["items"]]
    return page


def organised_drop(caller: Caller, drop_id: str) -> Drop:
    """A drop the caller organises: admins any, an event's city leaders their city's (404
    for anyone else, as for the event itself)."""
    oid = object_id(drop_id)
    drop = Drop.objects(pk=oid).first() if oid else None
    if drop is None:
        raise NotFound(message="Drop not found.")
    if drop.target_type == EVENT:
        caller.require(drop.city_code, CIRCLE_LEADER)
    elif not caller.is_admin:
        raise NotFound(message="Drop not found.")
    return drop


# The sweep starts a drop's job this long before it opens, if no message did.
DUE_AHEAD = timedelta(minutes=1)


def drops_due(now: datetime) -> list[ObjectId]:
    """Running drops open now or within DUE_AHEAD whose job holds no lease."""
    found = Drop._get_collection().find(
        {"status": RUNNING, "opens_at": {"$lte": now + DUE_AHEAD}}, {"lease_until": 1}
    )
    return [drop["_id"] for drop in found if (drop.get("lease_until") or now) <= now]
