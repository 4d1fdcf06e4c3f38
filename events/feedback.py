"""Event feedback, a closed loop: owners who attended rate the event in the week after it
ends (earning `event.feedback` points through `event.feedback_given`), its leaders read the
answers and their averages, and a low score opens a follow-up the city's leaders close.

It lives in events, not partners: it is about an event and its attendance, which events
owns (registrations, the event's end, who manages it). Partners only narrow who may read:
a leader sees the feedback of the partner they work for (events carry `city_partner_id`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from bson import ObjectId
from pymongo.client_session import ClientSession
from pymongo.errors import DuplicateKeyError

from accounts.services import CIRCLE_LEADER
from app.auth import Caller
from app.clock import utcnow
from app.db import get_or_404, transaction
from app.errors import Forbidden, NotFound
from app.outbox import record_event
from app.screening import holds_listed_word
from app.web import paginate
from events import errors
from events.access import is_staff, managed_event, visible_event
from events.domain_events import EVENT_FEEDBACK_GIVEN, FeedbackGiven
from events.listings import city_time
from events.models import (
    ATTENDED,
    CANCELLED,
    CLOSED,
    FEEDBACK_WINDOW_DAYS,
    FOLLOW_UP_DUE_DAYS,
    LOW_SCORE,
    OPEN,
    Event,
    EventFeedback,
    FollowUp,
    Registration,
)
from partners.services import may_see_partner_of, partners_of

log = structlog.get_logger()


def summarize(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """Count, average score and recommendation, and the net promoter score (% of 9-10
    answers minus % of 0-6 answers) of `{score, recommend}` answers."""
    count = len(answers)
    if not count:
        return {"count": 0, "average_score": None, "average_recommend": None, "nps": None}
    promoters = sum(1 for answer in answers if answer["recommend"] >= 9)
    detractors = sum(1 for answer in answers if answer["recommend"] <= 6)
    return {
        "count": count,
        "average_score": round(sum(answer["score"] for answer in answers) / count, 2),
        "average_recommend": round(sum(answer["recommend"] for answer in answers) / count, 2),
        "nps": round(100 * (promoters - detractors) / count, 1),
    }


def give_feedback(
    caller: Caller, event_id: str, score: int, recommend: int, comment: str | None = None
) -> EventFeedback:
    """Rate an event the caller attended, once, from its end until FEEDBACK_WINDOW_DAYS
    after (403 `not_attended`, 409 `feedback_closed`, `feedback_exists`; a cancelled event:
    409 `event_cancelled`). Staff, checked in without points, rate no event (403
    `staff_feedback`): their answers would grade a partner's scorecard and earn them points.
    Staff status is checked again here, and also as it was at check-in, so a grant revoked
    in between does not open the way."""
    event = visible_event(caller, event_id)
    if is_staff(caller):
        raise errors.StaffFeedback()
    attended = Registration.objects(
        event_id=event.pk, user_id=caller.user.pk, status=ATTENDED
    ).first()
    if attended is None:
        raise errors.NotAttended()
    if attended.staff_at_check_in:
        raise errors.StaffFeedback()
    if event.status == CANCELLED:
        raise errors.EventCancelled()
    now = utcnow()
    closes_at = event.ends_at + timedelta(days=FEEDBACK_WINDOW_DAYS)
    if not event.ends_at <= now <= closes_at:
        raise errors.FeedbackClosed(
            opens_at=city_time(event, event.ends_at).isoformat(),
            closes_at=city_time(event, closes_at).isoformat(),
        )
    feedback = EventFeedback(
        id=ObjectId(),
        event_id=event.pk,
        user_id=caller.user.pk,
        city_code=event.city_code,
        city_partner_id=event.city_partner_id,
        score=score,
        recommend=recommend,
        comment=comment,
        comment_held=holds_listed_word(comment),
        created_at=now,
    )

    def unit(session: ClientSession) -> None:
        EventFeedback._get_collection().insert_one(feedback.to_mongo(), session=session)
        if score <= LOW_SCORE:
            follow_up = FollowUp(
                feedback_id=feedback.pk,
                event_id=event.pk,
                user_id=caller.user.pk,
                city_code=event.city_code,
                city_partner_id=event.city_partner_id,
                score=score,
                created_at=now,
            )
            FollowUp._get_collection().insert_one(follow_up.to_mongo(), session=session)
        record_event(
            session,
            EVENT_FEEDBACK_GIVEN,
            FeedbackGiven(caller.id, str(event.pk), score, recommend),
            subject_id=feedback.pk,
            actor_id=caller.user.pk,
            city_code=event.city_code,
        )

    try:
        transaction(unit)
    except DuplicateKeyError:
        raise errors.FeedbackExists() from None
    log.info("feedback_given", event_id=event_id, score=score, by=caller.id)
    return feedback


def _readable_event(caller: Caller, event_id: str) -> Event:
    """An event its leaders manage and whose partner the caller works for (404 else)."""
    event = managed_event(caller, event_id)
    if not may_see_partner_of(caller, event.city_partner_id):
        raise NotFound()
    return event


def event_feedback(caller: Caller, event_id: str, cursor: str | None, limit: int) -> dict:
    """The answers, newest first, and their averages (the event's leaders, admin)."""
    event = _readable_event(caller, event_id)
    answers = list(
        EventFeedback._get_collection().find(
            {"event_id": event.pk}, {"score": 1, "recommend": 1, "_id": 0}
        )
    )
    page = paginate(EventFeedback.objects(event_id=event.pk), cursor, limit)
    # A comment with a listed sensitive word is withheld from those who read the answers.
    page["items"] = [
        {**answer.to_mongo().to_dict(), "id": answer.pk, "comment": None}
        if answer.comment_held
        else answer
        for answer in page["items"]
    ]
    return {**page, **summarize(answers)}


def overdue_before() -> Any:
    return utcnow() - timedelta(days=FOLLOW_UP_DUE_DAYS)


def follow_ups(
    caller: Caller,
    city: str | None,
    status: str | None,
    overdue: bool,
    cursor: str | None,
    limit: int,
) -> dict[str, Any]:
    """Follow-ups of the caller's cities and partner (admins: all), newest first;
    `overdue`: open for more than FOLLOW_UP_DUE_DAYS. Anyone else is refused, as the
    verification queue refuses them, rather than shown an empty list, and so is a `city`
    outside the caller's scope (which cities exist is no secret)."""
    if caller.cities_for(CIRCLE_LEADER) == set():
        raise Forbidden(message="Only circle leaders and admins read follow-ups.")
    query = FollowUp.objects
    if city is not None:
        caller.require(city, CIRCLE_LEADER, hide=False)
        query = query.filter(city_code=city)
    if not caller.is_admin:
        query = query.filter(
            city_code__in=sorted(caller.cities_for(CIRCLE_LEADER) or ()),
            city_partner_id__in=[*partners_of(caller), None],
        )
    if overdue:
        query = query.filter(status=OPEN, created_at__lt=overdue_before())
    elif status is not None:
        query = query.filter(status=status)
    return paginate(query, cursor, limit)


def close_follow_up(caller: Caller, follow_up_id: str, note: str) -> FollowUp:
    """Close an open follow-up with what was done (409 `follow_up_closed` when it is)."""
    follow_up = get_or_404(FollowUp, follow_up_id)
    caller.require(follow_up.city_code, CIRCLE_LEADER)
    if not may_see_partner_of(caller, follow_up.city_partner_id):
        raise NotFound()
    closed = FollowUp._get_collection().update_one(
        {"_id": follow_up.pk, "status": OPEN},
        {
            "$set": {
                "status": CLOSED,
                "closed_at": utcnow(),
                "closed_by": caller.user.pk,
                "note": note,
            }
        },
    )
    if not closed.matched_count:
        raise errors.FollowUpClosed()
    log.info("follow_up_closed", follow_up_id=follow_up_id, by=caller.id)
    follow_up.reload()
    return follow_up
