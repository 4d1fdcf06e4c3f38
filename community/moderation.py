"""Moderation decisions with their audit log, their undo and bulk decisions, and owner
stories (reports: `community.reports`; the review desk's queue: `community.review_queue`;
items' versions and claims: `community.reviewables`).

Ambassadors moderate the content of their cities (a post's or comment's city is its club's,
or in a national club its author's; a user's is their home city); admins moderate all.
An action on content outside their cities answers 404, so content there does not reveal
itself; the audit log of a city they do not moderate answers 403. Nobody decides on their
own content or account (403 `own_content`). Ambassadors moderate staff's content like
anyone's, but only admins warn, mute, ban or restore a staff account (403
`staff_account`): a city's moderator cannot silence its leaders, a fellow ambassador or HQ.
The actions the desk offers for an item are those this module allows (`allowed_actions`).

A decision, its audit entry, the item's next version, the resolution of the open reports on
its target, the statements of reasons to the author and the reporters, and the domain event
that moves points (`post.removed`, `post.restored`...) are written in one transaction. An
undo (within UNDO_MINUTES, by the ambassador who decided or an admin) goes back through the
same state changes: the content's status and its points event, the account's mute, ban or
warning, the reports reopened and the reporters' standing, each with its own audit entry.
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
from app.db import batch, get_or_404, object_id, transaction
from app.errors import DomainError, NotFound
from app.web import paginate
from community import reviewables
from community.errors import (
    ActionNotApplicable,
    AlreadyDecided,
    AlreadyUndone,
    InvalidTransition,
    NotUndoable,
    NotYourDecision,
    OwnContent,
    PostNotFound,
    StaffAccount,
    Superseded,
    UndoExpired,
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
    KEEP,
    MUTE,
    POST,
    REMOVE,
    REMOVED,
    RESTORE,
    UNDO,
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
    reopen_reports,
    resolve_reports,
    restore_weights,
)
from notifications.services import notify

log = structlog.get_logger()

CONTENT_ACTIONS = (KEEP, HIDE, RESTORE, REMOVE)
ACCOUNT_ACTIONS = (WARN, MUTE, BAN)
# What a bulk decision may do: content actions, each audited on its own. Warning, muting
# or banning is decided once, on the account.
BULK_ACTIONS = CONTENT_ACTIONS
MAX_BULK = 100
# Without `duration_days`: a mute lasts a week, a ban ten years.
DEFAULT_DAYS = {MUTE: 7, BAN: 3650}
# How long the ambassador who decided (or an admin) may undo a decision.
UNDO_MINUTES = 10
# Which statuses each content action moves from, and to. Content its author deleted stays
# moderatable, so that deleting reported content does not escape review: `remove` upholds
# its reports (and marks it removed), `restore` and `keep` reject them but leave it
# deleted, since moderation does not publish what its author withdrew. `keep` dismisses
# the reports and publishes what was held or hidden.
TRANSITIONS = {
    KEEP: ((VISIBLE, HELD, HIDDEN, DELETED), VISIBLE),
    HIDE: ((VISIBLE, HELD), HIDDEN),
    REMOVE: ((VISIBLE, HELD, HIDDEN, DELETED), REMOVED),
    RESTORE: ((HELD, HIDDEN, REMOVED, DELETED), VISIBLE),
}
# Where the desk offers each content action: the API takes more (keeping hidden content
# restores it, restoring held content keeps it), but one word for each outcome reads
# better: keep what stands or was held, restore what was hidden or removed.
OFFERED = {
    KEEP: (VISIBLE, HELD, DELETED),
    HIDE: (VISIBLE, HELD),
    REMOVE: (VISIBLE, HELD, HIDDEN, DELETED),
    RESTORE: (HIDDEN, REMOVED),
}
# The reports a decision dismisses rather than upholds.
DISMISSING = (KEEP, RESTORE)
# What the author and reporters read of a decision, in their language.
ACTION_LABELS = {
    KEEP: {"zh-CN": "保留", "en": "kept"},
    HIDE: {"zh-CN": "隐藏", "en": "hidden"},
    REMOVE: {"zh-CN": "删除", "en": "removed"},
    RESTORE: {"zh-CN": "恢复", "en": "restored"},
    WARN: {"zh-CN": "警告", "en": "warned"},
    MUTE: {"zh-CN": "禁言", "en": "muted"},
    BAN: {"zh-CN": "封禁", "en": "banned"},
}


# --- what may be decided ----------------------------------------------------------------


def allowed_actions(
    caller: Caller,
    target_type: str,
    status: str | None,
    account_id: Any,
    account_is_staff: bool,
    account_silenced: bool = False,
) -> list[str]:
    """The decisions `caller` may make on an item now, in the order the desk offers them:
    none on their own content or account; content actions by the content's status;
    warn, mute and ban when there is an author (an admin's only on staff), and on an
    account, restore while it is muted or banned."""
    if account_id is not None and account_id == caller.user.pk:
        return []
    offered: list[str] = []
    if target_type in CONTENT_MODELS:
        offered = [action for action in CONTENT_ACTIONS if status in OFFERED[action]]
    else:
        offered = [KEEP]
    if account_id is not None and (caller.is_admin or not account_is_staff):
        offered += list(ACCOUNT_ACTIONS)
        if target_type == USER and account_silenced:
            offered.append(RESTORE)
    return offered


# --- decisions --------------------------------------------------------------------------


def _city_of_action(caller: Caller, target_type: str, target_id: str) -> tuple[Any, Any, Any]:
    try:
        target, city, account = find_target(target_type, target_id, deleted=True)
    except UnknownTarget:
        raise NotFound() from None
    if not caller.acts_in(city, AMBASSADOR):
        raise NotFound()
    if account is not None and account == caller.user.pk:
        raise OwnContent()
    return target, city, account


def _is_staff(user_id: Any) -> bool:
    """A circle leader, an ambassador or an admin anywhere."""
    account = load_caller(user_id)
    return account is not None and bool(account.grants)


def _until(action: str, days: int | None, now: datetime) -> datetime | None:
    return now + timedelta(days=days) if days and action in (MUTE, BAN) else None


def _statement(action: str, until: datetime | None) -> dict[str, str]:
    """The decision as its author reads it: muted or banned until a date."""
    label = ACTION_LABELS[action]
    if until is None:
        return label
    day = until.date().isoformat()
    return {"zh-CN": f"{label['zh-CN']}至 {day}", "en": f"{label['en']} until {day}"}


def take_action(
    caller: Caller,
    target_type: str,
    target_id: str,
    action: str,
    reason: str,
    duration_days: int | None = None,
    version: int | None = None,
    *,
    batch_id: ObjectId | None = None,
) -> ModerationAction:
    """Decide an item (see the module docstring). `version` is the item's version the
    decision was made on: when the item was decided since (or another ambassador claims
    it), the decision is refused (409 `already_decided`, `claimed`) and nothing applies."""
    target, city, account = _city_of_action(caller, target_type, target_id)
    if target_type == USER and action in (HIDE, REMOVE):
        raise ActionNotApplicable()
    on_content = target_type in CONTENT_MODELS and action in CONTENT_ACTIONS
    if action in ACCOUNT_ACTIONS and account is None:
        raise ActionNotApplicable(message="The author's account no longer exists.")
    if action != KEEP and not on_content and not caller.is_admin and _is_staff(account):
        raise StaffAccount()
    now = utcnow()
    days = duration_days or DEFAULT_DAYS.get(action)
    until = _until(action, days, now)
    entry_id = ObjectId()
    target_key = str(target["_id"])
    reviewables.prepare(target_type, target_key)

    def unit(session: ClientSession) -> ModerationAction:
        made = reviewables.advance(
            session, caller, target_type, target_key, version, entry_id, action, now
        )
        undo: dict[str, Any] = {}
        if on_content:
            before, after, undo["content"] = _act_on_content(
                session, target_type, target["_id"], action, now
            )
        elif action == KEEP:
            before, after = {}, {}
        else:
            before, after, undo["account"] = _act_on_account(session, account, action, until)
        undo["reports"] = resolve_reports(
            session,
            caller,
            target_type,
            target_key,
            action not in DISMISSING,
            reason,
            now,
            entry_id,
        )
        entry = ModerationAction(
            id=entry_id,
            actor_id=caller.user.pk,
            target_type=target_type,
            target_id=target_key,
            city_code=city,
            account_id=account,
            action=action,
            reason=reason,
            duration_days=days if action in (MUTE, BAN) else None,
            before=before,
            after=after,
            version=made,
            batch_id=batch_id,
            undo=undo,
            created_at=now,
        )
        batch(session).insert(ModerationAction._get_collection(), entry.to_mongo())
        if account is not None and before != after:
            # A statement of reasons: what was decided, and why. Dismissed reports on
            # content left as it was change nothing for its author.
            notify(
                session,
                account,
                "community",
                "moderation_action",
                {"action": _statement(action, until), "reason": reason},
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
        version=entry.version,
        batch_id=str(batch_id) if batch_id else None,
    )
    return entry


def _act_on_content(
    session: ClientSession, target_type: str, content_id: ObjectId, action: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Move the content's status; returns before, after, and the fields undoing it sets."""
    collection = CONTENT_MODELS[target_type]._get_collection()
    content = collection.find_one({"_id": content_id}, session=session)
    sources, status = TRANSITIONS[action]
    if content is None or content["status"] not in sources:
        raise InvalidTransition()
    if content["status"] == DELETED and action in DISMISSING:
        status = DELETED
    prior = {name: content.get(name) for name in ("status", "published_at", "removals")}
    update: dict[str, Any] = {"status": status}
    first_publication = status == VISIBLE and content.get("published_at") is None
    if first_publication:
        update["published_at"] = now
    if status == REMOVED:
        update["removals"] = content.get("removals", 0) + 1
    if status != content["status"] or len(update) > 1:
        _change_content(session, target_type, content, update, first_publication)
    return {"status": content["status"]}, {"status": status}, prior


def _change_content(
    session: ClientSession,
    target_type: str,
    content: dict[str, Any],
    update: dict[str, Any],
    first_publication: bool = False,
) -> None:
    """Write a content's new status (and fields), its comment count and, when what it owes
    its author moved, the domain event that makes its points follow."""
    content_id, status = content["_id"], update["status"]
    if target_type == POST:
        update["feed_key"] = feed_key(content["club_id"], content_id, status)
    # Points follow content: a change of what it owes its author (publishing held
    # content, removing or restoring published content, undoing either) records what it
    # owes now.
    owed_before = points_owed(target_type, content)
    owed_after = points_owed(target_type, {**content, **update})
    if owed_before != owed_after:
        update["points_version"] = content.get("points_version", 0) + 1
    CONTENT_MODELS[target_type]._get_collection().update_one(
        {"_id": content_id}, {"$set": update}, session=session
    )
    if target_type == COMMENT and (content["status"] == VISIBLE) != (status == VISIBLE):
        count_comment(session, content["post_id"], 1 if status == VISIBLE else -1)
    changed = {**content, **update}
    if first_publication:
        document = compat.from_son(CONTENT_MODELS[target_type], changed)
        if target_type == POST:
            record_published(session, document)
        else:
            post = Post._get_collection().find_one(
                {"_id": content["post_id"]}, {"author_id": 1}, session=session
            )
            record_commented(session, document, post.get("author_id") if post else None)
    elif owed_before != owed_after:
        pays_more = len(owed_after) > len(owed_before)
        record_content_event(
            session, f"{target_type}.{'restored' if pays_more else 'removed'}", changed
        )


def _act_on_account(
    session: ClientSession, user_id: ObjectId, action: str, until: datetime | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Warn, mute, ban or restore an account; returns before, after, and what undoing it
    needs (the reports a mute or ban discounted)."""
    standings = Standing._get_collection()
    standing = standings.find_one({"user_id": user_id}, session=session) or {}
    if action == WARN:
        standings.update_one(
            {"user_id": user_id}, {"$inc": {"warnings": 1}}, upsert=True, session=session
        )
        warnings = standing.get("warnings", 0)
        return {"warnings": warnings}, {"warnings": warnings + 1}, {}
    muted_before = standing.get("muted_until")
    mute_until = until if action == MUTE else (None if action == RESTORE else muted_before)
    _set_mute(session, user_id, muted_before, mute_until)
    undo: dict[str, Any] = {}
    if action in (MUTE, BAN):
        # A silenced account's open reports stop counting towards hiding anything.
        undo["discounted"] = discount_reports(
            session, user_id, "muted" if action == MUTE else "banned"
        )
    before, after = {"muted_until": muted_before}, {"muted_until": mute_until}
    if action in (BAN, RESTORE):
        after["banned_until"] = until if action == BAN else None
        before["banned_until"] = suspend(user_id, after["banned_until"], session)
    return before, after, undo


def _set_mute(
    session: ClientSession, user_id: ObjectId, was: datetime | None, until: datetime | None
) -> None:
    """The mute on the owner's standing, memberships and account (which each request reads
    with the caller)."""
    if until == was:
        return
    Standing._get_collection().update_one(
        {"user_id": user_id}, {"$set": {"muted_until": until}}, upsert=True, session=session
    )
    Membership._get_collection().update_many(
        {"user_id": user_id}, {"$set": {"muted_until": until}}, session=session
    )
    mute(user_id, until, session)


# --- bulk decisions ---------------------------------------------------------------------


def decide_many(
    caller: Caller,
    target_type: str,
    items: list[dict[str, Any]],
    action: str,
    reason: str,
) -> dict[str, Any]:
    """Decide many items of one kind together (40 spam posts of one account): each is
    decided on the version given with it and audited on its own, under one `batch_id`;
    those refused (decided meanwhile, outside the caller's cities, a status the action
    does not fit) are listed with the refusal, the others applied."""
    moderated_cities(caller, None)
    if action not in BULK_ACTIONS:
        raise ActionNotApplicable(message="A bulk decision keeps, hides, removes or restores.")
    batch_id = ObjectId()
    applied: list[ModerationAction] = []
    refused: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in items:
        target_id = str(item["target_id"])
        if target_id in seen:
            continue
        seen.add(target_id)
        try:
            applied.append(
                take_action(
                    caller,
                    target_type,
                    target_id,
                    action,
                    reason,
                    version=item.get("version"),
                    batch_id=batch_id,
                )
            )
        except DomainError as refusal:
            refused.append(
                {
                    "target_id": target_id,
                    "status": refusal.status,
                    "error": refusal.error,
                    "message": refusal.message,
                }
            )
    log.info(
        "moderation_bulk",
        batch_id=str(batch_id),
        action=action,
        applied=len(applied),
        refused=len(refused),
        by=caller.id,
    )
    return {"batch_id": batch_id, "applied": applied, "refused": refused}


# --- undo -------------------------------------------------------------------------------


def undo_action(
    caller: Caller, action_id: str, reason: str = "", now: datetime | None = None
) -> ModerationAction:
    """Undo a decision within UNDO_MINUTES: its target and account return to where they
    were, through the same state changes (the content's points follow its status again),
    its reports open again, and the audit log keeps both entries. Only the ambassador who
    decided or an admin undoes (403 `not_your_decision`); once (409 `already_undone`);
    not an undo (409 `not_undoable`); not after another decision on the item or a change
    of the account since (409 `superseded`)."""
    now = now or utcnow()
    moderated_cities(caller, None)
    oid = object_id(action_id)
    entry = ModerationAction.objects(pk=oid).first() if oid else None
    if entry is None or not caller.acts_in(entry.city_code, AMBASSADOR):
        raise NotFound(message="No such decision.")
    if entry.actor_id != caller.user.pk and not caller.is_admin:
        raise NotYourDecision()
    if entry.action == UNDO:
        raise NotUndoable()
    if entry.undone_at is not None:
        raise AlreadyUndone()
    if now - entry.created_at > timedelta(minutes=UNDO_MINUTES):
        raise UndoExpired(minutes=UNDO_MINUTES)
    undo_id = ObjectId()
    reason = reason or "Decision undone"
    reviewables.prepare(entry.target_type, entry.target_id)

    def unit(session: ClientSession) -> ModerationAction:
        try:
            made = reviewables.advance(
                session,
                caller,
                entry.target_type,
                entry.target_id,
                entry.version,
                undo_id,
                UNDO,
                now,
            )
        except AlreadyDecided:
            raise Superseded() from None
        taken = ModerationAction._get_collection().update_one(
            {"_id": entry.pk, "undone_at": None},
            {"$set": {"undone_at": now, "undone_by_action": undo_id}},
            session=session,
        )
        if not taken.matched_count:
            raise AlreadyUndone()
        if "content" in entry.undo:
            _revert_content(session, entry)
        elif "account" in entry.undo:
            _revert_account(session, entry)
        reopen_reports(session, entry.target_type, entry.target_id, entry.undo.get("reports", []))
        undone = ModerationAction(
            id=undo_id,
            actor_id=caller.user.pk,
            target_type=entry.target_type,
            target_id=entry.target_id,
            city_code=entry.city_code,
            account_id=entry.account_id,
            action=UNDO,
            reason=reason,
            before=entry.after,
            after=entry.before,
            version=made,
            undoes=entry.pk,
            created_at=now,
        )
        batch(session).insert(ModerationAction._get_collection(), undone.to_mongo())
        if entry.account_id is not None and entry.before != entry.after:
            notify(
                session,
                entry.account_id,
                "community",
                "moderation_undone",
                {"action": ACTION_LABELS[entry.action], "reason": reason},
                dedupe_key=f"{undo_id}:moderation_undone",
            )
        return undone

    undone = transaction(unit, answers_request=True)
    log.info("moderation_undone", action_id=action_id, undo_id=str(undo_id), by=caller.id)
    return undone


def _revert_content(session: ClientSession, entry: ModerationAction) -> None:
    collection = CONTENT_MODELS[entry.target_type]._get_collection()
    content = collection.find_one({"_id": object_id(entry.target_id)}, session=session)
    if content is None or content["status"] != entry.after.get("status"):
        raise Superseded()
    prior = entry.undo["content"]
    if prior["status"] == content["status"] and prior.get("published_at") == content.get(
        "published_at"
    ):
        return
    _change_content(
        session,
        entry.target_type,
        content,
        {
            "status": prior["status"],
            "published_at": prior.get("published_at"),
            "removals": prior.get("removals") or 0,
        },
    )


def _revert_account(session: ClientSession, entry: ModerationAction) -> None:
    user_id = entry.account_id
    standings = Standing._get_collection()
    standing = standings.find_one({"user_id": user_id}, session=session) or {}
    if entry.action == WARN:
        standings.update_one(
            {"user_id": user_id, "warnings": {"$gte": 1}},
            {"$inc": {"warnings": -1}},
            session=session,
        )
        return
    muted = standing.get("muted_until")
    if muted != entry.after.get("muted_until"):
        raise Superseded()  # muted, unmuted or banned again since
    _set_mute(session, user_id, muted, entry.before.get("muted_until"))
    # The previous ban comes back with the write: one changed since aborts it all.
    if (
        "banned_until" in entry.before
        and suspend(user_id, entry.before["banned_until"], session) != entry.after["banned_until"]
    ):
        raise Superseded()
    restore_weights(session, entry.undo["account"].get("discounted", []))


def recent_decisions(caller: Caller, now: datetime | None = None) -> list[ModerationAction]:
    """The caller's decisions they may still undo, newest first."""
    now = now or utcnow()
    since = now - timedelta(minutes=UNDO_MINUTES)
    found = ModerationAction.objects(actor_id=caller.user.pk).order_by("-id").limit(50)
    return [
        entry
        for entry in found
        if entry.created_at > since and entry.action != UNDO and entry.undone_at is None
    ]


# --- the audit log ----------------------------------------------------------------------


def audit_log(
    caller: Caller,
    city: str | None,
    cursor: str | None,
    limit: int,
    *,
    actor: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    """The audit log of the caller's cities (or `city`), newest first; by ambassador
    (`actor`), by target (`target_type` and `target_id`) or by account (every decision
    on a user or their content)."""
    cities = moderated_cities(caller, city)
    query = ModerationAction.objects
    # The filter leads with the field of its index.
    if target_type and target_id:
        query = query.filter(target_type=target_type, target_id=target_id)
    elif account:
        query = query.filter(account_id=object_id(account) or ObjectId())
    elif actor:
        query = query.filter(actor_id=object_id(actor) or ObjectId())
    if cities is not None:
        query = query.filter(city_code__in=sorted(cities))
    if actor and (target_id or account):
        query = query.filter(actor_id=object_id(actor) or ObjectId())
    return paginate(query, cursor, limit)


def decision_or_404(caller: Caller, action_id: str) -> ModerationAction:
    entry = get_or_404(ModerationAction, action_id)
    if not caller.acts_in(entry.city_code, AMBASSADOR):
        raise NotFound()
    return entry


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
