"""Points from domain events, and the loyalty jobs the scheduler and admins start.

An earning domain event needs one handler here and one rule in `rules.DEFAULT_RULES`
(CONTRIBUTING.md: "A new earning rule"). Handlers run inside the backbone's transaction with its
idempotency marker; the ledger's own keys (event id + rule, and a per-owner `once_key`
where the product says "once") keep a replay from earning twice even without it.
"""

from __future__ import annotations

import dramatiq
from pymongo.client_session import ClientSession

from accounts.domain_events import (
    REFERRAL_COMPLETED,
    USER_ERASED,
    VEHICLE_VERIFIED,
    ReferralCompleted,
    VehicleVerified,
)
from app.handlers import handles
from app.outbox import DomainEvent, NoPayload
from community.domain_events import CONTENT_EVENTS, ContentChanged
from events.domain_events import (
    EVENT_ATTENDED,
    EVENT_FEEDBACK_GIVEN,
    EventAttended,
    FeedbackGiven,
)
from loyalty import bulk_credits, content_points, expiry, reconciliation, rules
from loyalty.domain_events import (
    BULK_CREDIT_REQUESTED,
    RECONCILIATION_REQUESTED,
    STATEMENT_RECEIVED,
    StatementReceived,
)
from loyalty.statements import match_statement


@handles(VEHICLE_VERIFIED, name="loyalty.welcome_points")
def welcome_points(event: DomainEvent[VehicleVerified], session: ClientSession) -> None:
    owner_id = event.payload.owner_id
    if event.payload.first_verified_vehicle:
        rules.award_for_event(
            session, event, "vehicle.verified", owner_id, once_key=f"vehicle.verified:{owner_id}"
        )


@handles(REFERRAL_COMPLETED, name="loyalty.referral_points")
def referral_points(event: DomainEvent[ReferralCompleted], session: ClientSession) -> None:
    referee = event.payload.referee_id
    rules.award_for_event(
        session,
        event,
        "referral.referrer",
        event.payload.referrer_id,
        once_key=f"referral.referrer:{referee}",
    )
    rules.award_for_event(
        session, event, "referral.referee", referee, once_key=f"referral.referee:{referee}"
    )


@handles(EVENT_ATTENDED, name="loyalty.attendance_points")
def attendance_points(event: DomainEvent[EventAttended], session: ClientSession) -> None:
    attended = event.payload
    rules.award_for_event(
        session,
        event,
        "event.attended",
        attended.user_id,
        points=attended.points_reward,
        once_key=f"event.attended:{attended.user_id}:{attended.event_id}",
    )


@handles(EVENT_FEEDBACK_GIVEN, name="loyalty.feedback_points")
def feedback_points(event: DomainEvent[FeedbackGiven], session: ClientSession) -> None:
    feedback = event.payload
    rules.award_for_event(
        session,
        event,
        "event.feedback",
        feedback.user_id,
        once_key=f"event.feedback:{feedback.user_id}:{feedback.event_id}",
    )


# Points follow content: each event carries what its post or comment owes now, and the
# content's points are made to match the newest state received (`loyalty.content_points`).
# The names are those of the handlers that applied one delta per event before, so their
# markers and queued messages carry over.
@handles(CONTENT_EVENTS["post.published"], name="loyalty.post_points")
@handles(CONTENT_EVENTS["comment.created"], name="loyalty.comment_points")
@handles(CONTENT_EVENTS["post.featured"], name="loyalty.featured_post_points")
@handles(CONTENT_EVENTS["post.removed"], name="loyalty.reverse_post_points")
@handles(CONTENT_EVENTS["comment.removed"], name="loyalty.reverse_comment_points")
@handles(CONTENT_EVENTS["post.restored"], name="loyalty.restore_post_points")
@handles(CONTENT_EVENTS["comment.restored"], name="loyalty.restore_comment_points")
@handles(CONTENT_EVENTS["post.deleted"], name="loyalty.deleted_post_points")
@handles(CONTENT_EVENTS["comment.deleted"], name="loyalty.deleted_comment_points")
def content_points_follow(event: DomainEvent[ContentChanged], session: ClientSession) -> None:
    content_points.settle(session, content_points.ContentState.from_event(event))


@handles(USER_ERASED, name="loyalty.close_erased_content")
def close_erased_content(event: DomainEvent[NoPayload], session: ClientSession) -> None:
    """An erased owner's posts and comments pay nothing any more."""
    content_points.close_account(session, event.subject_id)


@handles(RECONCILIATION_REQUESTED, name="loyalty.start_reconciliation", transactional=False)
def start_reconciliation(event: DomainEvent[NoPayload], session: None) -> None:
    # A run can outlast the domain-event actor's time limit and must not be one
    # transaction: hand it to its own actor. A second delivery finds the run claimed.
    reconcile.send(event.subject_id)


@handles(BULK_CREDIT_REQUESTED, name="loyalty.start_bulk_credit", transactional=False)
def start_bulk_credit(event: DomainEvent[NoPayload], session: None) -> None:
    # A large file outlasts the domain-event actor's time limit: its own actor applies it.
    apply_bulk_credit.send(event.subject_id)


@dramatiq.actor(
    actor_name="points.apply_bulk_credit",
    queue_name="loyalty",
    max_retries=3,
    time_limit=6 * 3600_000,
)
def apply_bulk_credit(job_id: str) -> None:
    """Apply an admin's bulk credit, line by line; a redelivery resumes where it stopped."""
    bulk_credits.apply(job_id)


@dramatiq.actor(
    actor_name="points.expire_due", queue_name="loyalty", max_retries=3, time_limit=30 * 60_000
)
def expire_due() -> None:
    expiry.expire_due()


@dramatiq.actor(
    actor_name="points.warn_expiring", queue_name="loyalty", max_retries=3, time_limit=30 * 60_000
)
def warn_expiring() -> None:
    expiry.warn_expiring()


@dramatiq.actor(
    actor_name="reconciliation.run", queue_name="loyalty", max_retries=3, time_limit=2 * 3600_000
)
def reconcile(run_id: str | None = None) -> None:
    """Run the requested reconciliation, or a new one (the nightly schedule sends none)."""
    reconciliation.run_reconciliation(run_id)


@handles(STATEMENT_RECEIVED, name="loyalty.match_statement", transactional=False)
def start_statement_matching(event: DomainEvent[StatementReceived], session: None) -> None:
    # A statement of 100,000 lines takes longer than the domain-event actor may, and is no
    # transaction: hand it to its own actor. A later upload of the day has its own event.
    match_statement_upload.send(event.subject_id, event.payload.upload_id)


@dramatiq.actor(
    actor_name="statements.match", queue_name="loyalty", max_retries=5, time_limit=3600_000
)
def match_statement_upload(statement_id: str, upload_id: str) -> None:
    """Match one upload of an ecosystem partner's statement against the ledger."""
    match_statement(statement_id, upload_id)
