"""Posts, comments and likes in clubs, and the feed.

A post and its `post.published` domain event (a comment and `comment.created`) are written
in one transaction; loyalty earns the points from the event. `Post.like_count` counts the
likes and `Post.comment_count` the visible comments: each changes in the transaction that
writes the like or the comment, conditionally on that write, so both stay exact under
concurrent requests.

Command budgets (tests/community/test_budgets.py): a read costs the caller's account, at
most one lookup and the page itself; a write at most five commands, counting the caller
and the commit. A post reads the caller's membership, which opens its transaction, and
sends the post, its club's day count (`community.feed`) and its event in one command; a
comment reads the post and then the membership, and sends the comment, the post's counter
and its event in one command.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.services import AMBASSADOR
from app.auth import Caller
from app.clock import utcnow
from app.db import (
    batch,
    changes_in_one_transaction,
    object_id,
    one_at_a_time,
    running_batch,
    transaction,
)
from app.outbox import record_event
from app.web import paginate
from community import limits, words
from community.clubs import club_or_404
from community.domain_events import CONTENT_EVENTS, ContentPoints
from community.errors import CommentNotFound, Muted, NotAuthor, NotMember, PostNotFound
from community.feed import club_days, count_post, feed_key, member_days, newest_posts
from community.models import (
    ACTIVE,
    COMMENT,
    DELETED,
    ERASED_BODY,
    ERASED_NAME,
    HELD,
    HIDDEN,
    POST,
    VISIBLE,
    Comment,
    Like,
    Membership,
    Post,
)

log = structlog.get_logger()


# --- who sees what ---------------------------------------------------------------------


def moderates(caller: Caller, city_code: str | None) -> bool:
    """Ambassadors of the content's city, and admins."""
    return caller.acts_in(city_code, AMBASSADOR)


def _may_see(caller: Caller, content: Post | Comment) -> bool:
    if content.status == VISIBLE:
        return True
    if content.status == DELETED:
        return False
    if content.status in (HELD, HIDDEN) and content.author_id == caller.user.pk:
        return True
    return moderates(caller, content.city_code)


def post_or_404(post_id: Any) -> Post:
    oid = object_id(post_id)
    post = Post.objects(pk=oid).first() if oid else None
    if post is None:
        raise PostNotFound()
    return post


def comment_or_404(comment_id: Any) -> Comment:
    oid = object_id(comment_id)
    comment = Comment.objects(pk=oid).first() if oid else None
    if comment is None:
        raise CommentNotFound()
    return comment


def visible_post(caller: Caller, post_id: str) -> Post:
    post = post_or_404(post_id)
    if not _may_see(caller, post):
        raise PostNotFound()
    return post


def _writing_member(caller: Caller, club_id: ObjectId, session: ClientSession) -> dict[str, Any]:
    """The caller's active membership of the club, refused while they are muted."""
    membership = Membership._get_collection().find_one(
        {"club_id": club_id, "user_id": caller.user.pk}, session=session
    )
    if membership is None or membership["status"] != ACTIVE:
        raise NotMember()
    until: datetime | None = membership.get("muted_until")
    if until is not None and until > utcnow():
        raise Muted(until=until.isoformat())
    return membership


def _counters_of(post_id: ObjectId) -> threading.Lock:
    """A post's counters are one document, which concurrent likes and comments would
    conflict on and retry: this process's take turns (`app.db.one_at_a_time`)."""
    return one_at_a_time(f"post:{post_id}")


def _screen(content: Post | Comment) -> None:
    """Publish new content at once, unless it contains a listed sensitive word: then it
    stays held for review (its author sees it)."""
    if not words.contains_listed_word(content.body):
        content.status, content.published_at = VISIBLE, content.created_at
        content.points_version = 1
        if isinstance(content, Post):
            content.feed_key = feed_key(content.club_id, content.pk, VISIBLE)


# --- posts -----------------------------------------------------------------------------


