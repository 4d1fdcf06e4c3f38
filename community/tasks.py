"""The community's domain event handlers: notices to post authors, and erasure."""

from __future__ import annotations

from pymongo.client_session import ClientSession

from accounts.domain_events import USER_ERASED
from app.handlers import handles
from app.outbox import DomainEvent, NoPayload
from community import clubs, posts
from community.domain_events import COMMENT_CREATED, CommentCreated
from notifications.services import notify


@handles(COMMENT_CREATED, name="community.notify_post_author")
def notify_post_author(event: DomainEvent[CommentCreated], session: ClientSession) -> None:
    """The author of a post hears of each comment on it, except their own."""
    author = event.payload.post_author_id
    if author is None or author == event.payload.author_id:
        return
    notify(
        session,
        author,
        "community",
        "post_commented",
        {"post_id": event.payload.post_id, "comment_id": event.subject_id},
        dedupe_key=f"{event.id}:post_commented",
    )


@handles(USER_ERASED, name="community.erase_user_data")
def erase_user_data(event: DomainEvent[NoPayload], session: ClientSession) -> None:
    posts.erase_author(session, event.subject_id)
    clubs.erase_member(session, event.subject_id)
