"""The domain events drops emits, with their payloads (app/outbox.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.outbox import declare


@dataclass(frozen=True)
class DropCreated:
    target_type: str
    target_id: str
    mode: str
    quantity: int
    # ISO 8601 times, in UTC.
    opens_at: str
    closes_at: str
    # A draw's committed seed hash (None: first come).
    seed_hash: str | None


@dataclass(frozen=True)
class EntriesDecided:
    outcome: str
    user_ids: list[str]
    # A refused entry's reason, one per owner (empty unless refused).
    reasons: list[str | None] = field(default_factory=list)


DROP_CREATED = declare(
    "drop.created",
    DropCreated,
    subject_type="drop",
    about="A drop was set up; its job starts when it opens.",
)
DROP_ENTRIES_DECIDED = declare(
    "drop.entries_decided",
    EntriesDecided,
    subject_type="drop",
    about="A drop's job decided a batch of entries (won or refused); the entrants are told.",
)