def publish_post(caller: Caller, club_id: str, body: str, image_urls: list[str]) -> Post:
    """Post in a club the caller is an active member of. A post with a listed sensitive
    word is held for review (its author sees it); others are published at once."""
    oid = object_id(club_id)
    if oid is None:
        raise NotMember()
    user = caller.user
    post = Post(
        id=ObjectId(),
        status=HELD,
        club_id=oid,
        author_id=user.pk,
        author_name=user.display_name,
        body=body,
        image_urls=image_urls,
        created_at=utcnow(),
    )
    _screen(post)

    def unit(session: ClientSession) -> Post:
        membership = _writing_member(caller, oid, session)
        limits.check_new_account(caller, Post)
        post.city_code = membership.get("city_code") or user.city_code
        writes = batch(session)
        writes.insert(Post._get_collection(), post.to_mongo())
        count_post(writes, oid, post.pk)
        if post.status == VISIBLE:
            record_published(session, post)
        return post

    # The club's day count is one document: this process's posts to it take turns.
    with one_at_a_time(f"post_days:{oid}"):
        transaction(unit, answers_request=True)  # with its Idempotency-Key's record
    log.info("post_published", post_id=str(post.pk), club_id=club_id, status=post.status)
    return post


def record_published(session: ClientSession, post: Post) -> None:
    record_content_event(session, "post.published", post.to_mongo(), club_id=str(post.club_id))


# --- what content owes its author ------------------------------------------------------
# Points follow content (docs/product.md invariant 8). Every change that moves what a post or
# comment owes its author records a domain event carrying what it owes now and a version
# counted on the content in the same transaction; loyalty makes the content's points match
# the newest version it has received (`loyalty.content_points`), so events delivered late,
# twice or out of order converge on the content's current state.


def points_owed(content_type: str, content: Mapping[str, Any]) -> list[str]:
    """The earning facts that stand for a post or comment in its state `content`:
    published content that is visible, or hidden pending review, owes its publication and,
    for a post, its feature (unless its author was staff when featured); held, removed and
    deleted content owes nothing, nor does a comment on its author's own post."""
    standing = content.get("published_at") is not None and content["status"] in (VISIBLE, HIDDEN)
    if not standing or content.get("author_id") is None:
        return []
    if content_type == COMMENT:
        return [] if content.get("on_own_post") else ["comment.created"]
    featured = content.get("featured") and content.get("feature_pays", True)
    return ["post.published", *(["post.featured"] if featured else [])]


def record_content_event(
    session: ClientSession,
    event_name: str,
    content: Mapping[str, Any],
    *,
    actor_id: ObjectId | None = None,
    **details: str | None,
) -> None:
    """Record `event_name` (`post.removed`...) for the post or comment whose stored state
    (after the change, its `points_version` counted) is `content`, with what it owes its
    author now; `details` are the event's payload fields beyond those (`club_id`...)."""
    event_type = CONTENT_EVENTS[event_name]
    author = content.get("author_id")
    points = ContentPoints(
        content["points_version"],
        points_owed(event_type.subject_type, content),
        content["status"],
    )
    record_event(
        session,
        event_type,
        event_type.payload(str(author) if author else None, points, **details),
        subject_id=content["_id"],
        actor_id=actor_id or author,
        city_code=content.get("city_code"),
    )


