"""The domain events loyalty emits, with their payloads (app/outbox.py)."""

from __future__ import annotations

from dataclasses import dataclass

from app.outbox import NoPayload, declare


@dataclass(frozen=True)
class RedemptionCreated:
    user_id: str
    reward_id: str
    quantity: int
    points: int
    fulfillment: str


@dataclass(frozen=True)
class StatementReceived:
    upload_id: str
    line_count: int


REDEMPTION_CREATED = declare(
    "redemption.created",
    RedemptionCreated,
    subject_type="redemption",
    about="An owner spent points on a reward; the order waits to be fulfilled.",
)
RECONCILIATION_REQUESTED = declare(
    "reconciliation.requested",
    NoPayload,
    subject_type="reconciliation_run",
    about="An admin asked for every balance to be recomputed from the ledger.",
)
STATEMENT_RECEIVED = declare(
    "partner_statement.received",
    StatementReceived,
    subject_type="statement",
    about="An ecosystem partner sent a day's statement; a worker matches it against the ledger.",
)
BULK_CREDIT_REQUESTED = declare(
    "bulk_credit.requested",
    NoPayload,
    subject_type="bulk_credit",
    about="An admin started crediting points to many owners from a file; a worker applies it.",
)
