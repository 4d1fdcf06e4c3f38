"""Owner clubs and their members.

Who runs a club: a city club is created and edited by its city's circle leaders, a national
club (`city_code` null) by admins; members are approved, declined and removed by the club's
moderators too, whom the city's leaders appoint among its active members.

`Club.member_count` counts active members. Every membership write that adds or takes away
an active member changes it in the same transaction, with a conditional write on the
membership (insert under a unique index, or a status-conditioned update or delete), so
concurrent joins and leaves keep it exact: a losing writer's transaction conflicts and is
retried on a fresh snapshot.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import CIRCLE_LEADER, require_city
from app import compat
from app.auth import Caller
from app.clock import utcnow
from app.db import batch, object_id, one_at_a_time, running_batch, transaction
from app.errors import Forbidden
from app.screening import refuse_listed_words
from app.web import paginate
from community import limits
from community.errors import (
    AlreadyMember,
    ClubNotFound,
    MembershipNotFound,
    ModeratorNotRemovable,
    NotActiveMember,
    NotPending,
    NotVerifiedOwner,
)
from community.models import (
    ACTIVE,
    APPROVAL,
    MEMBER,
    MODERATOR,
    PENDING,
    VERIFIED_OWNERS,
    Club,
    Membership,
)

log = structlog.get_logger()


# --- who may do what -------------------------------------------------------------------


def club_or_404(club_id: Any) -> Club:
    oid = object_id(club_id)
    club = Club.objects(pk=oid).first() if oid else None
    if club is None:
        raise ClubNotFound()
    return club


def runs_club(caller: Caller, club: Club) -> bool:
    """The club's city leaders (admins for a national club, as everywhere)."""
    return caller.acts_in(club.city_code, CIRCLE_LEADER)


def require_runs_club(caller: Caller, club: Club) -> None:
    if not runs_club(caller, club):
        raise Forbidden(message="Only the club's city leaders and admins may do this.")


def membership_of(club_id: ObjectId, user_id: ObjectId) -> Membership | None:
    return Membership.objects(club_id=club_id, user_id=user_id).first()


def require_manages_members(caller: Caller, club: Club) -> None:
    """The club's moderators, its city leaders and admins."""
    if runs_club(caller, club):
        return
    mine = membership_of(club.pk, caller.user.pk)
    if mine is None or mine.status != ACTIVE or mine.role != MODERATOR:
        raise Forbidden(message="Only the club's moderators and city leaders may do this.")


# --- clubs -----------------------------------------------------------------------------


def create_club(
    caller: Caller,
    *,
    name: str,
    kind: str,
    city_code: str | None = None,
    join_policy: str = "open",
    description: str = "",
) -> Club:
    """A city club by its city's circle leaders, a national club by admins."""
    if city_code is None:
        caller.require_admin()
    else:
        caller.require(city_code, CIRCLE_LEADER, hide=False)
        require_city(city_code)
    refuse_listed_words(name=name, description=description)
    club = Club(
        name=name,
        kind=kind,
        city_code=city_code,
        join_policy=join_policy,
        description=description,
        created_by=caller.user.pk,
    )
    club.save()
    log.info("club_created", club_id=str(club.pk), city=city_code, by=caller.id)
    return club


def update_club(caller: Caller, club_id: str, changes: dict[str, Any]) -> Club:
    club = club_or_404(club_id)
    require_runs_club(caller, club)
    refuse_listed_words(name=changes.get("name"), description=changes.get("description"))
    Club.objects(pk=club.pk).update_one(**{f"set__{k}": v for k, v in changes.items()})
    club.reload()
    log.info("club_updated", club_id=club_id, changes=sorted(changes), by=caller.id)
    return club


def describe_club(club: Club, mine: Membership | None = None) -> dict[str, Any]:
    document: dict[str, Any] = compat.field_values(club)
    document["my_membership"] = mine
    return document


