"""The partner's budget and scorecard: the month's ledger (allocated, reserved, drawn,
released, left, and its entries), and the scorecard with a month picker, charts of the
months before it and CSV. A leader sees the partner they work for; an admin picks one."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from app.auth import Caller
from consoles import charts
from consoles.staff_places import partner_of, summary
from consoles.web import LEADERS, console
from partners import budget, scorecards
from partners.models import CityPartner
from partners.scorecards import FIGURES, as_csv

MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"

CHARTS = (
    (
        _l("Owners"),
        (
            ("active_owners", _l("Active owners")),
            ("new_verified_owners", _l("New verified owners")),
        ),
    ),
    (
        _l("Events"),
        (
            ("events_held", _l("Events held")),
            ("attended", _l("Attended")),
            ("no_shows", _l("No-shows")),
        ),
    ),
    (
        _l("Points"),
        (
            ("budget_allocated", _l("Budget allocated")),
            ("budget_used", _l("Budget used")),
            ("points_issued", _l("Points issued")),
        ),
    ),
)


# The scorecard's figures as people read them (partners/scorecards.py's FIGURES).
FIGURE_NAMES = {
    "new_verified_owners": _l("New verified owners"),
    "active_owners": _l("Active owners"),
    "events_held": _l("Events held"),
    "registrations": _l("Registrations"),
    "attended": _l("Attended"),
    "no_shows": _l("No-shows"),
    "attendance_rate": _l("Attendance rate"),
    "no_show_rate": _l("No-show rate"),
    "feedback_count": _l("Answers"),
    "average_rating": _l("Average rating"),
    "nps": _l("Net promoter score"),
    "follow_ups_open": _l("Open follow-ups"),
    "follow_ups_overdue": _l("Overdue follow-ups"),
    "points_issued": _l("Points issued"),
    "budget_allocated": _l("Budget allocated"),
    "budget_used": _l("Budget used"),
    "posts": _l("Posts"),
    "comments": _l("Comments"),
    "reports_resolved": _l("Reports resolved"),
    "median_hours_to_resolve": _l("Median hours to resolve a report"),
    "referrals_completed": _l("Referrals completed"),
}


def _month() -> str | None:
    import re

    month = request.args.get("month") or None
    return month if month and re.match(MONTH, month) else None


def _partner(staff: Caller) -> tuple[CityPartner, list[dict[str, Any]]]:
    """The partner asked for (or the caller's first) and those the picker offers."""
    partner, choices = partner_of(staff, request.args.get("partner"))
    return partner, [summary(choice) for choice in choices]


@console.page("/budget", roles=LEADERS, nav=("circle_leader", _l("Budget")))
def partner_budget(staff: Caller) -> str:
    partner, choices = _partner(staff)
    month = _month() or scorecards.current_month(partner.city_code)
    ledger = budget.budget_of(partner, month, request.args.get("cursor"), 50)
    return render_template(
        "consoles/budget.html",
        partner=summary(partner),
        partners=choices,
        month=month,
        ledger=ledger,
    )


@console.page("/scorecard", roles=LEADERS, nav=("circle_leader", _l("Scorecard")))
def scorecard(staff: Caller) -> str:
    partner, choices = _partner(staff)
    history = scorecards.history_of(partner, _month())
    return render_template(
        "consoles/scorecard.html",
        partner=summary(partner),
        partners=choices,
        month=history["month"],
        card=history["months"][-1],
        figures=FIGURES,
        figure_names=FIGURE_NAMES,
        charts=[charts.bars(title, history["months"], series) for title, series in CHARTS],
    )


@console.page("/scorecard.csv", roles=LEADERS)
def scorecard_csv(staff: Caller) -> Response:
    partner, _ = _partner(staff)
    card = scorecards.scorecard_of(partner, _month())
    response = Response(as_csv([card]), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="scorecard-{card["city_code"]}-{card["month"]}.csv"'
    )
    return response
