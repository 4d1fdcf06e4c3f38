"""The community's domain event handlers: notices to post authors, and erasure."""

from __future__ import annotations

from pymongo.client_session import ClientSession

from app.outbox import DomainEvent
from community import clubs, posts
from notifications.services import notify
from workers.registry import handles


@handles("comment.created", name="community.notify_post_author")
def notify_post_author(event: DomainEvent, session: ClientSession) -> None:
    """The author of a post hears of each comment on it, except their own."""
    author = event.payload.get("post_author_id")
    if author is None or author == event.payload.get("author_id"):
        return
    notify(
        session,
        author,
        "community",
        "post_commented",
        {"post_id": event.payload["post_id"], "comment_id": event.subject_id},
        dedupe_key=f"{event.id}:post_commented",
    )


@handles("user.erased", name="community.erase_user_data")
def erase_user_data(event: DomainEvent, session: ClientSession) -> None:
    posts.erase_author(session, event.subject_id)
    clubs.erase_member(session, event.subject_id)