def club_details(caller: Caller, club_id: str) -> dict[str, Any]:
    club = club_or_404(club_id)
    return describe_club(club, membership_of(club.pk, caller.user.pk))


def list_clubs(city: str | None, q: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    """Clubs newest first; `city` selects a city's clubs, `q` a part of the name."""
    query = Club.objects
    if city:
        query = query.filter(city_code=city)
    if q:
        # Clubs are few (a handful per city): matching the name is a scan of a small
        # collection, and `re.escape` keeps the client's text literal.
        query = query.filter(name=re.compile(re.escape(q), re.IGNORECASE))
    return paginate(query, cursor, limit)


def my_clubs(caller: Caller, cursor: str | None, limit: int) -> dict[str, Any]:
    """The clubs the caller belongs to (active or pending), most recently joined first."""
    page = paginate(Membership.objects(user_id=caller.user.pk), cursor, limit)
    clubs = {club.pk: club for club in Club.objects(pk__in=[m.club_id for m in page["items"]])}
    page["items"] = [
        describe_club(clubs[membership.club_id], membership)
        for membership in page["items"]
        if membership.club_id in clubs
    ]
    return page


# --- joining and leaving ---------------------------------------------------------------


def _members_of(club_id: ObjectId) -> threading.Lock:
    """A club's member count is one document, which a burst of joins (a brand's city club
    at launch) would conflict on and retry: this process's take turns
    (`app.db.one_at_a_time`)."""
    return one_at_a_time(f"members:{club_id}")


def _count_member(session: ClientSession, club_id: ObjectId, delta: int) -> None:
    """Count an active member more (+1) or fewer (-1). Inside a unit of
    `app.db.transaction` the update joins the unit's batch of writes."""
    clubs = Club._get_collection()
    # Never below zero, whatever happened before this release.
    condition = {} if delta > 0 else {"member_count": {"$gte": -delta}}
    update = {"$inc": {"member_count": delta}}
    if (writes := running_batch(session)) is not None:
        writes.update(clubs, {"_id": club_id, **condition}, update)
    else:
        clubs.update_one({"_id": club_id, **condition}, update, session=session)


def join(caller: Caller, club_id: str) -> Membership:
    """Join an open club (active at once) or ask to join one that needs approval; not while
    muted (403 `muted`), so that leaving and joining again does not shake a mute off."""
    club = club_or_404(club_id)
    user = caller.user
    limits.refuse_muted(caller)
    if club.join_policy == VERIFIED_OWNERS and not user.verified_owner:
        raise NotVerifiedOwner()
    status = PENDING if club.join_policy == APPROVAL else ACTIVE
    now = utcnow()
    membership = Membership(
        id=ObjectId(),
        club_id=club.pk,
        user_id=user.pk,
        status=status,
        role=MEMBER,
        city_code=club.city_code,
        created_at=now,
        joined_at=now if status == ACTIVE else None,
    )

    def unit(session: ClientSession) -> None:
        batch(session).insert(
            Membership._get_collection(), membership.to_mongo(), duplicate=AlreadyMember()
        )
        if status == ACTIVE:
            _count_member(session, club.pk, 1)

    with _members_of(club.pk):
        transaction(unit)
    log.info("club_joined", club_id=club_id, user_id=caller.id, status=status)
    return membership


def _drop_membership(
    club_id: ObjectId, user_id: ObjectId, keep_moderators: bool = False
) -> str | None:
    """Delete the membership; returns the status it had (None: there was none).
    `keep_moderators`: refuse when it is a moderator's (403 `moderator_not_removable`)."""

    def unit(session: ClientSession) -> str | None:
        memberships = Membership._get_collection()
        found = memberships.find_one({"club_id": club_id, "user_id": user_id}, session=session)
        if found is None:
            return None
        if keep_moderators and found.get("role") == MODERATOR:
            raise ModeratorNotRemovable()
        batch(session).delete(memberships, {"_id": found["_id"]})
        if found["status"] == ACTIVE:
            _count_member(session, club_id, -1)
        return found["status"]

    with _members_of(club_id):
        return transaction(unit)


def leave(caller: Caller, club_id: str) -> None:
    club = club_or_404(club_id)
    if _drop_membership(club.pk, caller.user.pk) is None:
        raise MembershipNotFound(message="You do not belong to this club.")
    log.info("club_left", club_id=club_id, user_id=caller.id)


def club_members(
    caller: Caller, club_id: str, status: str | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    club = club_or_404(club_id)
    require_manages_members(caller, club)
    return paginate(Membership.objects(club_id=club.pk, status=status or ACTIVE), cursor, limit)


def approve(caller: Caller, club_id: str, user_id: str) -> Membership:
    club = club_or_404(club_id)
    require_manages_members(caller, club)
    member = object_id(user_id)

    def unit(session: ClientSession) -> bool:
        result = Membership._get_collection().update_one(
            {"club_id": club.pk, "user_id": member, "status": PENDING},
            {"$set": {"status": ACTIVE, "joined_at": utcnow()}},
            session=session,
        )
        if result.modified_count:
            _count_member(session, club.pk, 1)
        return bool(result.modified_count)

    if member is None:
        raise MembershipNotFound()
    with _members_of(club.pk):
        approved = transaction(unit)
    if not approved:
        if membership_of(club.pk, member) is not None:
            raise NotPending()
        raise MembershipNotFound()
    log.info("membership_approved", club_id=club_id, user_id=user_id, by=caller.id)
    return Membership.objects.get(club_id=club.pk, user_id=member)


def remove_member(caller: Caller, club_id: str, user_id: str) -> None:
    """Decline a request or remove a member. The club's moderators remove members; a
    moderator is removed by those who appointed them, the city's leaders (and admins)."""
    club = club_or_404(club_id)
    require_manages_members(caller, club)
    member = object_id(user_id)
    keep_moderators = not runs_club(caller, club)
    if member is None or _drop_membership(club.pk, member, keep_moderators) is None:
        raise MembershipNotFound()
    log.info("membership_removed", club_id=club_id, user_id=user_id, by=caller.id)


def set_moderator(caller: Caller, club_id: str, user_id: str, moderator: bool) -> Membership:
    """Appoint an active member as the club's moderator, or make them a member again."""
    club = club_or_404(club_id)
    require_runs_club(caller, club)
    member = object_id(user_id)
    membership = membership_of(club.pk, member) if member else None
    if membership is None:
        raise MembershipNotFound()
    if membership.status != ACTIVE:
        raise NotActiveMember()
    role = MODERATOR if moderator else MEMBER
    Membership.objects(pk=membership.pk, status=ACTIVE).update_one(set__role=role)
    membership.reload()
    log.info("club_moderator_set", club_id=club_id, user_id=user_id, role=role, by=caller.id)
    return membership


# --- personal data ---------------------------------------------------------------------


def export_clubs(user_id: Any) -> list[dict[str, Any]]:
    memberships = list(Membership.objects(user_id=object_id(user_id)))
    names = {c.pk: c.name for c in Club.objects(pk__in=[m.club_id for m in memberships])}
    return [
        {
            "club_id": m.club_id,
            "club": names.get(m.club_id),
            "status": m.status,
            "role": m.role,
            "joined_at": m.joined_at,
        }
        for m in memberships
    ]


def erase_member(session: ClientSession, user_id: Any) -> None:
    """An erased account belongs to no club any more; the clubs count one member less."""
    memberships = Membership._get_collection()
    for membership in memberships.find({"user_id": object_id(user_id)}, session=session):
        memberships.delete_one({"_id": membership["_id"]}, session=session)
        if membership["status"] == ACTIVE:
            _count_member(session, membership["club_id"], -1)
