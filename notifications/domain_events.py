"""The domain events notifications emits, with their payloads (app/outbox.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.outbox import declare


@dataclass(frozen=True)
class PushRequested:
    user_id: str
    kind: str
    title: str
    body: str
    data: dict[str, Any] = field(default_factory=dict)
    # The inbox entry shown with the push; None for a push-only notice.
    notification_id: str | None = None


PUSH_REQUESTED = declare(
    "notification.push_requested",
    PushRequested,
    subject_type="notification",
    about="A notice is due on the owner's phone: the push handler sends it (marketing waits "
    "for the end of the owner's quiet hours).",
)
