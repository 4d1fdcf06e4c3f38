"""Moderation actions with their audit log, and owner stories (reports and the review
queue: `community.reports`).

Ambassadors moderate the content of their cities (a post's or comment's city is its club's,
or in a national club its author's; a user's is their home city); admins moderate all.
An action on content outside their cities answers 404, so content there does not reveal
itself; the audit log of a city they do not moderate answers 403. Ambassadors moderate
staff's content like anyone's, but only admins warn, mute, ban or restore a staff account
(403 `staff_account`): a city's moderator cannot silence its leaders, a fellow ambassador or HQ.

An action, its audit entry, the resolution of the open reports on its target, the
notices to reporters and author, and the domain event that moves points (`post.removed`,
`post.restored`...) are written in one transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import AMBASSADOR, mute, suspend
from app import compat
from app.auth import Caller, load_caller
from app.clock import utcnow
from app.db import batch, transaction
from app.errors import NotFound
from app.web import paginate
from community.errors import (
    ActionNotApplicable,
    InvalidTransition,
    OwnContent,
    PostNotFound,
    StaffAccount,
    UnknownTarget,
)
from community.feed import feed_key
from community.models import (
    BAN,
    COMMENT,
    DELETED,
    HELD,
    HIDDEN,
    HIDE,
    MUTE,
    POST,
    REMOVE,
    REMOVED,
    RESTORE,
    USER,
    VISIBLE,
    WARN,
    Membership,
    ModerationAction,
    Post,
    Standing,
)
from community.posts import (
    count_comment,
    points_owed,
    post_or_404,
    record_commented,
    record_content_event,
    record_published,
)
from community.reports import (
    CONTENT_MODELS,
    discount_reports,
    find_target,
    moderated_cities,
    resolve_reports,
)
from notifications.services import notify

log = structlog.get_logger()

CONTENT_ACTIONS = (HIDE, RESTORE, REMOVE)
# Without `duration_days`: a mute lasts a week, a ban ten years.
DEFAULT_DAYS = {MUTE: 7, BAN: 3650}
# Which statuses each content action moves from, and to. Content its author deleted stays
# moderatable, so that deleting reported content does not escape review: `remove` upholds
# its reports (and marks it removed), `restore` rejects them but leaves it deleted, since
# moderation does not publish what its author withdrew.
TRANSITIONS = {
    HIDE: ((VISIBLE, HELD), HIDDEN),
    REMOVE: ((VISIBLE, HELD, HIDDEN, DELETED), REMOVED),
    RESTORE: ((HELD, HIDDEN, REMOVED, DELETED), VISIBLE),
}


# --- actions ---------------------------------------------------------------------------


def _city_of_action(caller: Caller, target_type: str, target_id: str) -> tuple[Any, Any, Any]:
    target, city, account = find_target(target_type, target_id, deleted=True)
    if not caller.acts_in(city, AMBASSADOR):
        raise NotFound()
    if account is not None and account == caller.user.pk:
        raise OwnContent()
    return target, city, account


def _is_staff(user_id: Any) -> bool:
    """A circle leader, an ambassador or an admin anywhere."""
    account = load_caller(user_id)
    return account is not None and bool(account.grants)


def take_action(
    caller: Caller,
    target_type: str,
    target_id: str,
    action: str,
    reason: str,
    duration_days: int | None = None,
) -> ModerationAction:
    """Apply a moderation action (see the module docstring)."""
    try:
        target, city, account = _city_of_action(caller, target_type, target_id)
    except UnknownTarget:
        raise NotFound() from None
    if target_type == USER and action in (HIDE, REMOVE):
        raise ActionNotApplicable()
    on_content = target_type in CONTENT_MODELS and action in CONTENT_ACTIONS
    if action in (WARN, MUTE, BAN) and account is None:
        raise ActionNotApplicable(message="The author's account no longer exists.")
    if not on_content and not caller.is_admin and _is_staff(account):
        raise StaffAccount()
    now = utcnow()
    days = duration_days or DEFAULT_DAYS.get(action)
    until = now + timedelta(days=days) if days and action in (MUTE, BAN) else None
    entry_id = ObjectId()

    def unit(session: ClientSession) -> ModerationAction:
        if on_content:
            before, after = _act_on_content(session, target_type, target["_id"], action, now)
        else:
            before, after = _act_on_account(session, account, action, until)
        entry = ModerationAction(
            id=entry_id,
            actor_id=caller.user.pk,
            target_type=target_type,
            target_id=str(target["_id"]),
            city_code=city,
            action=action,
            reason=reason,
            duration_days=days if action in (MUTE, BAN) else None,
            before=before,
            after=after,
            created_at=now,
        )
        ModerationAction._get_collection().insert_one(entry.to_mongo(), session=session)
        resolve_reports(session, caller, target_type, str(target["_id"]), action, reason, now)
        if account is not None:
            notify(
                session,
                account,
                "community",
                "moderation_action",
                {"action": action, "reason": reason},
                dedupe_key=f"{entry_id}:moderation_action",
            )
        return entry

    entry = transaction(unit)
    log.info(
        "moderation_action",
        action=action,
        target_type=target_type,
        target_id=target_id,
        by=caller.id,
        reason=reason,
    )
    return entry


def _act_on_content(
    session: ClientSession, target_type: str, content_id: ObjectId, action: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    collection = CONTENT_MODELS[target_type]._get_collection()
    content = collection.find_one({"_id": content_id}, session=session)
    sources, status = TRANSITIONS[action]
    if content is None or content["status"] not in sources:
        raise InvalidTransition()
    if content["status"] == DELETED and action == RESTORE:
        status = DELETED
    update: dict[str, Any] = {"status": status}
    if target_type == POST:
        update["feed_key"] = feed_key(content["club_id"], content_id, status)
    first_publication = status == VISIBLE and content.get("published_at") is None
    if first_publication:
        update["published_at"] = now
    if status == REMOVED:
        update["removals"] = content.get("removals", 0) + 1
    # Points follow content: an action that changes what it owes its author (publishing
    # held content, removing or restoring published content) records what it owes now.
    owed_before = points_owed(target_type, content)
    owed_after = points_owed(target_type, {**content, **update})
    if owed_before != owed_after:
        update["points_version"] = content.get("points_version", 0) + 1
    collection.update_one({"_id": content_id}, {"$set": update}, session=session)
    if target_type == COMMENT and (content["status"] == VISIBLE) != (status == VISIBLE):
        count_comment(session, content["post_id"], 1 if status == VISIBLE else -1)
    document = compat.from_son(CONTENT_MODELS[target_type], {**content, **update})
    if first_publication:
        if target_type == POST:
            record_published(session, document)
        else:
            post = Post._get_collection().find_one(
                {"_id": content["post_id"]}, {"author_id": 1}, session=session
            )
            record_commented(session, document, post.get("author_id") if post else None)
    elif owed_before != owed_after:
        record_content_event(
            session,
            f"{target_type}.{'removed' if status == REMOVED else 'restored'}",
            {**content, **update},
        )
    return {"status": content["status"]}, {"status": status}


def _act_on_account(
    session: ClientSession, user_id: ObjectId, action: str, until: datetime | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    standings = Standing._get_collection()
    standing = standings.find_one({"user_id": user_id}, session=session) or {}
    if action == WARN:
        standings.update_one(
            {"user_id": user_id}, {"$inc": {"warnings": 1}}, upsert=True, session=session
        )
        warnings = standing.get("warnings", 0)
        return {"warnings": warnings}, {"warnings": warnings + 1}
    muted_before = standing.get("muted_until")
    mute_until = until if action == MUTE else (None if action == RESTORE else muted_before)
    if mute_until != muted_before:
        standings.update_one(
            {"user_id": user_id},
            {"$set": {"muted_until": mute_until}},
            upsert=True,
            session=session,
        )
        Membership._get_collection().update_many(
            {"user_id": user_id}, {"$set": {"muted_until": mute_until}}, session=session
        )
        mute(user_id, mute_until, session)
    if action in (MUTE, BAN):
        # A silenced account's open reports stop counting towards hiding anything.
        discount_reports(session, user_id, "muted" if action == MUTE else "banned")
    before, after = {"muted_until": muted_before}, {"muted_until": mute_until}
    if action in (BAN, RESTORE):
        after["banned_until"] = until if action == BAN else None
        before["banned_until"] = suspend(user_id, after["banned_until"], session)
    return before, after


def audit_log(caller: Caller, city: str | None, cursor: str | None, limit: int) -> dict[str, Any]:
    cities = moderated_cities(caller, city)
    query = ModerationAction.objects
    if cities is not None:
        query = query.filter(city_code__in=sorted(cities))
    return paginate(query, cursor, limit)


# --- owner stories ---------------------------------------------------------------------


def feature_post(caller: Caller, post_id: str) -> Post:
    """Pin a visible post in its club as an owner story; its author earns `post.featured`
    points while it stands, unless they are staff (nobody earns from another staff
    member's action). Featuring it again changes nothing."""
    post = post_or_404(post_id)
    if post.status != VISIBLE or not caller.acts_in(post.city_code, AMBASSADOR):
        raise PostNotFound()
    if post.author_id == caller.user.pk:
        raise OwnContent()
    if post.featured:
        return post
    pays = not _is_staff(post.author_id)

    def unit(session: ClientSession) -> None:
        posts = Post._get_collection()
        found = posts.find_one({"_id": post.pk}, session=session)
        if found is None or found["featured"] or found["status"] != VISIBLE:
            return
        update = {
            "featured": True,
            "featured_by": caller.user.pk,
            "featured_at": utcnow(),
            "feature_pays": pays,
            "points_version": found.get("points_version", 0) + 1,
        }
        batch(session).update(posts, {"_id": post.pk}, {"$set": update})
        record_content_event(session, "post.featured", {**found, **update}, actor_id=caller.user.pk)

    transaction(unit)
    log.info("post_featured", post_id=post_id, by=caller.id, pays=pays)
    post.reload()
    return post


# --- upgrading -------------------------------------------------------------------------


def copy_mutes_to_users() -> int:
    """Copy the mutes still running onto their accounts, which now carry them (the release
    before kept them on the standing and the memberships only); `flask init-db` runs it."""
    copied = 0
    for standing in Standing._get_collection().find({"muted_until": {"$gt": utcnow()}}):
        mute(standing["user_id"], standing["muted_until"])
        copied += 1
    return copied
