"""The rewards catalog and redemptions: points and stock debited in one transaction,
refunded once on cancellation, handed over by admins or the pickup city's leaders."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import CIRCLE_LEADER, Owner, require_cities
from app import compat
from app.auth import Caller
from app.buckets import turn
from app.clock import utcnow
from app.db import (
    KeptCopies,
    StaleCache,
    batch,
    caches_trusted,
    changes_in_one_transaction,
    decided_from,
    get_or_404,
    object_id,
    one_at_a_time,
    transaction,
    update_and_read,
)
from app.errors import NotFound
from app.observability import note
from app.outbox import record_event
from app.web import paginate
from loyalty import balances, errors, ledger, points_account, stock
from loyalty.domain_events import REDEMPTION_CREATED, RedemptionCreated
from loyalty.models import (
    CANCELLED,
    FULFILLED,
    PENDING,
    REDEEM,
    REFUND,
    LedgerEntry,
    Redemption,
    Reward,
)

log = structlog.get_logger()

# How long an owner must have held a city before redeeming its own rewards: moving there
# for a day (PATCH /me) to collect them does not count.
CITY_TENURE = timedelta(days=30)


def create_reward(admin: Caller, data: dict[str, Any]) -> Reward:
    admin.require_admin()
    require_cities(data.get("city_codes", ()))
    reward = Reward(**{**data, "stock_buckets": None})
    reward.validate()
    buckets = data.get("stock_buckets") or 1

    def unit(session: ClientSession) -> None:
        Reward._get_collection().insert_one(reward.to_mongo(), session=session)
        if buckets > 1:
            stock.set_stock(session, reward.pk, data["stock"], buckets)

    reward.pk = ObjectId()
    transaction(unit)
    log.info("reward_created", reward_id=str(reward.pk), by=admin.id, stock_buckets=buckets)
    return Reward.objects.get(pk=reward.pk)


def update_reward(admin: Caller, reward_id: str, changes: dict[str, Any]) -> Reward:
    """Change a reward. A new `stock` replaces the stock left; a new `stock_buckets` splits
    it again (or gathers it on the reward, with 1)."""
    admin.require_admin()
    reward = get_or_404(Reward, reward_id)
    require_cities(changes.get("city_codes", ()))
    changes = dict(changes)
    total, buckets = changes.pop("stock", None), changes.pop("stock_buckets", None)

    def unit(session: ClientSession) -> None:
        Reward._get_collection().update_one(
            {"_id": reward.pk},
            {**({"$set": changes} if changes else {}), **_edited(reward.pk)},
            session=session,
        )
        if total is None and buckets is None:
            return
        current = stock.read_with_stock(session, reward.pk)
        assert current is not None
        stock.set_stock(
            session,
            reward.pk,
            current["stock_left"] if total is None else total,
            buckets or stock.bucket_count(current),
        )

    # The stock is written where redemptions take their turns on it.
    with one_at_a_time(reward.pk):
        transaction(unit)
    log.info(
        "reward_updated",
        reward_id=reward_id,
        changes=sorted([*changes, *(["stock"] if total is not None else [])]),
        by=admin.id,
    )
    return reward.reload()


def shown(reward: Reward, stock_left: int | None = None) -> dict[str, Any]:
    """A reward as the API shows it: its live stock, wherever it is kept."""
    document = compat.field_values(reward)
    if stock_left is None:
        stock_left = stock.live_stock([reward]).get(reward.pk, reward.stock)
    return {**document, "stock": stock_left, "stock_buckets": reward.stock_buckets or 1}


def lock_of(
    owner: Owner, reward: Reward, tier: str, now: datetime, stock_left: int | None = None
) -> str | None:
    """Why the owner cannot redeem the reward now, as the slug `redeem` would refuse with;
    None when nothing stands in the way (but the owner's points and per-owner limit).
    `stock_left`: the reward's live stock, when it keeps it in buckets."""
    if reward.city_codes and owner.city_code not in reward.city_codes:
        return errors.NotInCity.error
    if reward.city_codes and now < owner.city_held_since + CITY_TENURE:
        return errors.CityTooRecent.error
    if points_account.tier_rank(tier) < points_account.tier_rank(reward.min_tier):
        return errors.TierTooLow.error
    if (reward.stock if stock_left is None else stock_left) < 1:
        return errors.OutOfStock.error
    return None


def catalogue(
    owner: Owner,
    city: str | None,
    cursor: str | None,
    limit: int,
    *,
    include_locked: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A page of the active rewards offered in `city` (default: the owner's city), each
    with `redeemable` and, when it is not, `locked_reason`. Rewards above the owner's tier
    are left out unless `include_locked`, so an app can show what a higher tier unlocks.
    A page showing a reward whose stock is kept in buckets reads them too (one command)."""
    at = now or utcnow()
    tier = balances.tier_of(owner.pk, at)
    query = Reward.objects(
        active=True,
        __raw__={"$or": [{"city_codes": []}, {"city_codes": city or owner.city_code}]},
    )
    if not include_locked:
        query = query.filter(
            min_tier__in=points_account.TIER_NAMES[: points_account.tier_rank(tier) + 1]
        )
    page = paginate(query, cursor, limit)
    live = stock.live_stock(page["items"])

    def offer(reward: Reward) -> dict[str, Any]:
        left = live.get(reward.pk, reward.stock)
        lock = lock_of(owner, reward, tier, at, left)
        document = shown(reward, left)
        return {**document, "redeemable": lock is None, **({"locked_reason": lock} if lock else {})}

    page["items"] = [offer(reward) for reward in page["items"]]
    return page


def all_rewards(admin: Caller, cursor: str | None, limit: int) -> dict[str, Any]:
    """The whole catalogue, inactive rewards included, newest first (admins)."""
    admin.require_admin()
    page = paginate(Reward.objects, cursor, limit)
    live = stock.live_stock(page["items"])
    page["items"] = [shown(reward, live.get(reward.pk, reward.stock)) for reward in page["items"]]
    return page


def redemption_for(by: Caller, redemption_id: str) -> Redemption:
    """One redemption, for its owner or an admin; 404 for anyone else."""
    redemption = get_or_404(Redemption, redemption_id)
    by.require_self_or_admin(redemption.user_id)
    return redemption


@dataclass(frozen=True, slots=True)
class MadeRedemption:
    """The redemption `redeem` made, taken from the document it wrote (or, for a key used
    before, the stored one) rather than decoded into a `Redemption`: the answer of a hot
    write, and that decode was 283 of a keyed redemption's 5,226 Python calls. Its names
    are the model's, so `RedemptionSchema` dumps it as it dumps the document."""

    id: ObjectId
    user_id: ObjectId
    reward_id: ObjectId
    reward_title: str | None
    quantity: int
    points: int
    fulfillment: str
    city_code: str | None
    status: str
    entry_id: ObjectId | None
    created_at: datetime
    fulfilled_at: datetime | None
    cancelled_at: datetime | None

    @property
    def pk(self) -> ObjectId:
        return self.id

    @classmethod
    def stored(cls, found: dict[str, Any]) -> MadeRedemption:
        return cls(
            id=found["_id"],
            user_id=found["user_id"],
            reward_id=found["reward_id"],
            reward_title=found.get("reward_title"),
            quantity=found["quantity"],
            points=found["points"],
            fulfillment=found["fulfillment"],
            city_code=found.get("city_code"),
            status=found["status"],
            entry_id=found.get("entry_id"),
            created_at=found["created_at"],
            fulfilled_at=found.get("fulfilled_at"),
            cancelled_at=found.get("cancelled_at"),
        )


class _KeyUsed(Exception):
    """The client's key already made a redemption (raised out of the transaction)."""


@dataclass(frozen=True)
class ThroughDrop:
    """A redemption a drop allocated: the drop the reward is released through, the entry
    that won (one redemption per entry, however often the drop's job runs) and the hold
    that pays it (`loyalty.holds`; None: the points are taken as for any redemption)."""

    drop_id: ObjectId
    entry_id: ObjectId
    hold: str | None = None


# How many buckets each reward's stock was last seen in (a process's transactions on one
# bucket take turns; 1 means the reward's own document).
_buckets_seen: dict[ObjectId, int] = {}

# The terms of each reward that keeps its stock on itself, as this process last read them
# (its document without the stock), so that a redemption need not read it: one command
# of six, and its `$lookup` was an eighth of a redemption's CPU (bench/request_cpu.py).
# Other processes' edits reach this copy through the reward's `version`, which every edit
# of its terms increments (`_edited`) and the stock's decrement is conditional on: a stale
# copy makes the write match nothing, and the transaction runs again from a fresh read
# (`app.db.StaleCache`). A refusal decided from the copy is decided again from a fresh read
# too (the copy may be what refused), so a stale copy can neither oversell, nor sell on old
# terms, nor refuse.
_terms_seen = KeptCopies()


def _edited(reward_id: ObjectId) -> dict[str, Any]:
    """The update that marks an edit of the reward's terms (redemptions' copies of them
    stop matching), and this process's copy forgotten at once."""
    _terms_seen.forget(reward_id)
    return {"$inc": {"version": 1}}


@changes_in_one_transaction
def redeem(
    owner: Owner,
    reward_id: str,
    quantity: int = 1,
    *,
    client_key: str | None = None,
    now: datetime | None = None,
    drop: ThroughDrop | None = None,
) -> MadeRedemption:
    """Debit points and stock in one transaction; refusals are 409 with their slug.

    Two reads (the reward with its stock buckets, the account with its tier, per-reward
    counters and first lots) and one command carrying every write: the stock, the account,
    the lots, the entry, the redemption and its domain event. The per-owner limit is a
    counter on the account, not a count of the owner's redemptions. A reward that keeps its
    stock on itself is usually not read: its terms come from this process's copy
    (`_terms_seen`), checked by the stock's write; and the lots are read only when the ones
    the account keeps do not hold the points (`loyalty.ledger.spend_kept`). A reward
    released through a drop is redeemed only by its drop's job (`drop`).
    """
    now = now or utcnow()
    reward_oid = ledger.id_or_404(reward_id)
    if drop is not None:
        client_key = f"drop:{drop.entry_id}"
    else:
        client_key = f"{owner.pk}:{client_key}" if client_key else None
    preferred = random.randrange(stock.MAX_BUCKETS)

    def unit(session: ClientSession) -> MadeRedemption:
        terms = _terms_seen.get(reward_oid) if drop is None and caches_trusted() else None
        return decided_from(terms, partial(redeem_on, session, terms))

    def redeem_on(session: ClientSession, terms: dict[str, Any] | None) -> MadeRedemption:
        if terms is not None:
            reward = terms
        else:
            _terms_seen.forget(reward_oid)  # kept again below if it still applies
            # By `_id` alone (see `app.auth.load_caller`), `active` checked here.
            found = stock.read_with_stock(session, reward_oid)
            if found is None or not found.get("active"):
                raise NotFound(message="Reward not found.")
            reward = found
            _buckets_seen[reward_oid] = stock.bucket_count(reward)
            if stock.bucket_count(reward) == 1:
                _terms_seen.keep(
                    reward_oid,
                    {name: value for name, value in found.items() if name not in _STOCK_FIELDS},
                )
        if reward.get("drop_id") and (drop is None or drop.drop_id != reward["drop_id"]):
            raise errors.DropOnly(drop_id=str(reward["drop_id"]))
        if reward.get("city_codes") and owner.city_code not in reward["city_codes"]:
            raise errors.NotInCity()
        eligible_from = owner.city_held_since + CITY_TENURE
        if reward.get("city_codes") and now < eligible_from:
            raise errors.CityTooRecent(eligible_from=eligible_from.isoformat())
        account = points_account.read_account(session, owner.pk, now, tier=True, redeemed=True)
        if points_account.tier_rank(account.tier.name) < points_account.tier_rank(
            reward["min_tier"]
        ):
            raise errors.TierTooLow(min_tier=reward["min_tier"])
        limit = reward.get("per_owner_limit")
        if limit and account.redeemed(reward_oid) + quantity > limit:
            raise errors.LimitReached()
        writes = batch(session)
        if terms is not None:
            stock.take_on_terms(session, reward, quantity, StaleCache())
        else:
            if reward["stock_left"] < quantity:
                raise errors.OutOfStock()
            stock.take(
                session,
                reward,
                quantity,
                preferred % stock.bucket_count(reward),
                errors.OutOfStock(),
            )
        redemption_id = ObjectId()
        points = reward["cost"] * quantity
        entry = ledger.write(
            session,
            ledger.Movement(
                owner.pk,
                REDEEM,
                -points,
                f"redemption:{redemption_id}",
                f"Redeemed {reward['title']}",
                {"rule": "redemption", "type": "redemption", "id": str(redemption_id)},
                owner.city_code,
                hold=drop.hold if drop is not None else None,
            ),
            now,
            account=account,
            account_changes=account.redeeming(reward_oid, quantity),
            send=False,
        )
        document = {
            "_id": redemption_id,
            "user_id": owner.pk,
            "reward_id": reward_oid,
            "reward_title": reward["title"],
            "quantity": quantity,
            "points": points,
            "fulfillment": reward["fulfillment"],
            "status": PENDING,
            "city_code": owner.city_code if reward["fulfillment"] == "pickup" else None,
            "entry_id": entry["_id"],
            "created_at": now,
        }
        if client_key:
            document["client_key"] = client_key
        if drop is not None:
            document["drop_id"] = drop.drop_id
        writes.insert(Redemption._get_collection(), document, duplicate=_KeyUsed())
        record_event(
            session,
            REDEMPTION_CREATED,
            RedemptionCreated(
                str(owner.pk), str(reward_oid), quantity, points, reward["fulfillment"]
            ),
            subject_id=redemption_id,
            actor_id=owner.pk,
            city_code=owner.city_code,
        )
        return MadeRedemption.stored(document)

    try:
        with one_at_a_time(turn(reward_oid, _buckets_seen.get(reward_oid, 1), preferred)):
            redemption = transaction(unit, answers_request=True)
    except _KeyUsed:
        # A retry with the client's key after its idempotency record expired: the
        # redemption it made, not a second one.
        made = Redemption._get_collection().find_one({"client_key": client_key})
        assert made is not None
        return MadeRedemption.stored(made)
    note(
        "reward_redeemed",
        redemption_id=str(redemption.pk),
        user_id=str(owner.pk),
        reward_id=reward_id,
        points=redemption.points,
    )
    return redemption


# What `stock.read_with_stock` reads besides the reward's terms: never part of the copy.
_STOCK_FIELDS = ("stock", "buckets", "stock_left", "left")


def cancel_redemption(by: Caller, redemption_id: str, now: datetime | None = None) -> Redemption:
    """Cancel a pending redemption: refund its points to the lots they came from, once, and
    put the stock back."""
    redemption = get_or_404(Redemption, redemption_id)
    by.require_self_or_admin(redemption.user_id)
    now = now or utcnow()

    def unit(session: ClientSession) -> None:
        cancelled = update_and_read(
            Redemption._get_collection(),
            {"_id": redemption.pk, "status": PENDING},
            {"$set": {"status": CANCELLED, "cancelled_at": now, "cancelled_by": by.user.pk}},
            session=session,
        )
        if cancelled is None:
            raise errors.RedemptionNotPending(message="Only a pending redemption can be cancelled.")
        reward = Reward._get_collection().find_one(
            {"_id": cancelled["reward_id"]}, {"stock_buckets": 1}, session=session
        )
        if reward is not None:
            stock.give_back(session, reward, cancelled["quantity"], redemption.pk)
        debit = LedgerEntry._get_collection().find_one(
            {"_id": cancelled["entry_id"]}, session=session
        )
        account = points_account.read_account(session, cancelled["user_id"], now)
        refund = ledger.write(
            session,
            ledger.Movement(
                cancelled["user_id"],
                REFUND,
                cancelled["points"],
                f"refund:{redemption.pk}",
                f"Cancelled {cancelled['reward_title']}",
                {"rule": "redemption", "type": "redemption", "id": str(redemption.pk)},
                debit.get("city_code"),
                actor_id=by.user.pk,
                restore=debit["lots"],
            ),
            now,
            account=account,
            account_changes=account.redeeming(cancelled["reward_id"], -cancelled["quantity"]),
        )
        Redemption._get_collection().update_one(
            {"_id": redemption.pk}, {"$set": {"refund_entry_id": refund["_id"]}}, session=session
        )

    # The stock goes back to the reward's document, which redemptions take turns on.
    with one_at_a_time(redemption.reward_id):
        transaction(unit)
    log.info("redemption_cancelled", redemption_id=redemption_id, by=by.id)
    return redemption.reload()


def fulfil_redemption(by: Caller, redemption_id: str, now: datetime | None = None) -> Redemption:
    """Hand a reward over: admins, or circle leaders of the pickup city; never to
    themselves (403 `own_redemption`), so that stock leaves the store before a witness."""
    redemption = get_or_404(Redemption, redemption_id)
    by.require(redemption.city_code, CIRCLE_LEADER)
    if redemption.user_id == by.user.pk:
        raise errors.OwnRedemption()
    fulfilled = Redemption._get_collection().update_one(
        {"_id": redemption.pk, "status": PENDING},
        {
            "$set": {
                "status": FULFILLED,
                "fulfilled_at": now or utcnow(),
                "fulfilled_by": by.user.pk,
            }
        },
    )
    if not fulfilled.matched_count:
        raise errors.RedemptionNotPending(message="Only a pending redemption can be fulfilled.")
    log.info("redemption_fulfilled", redemption_id=redemption_id, by=by.id)
    return redemption.reload()


# --- drops: a reward released to many owners at once (the drops domain runs them) ---------


@dataclass(frozen=True)
class RewardTerms:
    """What a drop reads of the reward it releases."""

    id: ObjectId
    title: str
    cost: int
    stock_left: int
    per_owner_limit: int | None
    min_tier: str
    city_codes: list[str]
    active: bool
    drop_id: ObjectId | None


def reward_terms(reward_id: Any, session: ClientSession | None = None) -> RewardTerms | None:
    """The reward's terms in the caller's transaction (None: no such reward)."""
    oid = object_id(reward_id)
    reward = stock.read_with_stock(session, oid) if oid else None
    if reward is None:
        return None
    return RewardTerms(
        id=reward["_id"],
        title=reward["title"],
        cost=reward["cost"],
        stock_left=reward["stock_left"],
        per_owner_limit=reward.get("per_owner_limit"),
        min_tier=reward.get("min_tier") or points_account.TIER_NAMES[0],
        city_codes=list(reward.get("city_codes") or []),
        active=bool(reward.get("active")),
        drop_id=reward.get("drop_id"),
    )


def reserve_for_drop(session: ClientSession, reward_id: ObjectId, drop_id: ObjectId) -> bool:
    """Release the reward through the drop alone from now on (direct redemptions answer
    409 `drop_only`), in the drop's transaction; False when it is inactive or in a drop."""
    return bool(
        Reward._get_collection()
        .update_one(
            {"_id": reward_id, "active": True, "drop_id": None},
            {"$set": {"drop_id": drop_id}, **_edited(reward_id)},
            session=session,
        )
        .matched_count
    )


def release_from_drop(reward_id: ObjectId, drop_id: ObjectId) -> None:
    """The drop is decided: what stock it left is redeemable by anyone again."""
    Reward._get_collection().update_one(
        {"_id": reward_id, "drop_id": drop_id}, {"$unset": {"drop_id": ""}, **_edited(reward_id)}
    )


def drop_entry_refusal(
    owner: Owner, city_codes: list[str], min_tier: str, points: int, now: datetime
) -> str | None:
    """Why the owner may not enter a drop of a reward with these terms, as the slug a
    redemption would be refused with; None when nothing stands in the way. One read: the
    owner's points account (its tier, and its balance less what it holds)."""
    if city_codes and owner.city_code not in city_codes:
        return errors.NotInCity.error
    if city_codes and now < owner.city_held_since + CITY_TENURE:
        return errors.CityTooRecent.error
    account = points_account.Account(owner.pk, balances.current_account(owner.pk, now))
    if points_account.tier_rank(account.tier.name) < points_account.tier_rank(min_tier):
        return errors.TierTooLow.error
    if account.spendable() < points:
        return errors.InsufficientPoints.error
    return None
