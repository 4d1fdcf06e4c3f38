"""Notifications: the owner's inbox."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.models import User, utcnow
from notifications.models import Notification
from notifications.templates import render


def notify(session: ClientSession | None, user_id: str | ObjectId, kind: str, template: str,
           params: dict[str, Any], dedupe_key: str) -> bool:
    """Put a message in the owner's inbox, at most once per `dedupe_key`.

    Returns False when the owner no longer exists or the message was already there.
    """
    users = User._get_collection()
    owner = users.find_one({"_id": ObjectId(str(user_id)), "erased_at": None},
                           {"locale": 1}, session=session)
    if owner is None:
        return False
    title, body = render(template, owner.get("locale") or "zh-CN", params)
    result = Notification._get_collection().update_one(
        {"dedupe_key": dedupe_key},
        {"$setOnInsert": {"user_id": owner["_id"], "kind": kind, "template": template,
                          "title": title, "body": body, "data": params,
                          "created_at": utcnow()}},
        upsert=True, session=session)
    return result.upserted_id is not None
