"""The domain events community emits, with their payloads (app/outbox.py).

Every change that moves what a post or comment owes its author records one of these with
what it owes now (`ContentPoints`), so that loyalty's points follow the content whatever
order its events arrive in (docs/product.md invariant 8)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.outbox import EventType, declare


@dataclass(frozen=True)
class ContentPoints:
    # Counted on the content in the transaction that changed it: the newest version wins.
    version: int
    # The earning facts that stand for the content now ("post.published", "post.featured").
    owes: list[str]
    status: str


@dataclass(frozen=True)
class ContentChanged:
    # None once the author's account was erased.
    author_id: str | None
    # Absent from events recorded before points followed content (read as the event's own
    # delta: `loyalty.content_points`).
    points: ContentPoints | None = None
    club_id: str | None = None


@dataclass(frozen=True)
class CommentCreated(ContentChanged):
    post_id: str | None = None
    post_author_id: str | None = None


def _content(name: str, about: str) -> EventType[ContentChanged]:
    return declare(name, ContentChanged, subject_type=name.split(".")[0], about=about)


POST_PUBLISHED = _content("post.published", "A post became visible in its club.")
POST_FEATURED = _content("post.featured", "An ambassador made a post an owner story.")
POST_REMOVED = _content("post.removed", "A moderator removed a post.")
POST_RESTORED = _content("post.restored", "A moderator restored a removed post.")
POST_DELETED = _content("post.deleted", "Its author deleted a published post.")
COMMENT_CREATED = declare(
    "comment.created",
    CommentCreated,
    subject_type="comment",
    about="An owner commented on a post.",
)
COMMENT_REMOVED = _content("comment.removed", "A moderator removed a comment.")
COMMENT_RESTORED = _content("comment.restored", "A moderator restored a removed comment.")
COMMENT_DELETED = _content("comment.deleted", "Its author deleted a comment.")
CONTENT_EVENTS: dict[str, EventType[Any]] = {
    event.name: event
    for event in (
        POST_PUBLISHED,
        POST_FEATURED,
        POST_REMOVED,
        POST_RESTORED,
        POST_DELETED,
        COMMENT_CREATED,
        COMMENT_REMOVED,
        COMMENT_RESTORED,
        COMMENT_DELETED,
    )
}