def club_posts(
    caller: Caller, club_id: str, featured: bool | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    """A club's visible posts, newest first; `featured` selects its owner stories."""
    if featured is None:
        return newest_posts(club_days(club_id), cursor, limit)
    club = club_or_404(club_id)
    return paginate(Post.objects(club_id=club.pk, featured=featured, status=VISIBLE), cursor, limit)


def feed(caller: Caller, cursor: str | None, limit: int) -> dict[str, Any]:
    """The visible posts of the caller's clubs, newest first: one read of their memberships
    with their clubs' day counts, one of the posts (`community.feed`)."""
    return newest_posts(member_days(caller.user.pk), cursor, limit)


def delete_post(caller: Caller, post_id: str) -> None:
    """Its author deletes a post: gone from every list, and it owes them no points any
    more. Its open reports stay in the review queue (`community.reports`)."""
    post = visible_post(caller, post_id)
    if post.author_id != caller.user.pk:
        raise NotAuthor()
    _delete_content(POST, post.pk)
    log.info("post_deleted", post_id=post_id, by=caller.id)


def _delete_content(content_type: str, content_id: ObjectId) -> None:
    """Mark a post or comment deleted, with `post.deleted` (`comment.deleted`) when it had
    been published, so that its points follow."""
    model = Post if content_type == POST else Comment

    def unit(session: ClientSession) -> None:
        collection = model._get_collection()
        found = collection.find_one({"_id": content_id}, session=session)
        if found is None or found["status"] == DELETED:
            return
        update: dict[str, Any] = {"status": DELETED}
        if content_type == POST:
            update["feed_key"] = None
        published = found.get("published_at") is not None
        if published:
            update["points_version"] = found.get("points_version", 0) + 1
        batch(session).update(collection, {"_id": content_id}, {"$set": update})
        if content_type == COMMENT and found["status"] == VISIBLE:
            count_comment(session, found["post_id"], -1)
        if published:
            record_content_event(session, f"{content_type}.deleted", {**found, **update})

    transaction(unit)


# --- comments --------------------------------------------------------------------------


@changes_in_one_transaction
def add_comment(caller: Caller, post_id: str, body: str) -> Comment:
    """Comment on a visible post of a club the caller is an active member of."""
    oid = object_id(post_id)
    if oid is None:
        raise PostNotFound()
    user = caller.user
    comment = Comment(
        id=ObjectId(),
        status=HELD,
        post_id=oid,
        author_id=user.pk,
        author_name=user.display_name,
        body=body,
        created_at=utcnow(),
    )
    _screen(comment)

    def unit(session: ClientSession) -> Comment:
        post = Post._get_collection().find_one(
            {"_id": oid},
            {"club_id": 1, "city_code": 1, "author_id": 1, "status": 1},
            session=session,
        )
        if post is None or post["status"] != VISIBLE:
            raise PostNotFound()
        _writing_member(caller, post["club_id"], session)
        limits.check_new_account(caller, Comment)
        comment.club_id, comment.city_code = post["club_id"], post.get("city_code")
        comment.on_own_post = post.get("author_id") == user.pk
        batch(session).insert(Comment._get_collection(), comment.to_mongo())
        if comment.status == VISIBLE:
            count_comment(session, oid, 1)
            record_commented(session, comment, post.get("author_id"))
        return comment

    with _counters_of(oid):
        transaction(unit, answers_request=True)  # with its Idempotency-Key's record
    log.info("comment_created", comment_id=str(comment.pk), post_id=post_id, status=comment.status)
    return comment


def count_comment(session: ClientSession, post_id: ObjectId, delta: int) -> None:
    """Count a comment that became visible (+1) or stopped being visible (-1). Inside a
    unit of `app.db.transaction` the update joins the unit's batch of writes."""
    condition = {} if delta > 0 else {"comment_count": {"$gte": -delta}}
    posts = Post._get_collection()
    update = {"$inc": {"comment_count": delta}}
    if (writes := running_batch(session)) is not None:
        writes.update(posts, {"_id": post_id, **condition}, update)
    else:
        posts.update_one({"_id": post_id, **condition}, update, session=session)


def record_commented(
    session: ClientSession, comment: Comment, post_author_id: ObjectId | None
) -> None:
    record_content_event(
        session,
        "comment.created",
        comment.to_mongo(),
        post_id=str(comment.post_id),
        post_author_id=str(post_author_id) if post_author_id else None,
    )


def post_comments(caller: Caller, post_id: str, cursor: str | None, limit: int) -> dict[str, Any]:
    """A post's visible comments, oldest first."""
    post = visible_post(caller, post_id)
    return paginate(Comment.objects(post_id=post.pk, status=VISIBLE), cursor, limit, order=("id",))


def delete_comment(caller: Caller, comment_id: str) -> None:
    comment = comment_or_404(comment_id)
    if comment.status == DELETED or not _may_see(caller, comment):
        raise CommentNotFound()
    if comment.author_id != caller.user.pk:
        raise NotAuthor()
    with _counters_of(comment.post_id):
        _delete_content(COMMENT, comment.pk)
    log.info("comment_deleted", comment_id=comment_id, by=caller.id)


# --- likes -----------------------------------------------------------------------------


def _like_count(session: ClientSession, post_id: ObjectId) -> int:
    post = Post._get_collection().find_one({"_id": post_id}, {"like_count": 1}, session=session)
    return post["like_count"] if post else 0


def like(caller: Caller, post_id: str) -> dict[str, Any]:
    """Like a visible post; liking it again changes nothing. Not while muted (403 `muted`):
    a like is a vote, and a mute silences votes too."""
    oid = object_id(post_id)
    if oid is None:
        raise PostNotFound()
    user_id = caller.user.pk
    limits.refuse_muted(caller)

    def unit(session: ClientSession) -> int:
        posts = Post._get_collection()
        added = Like._get_collection().update_one(
            {"post_id": oid, "user_id": user_id},
            {"$setOnInsert": {"created_at": utcnow()}},
            upsert=True,
            session=session,
        )
        if added.upserted_id is not None:
            counted = posts.update_one(
                {"_id": oid, "status": VISIBLE}, {"$inc": {"like_count": 1}}, session=session
            )
            if not counted.modified_count:
                # Aborts the transaction: the like is not kept either.
                raise PostNotFound()
            return _like_count(session, oid)
        post = posts.find_one({"_id": oid}, {"like_count": 1, "status": 1}, session=session)
        if post is None or post["status"] != VISIBLE:
            raise PostNotFound()
        return post["like_count"]

    with _counters_of(oid):
        return {"post_id": oid, "liked": True, "like_count": transaction(unit)}


def unlike(caller: Caller, post_id: str) -> dict[str, Any]:
    """Take a like back; without one, nothing changes."""
    oid = object_id(post_id)
    if oid is None:
        raise PostNotFound()
    user_id = caller.user.pk

    def unit(session: ClientSession) -> int:
        removed = Like._get_collection().delete_one(
            {"post_id": oid, "user_id": user_id}, session=session
        )
        if removed.deleted_count:
            Post._get_collection().update_one(
                {"_id": oid, "like_count": {"$gte": 1}},
                {"$inc": {"like_count": -1}},
                session=session,
            )
        post = Post._get_collection().find_one(
            {"_id": oid}, {"like_count": 1, "status": 1}, session=session
        )
        if post is None or post["status"] != VISIBLE:
            raise PostNotFound()
        return post["like_count"]

    with _counters_of(oid):
        return {"post_id": oid, "liked": False, "like_count": transaction(unit)}


# --- personal data ---------------------------------------------------------------------


def export_posts(user_id: Any) -> list[dict[str, Any]]:
    fields = ("club_id", "body", "image_urls", "status", "like_count", "comment_count")
    return [
        {"id": post.pk, **{name: post[name] for name in fields}, "created_at": post.created_at}
        for post in Post.objects(author_id=object_id(user_id))
    ]


def export_comments(user_id: Any) -> list[dict[str, Any]]:
    return [
        {
            "id": comment.pk,
            "post_id": comment.post_id,
            "body": comment.body,
            "status": comment.status,
            "created_at": comment.created_at,
        }
        for comment in Comment.objects(author_id=object_id(user_id))
    ]


def erase_author(session: ClientSession, user_id: Any) -> None:
    """An erased owner's posts and comments stay (threads and counts hold) but say
    nothing of them any more: the body and images give way to a placeholder, and the
    author is detached."""
    oid = object_id(user_id)
    detached = {"author_id": None, "author_name": ERASED_NAME, "body": ERASED_BODY}
    Post._get_collection().update_many(
        {"author_id": oid}, {"$set": {**detached, "image_urls": []}}, session=session
    )
    Comment._get_collection().update_many({"author_id": oid}, {"$set": detached}, session=session)
