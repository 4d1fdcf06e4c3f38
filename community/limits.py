"""What an owner may do at all: the new-owner sandbox (an account younger than a day posts
and comments a few times only, which bounds what a throwaway account can spray before
anyone looks), and the mute."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from app.auth import Caller
from app.clock import utcnow
from community.errors import Muted, NewAccountLimit
from community.models import Comment, Post

SANDBOX = timedelta(hours=24)


def check_new_account(caller: Caller, model: type[Post] | type[Comment]) -> None:
    created_at = caller.user.created_at
    now = utcnow()
    if created_at is None or created_at <= now - SANDBOX:
        return
    setting = "NEW_ACCOUNT_POSTS_PER_DAY" if model is Post else "NEW_ACCOUNT_COMMENTS_PER_DAY"
    allowed = current_app.config[setting]
    if model.objects(author_id=caller.user.pk).count() >= allowed:
        wait = int((created_at + SANDBOX - now).total_seconds()) + 1
        raise NewAccountLimit(headers={"Retry-After": str(wait)}, allowed=allowed)


def refuse_muted(caller: Caller) -> None:
    """403 `muted` while a moderator's mute lasts (the account's copy, read with the
    caller): it stops posts, comments, likes and joining clubs."""
    until = caller.user.muted_until
    if until is not None and until > utcnow():
        raise Muted(until=until.isoformat())
