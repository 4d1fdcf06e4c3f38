"""City partners' handler (a new circle leader joins the city's partner) and daily jobs."""

from __future__ import annotations

import dramatiq
from bson import ObjectId
from pymongo.client_session import ClientSession

from accounts.domain_events import ROLE_GRANTED, RoleGranted
from accounts.services import CIRCLE_LEADER
from app.handlers import handles
from app.outbox import DomainEvent
from partners import budget, scorecards, services


@handles(ROLE_GRANTED, name="partners.attach_leader")
def attach_leader(event: DomainEvent[RoleGranted], session: ClientSession) -> None:
    if event.payload.role == CIRCLE_LEADER:
        services.attach_leader(session, ObjectId(event.subject_id), event.payload.city_codes)


@dramatiq.actor(
    actor_name="partners.end_contracts", queue_name="partners", max_retries=3, time_limit=600_000
)
def end_contracts() -> None:
    """Contracts that are over: their leaders lose the city; the next partner takes over."""
    services.end_contracts()


@dramatiq.actor(
    actor_name="partners.compute_scorecards",
    queue_name="partners",
    max_retries=3,
    time_limit=3600_000,
)
def compute_scorecards() -> None:
    """Every partner's scorecards of the current and the previous month."""
    scorecards.compute_all()


@dramatiq.actor(
    actor_name="partners.reconcile_budgets",
    queue_name="partners",
    max_retries=3,
    time_limit=3600_000,
)
def reconcile_budgets() -> None:
    """Recompute the budgets' cached figures from their entries; log and repair drifts."""
    budget.reconcile()
