"""The admin console's cities and city partners: cities (added with their time zone), each
with the partner running it now; partners with their contracts (one per city and day: an
overlap is refused with the other partner's dates), the leaders attached to each, a
partner's monthly budget (allocated with a key the form carries, so a double submit
allocates once) and its ledger; and every partner's scorecard side by side, sortable by any
figure, with charts and CSV. Forms are checked by the API's own schemas."""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import flash, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import DateField, HiddenField, IntegerField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from accounts.schemas import CityCreateSchema
from accounts.services import all_cities, create_city
from app.auth import ADMIN, Caller
from app.clock import utcnow
from consoles import charts
from consoles.partner import FIGURE_NAMES, MONTH
from consoles.web import ADMINS, attempt, back, checked, console, options
from partners import budget, scorecards, services
from partners.schemas import AllocationSchema, CityPartnerCreateSchema, CityPartnerUpdateSchema
from partners.scorecards import FIGURES, as_csv, current_month

# The figures a comparison charts, each on its own (partners side by side).
COMPARED = ("active_owners", "events_held", "attended", "points_issued")
ZONES = ("Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong", "Asia/Macau", "Asia/Taipei")


class CityForm(FlaskForm):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=8)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    province = StringField(_l("Province"), validators=[DataRequired(), Length(max=100)])
    timezone = SelectField(_l("Time zone"), choices=list(ZONES))


class PartnerForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    contact = StringField(_l("Contact"), validators=[DataRequired(), Length(max=500)])
    city_code = SelectField(_l("City"), validators=[DataRequired()])
    contract_start = DateField(_l("Contract starts"), validators=[DataRequired()])
    contract_end = DateField(_l("Contract ends (its last day)"), validators=[DataRequired()])


class PartnerEditForm(FlaskForm):
    contact = StringField(_l("Contact"), validators=[Optional(), Length(max=500)])
    contract_end = DateField(_l("Contract ends (its last day)"), validators=[Optional()])


class AllocationForm(FlaskForm):
    month = StringField(_l("Month"), validators=[DataRequired()])
    points = IntegerField(_l("Points"), validators=[InputRequired()])
    # A key per rendered form: submitted twice (a double click, a reload), it allocates once.
    key = HiddenField()


@console.page("/admin/cities", roles=ADMINS, methods=("GET", "POST"), nav=(ADMIN, _l("Cities")))
def admin_cities(staff: Caller) -> Any:
    """Every city with the partner running it now; a form to add one."""
    form = CityForm()
    if form.validate_on_submit():
        fields = ("code", "name", "province", "timezone")
        data = checked(form, CityCreateSchema(), {name: form[name].data for name in fields})
        if data is not None and attempt(lambda: create_city(**data), _l("City added.")):
            return back("console.admin_cities")
    partners = services.my_partners(staff)
    running = {p.city_code: p for p in partners if services.is_running(p)}
    return render_template(
        "consoles/admin/cities.html",
        cities=all_cities(),
        running=running,
        leaders=services.leader_counts([p.pk for p in running.values()]),
        form=form,
    )


@console.page(
    "/admin/partners", roles=ADMINS, methods=("GET", "POST"), nav=(ADMIN, _l("City partners"))
)
def admin_partners(staff: Caller) -> Any:
    """Every partner with its contract and leaders; a form to contract a new one."""
    form = PartnerForm()
    form.city_code.choices = options((c.code, f"{c.code} · {c.name}") for c in all_cities())
    if form.validate_on_submit():
        body = {
            "name": form.name.data,
            "contact": form.contact.data,
            "city_code": form.city_code.data,
            "contract_start": form.contract_start.data.isoformat(),
            "contract_end": form.contract_end.data.isoformat(),
        }
        data = checked(form, CityPartnerCreateSchema(), body)
        if data is not None and attempt(
            lambda: services.create_partner(staff, **data), _l("Partner contracted.")
        ):
            return back("console.admin_partners")
    listed = services.list_partners(None, request.args.get("cursor"), 100)
    return render_template(
        "consoles/admin/partners.html",
        page=listed,
        leaders=services.leader_counts([p.pk for p in listed["items"]]),
        running={p.pk for p in listed["items"] if services.is_running(p)},
        form=form,
    )


def _month() -> str | None:
    month = request.args.get("month") or ""
    return month if re.match(MONTH, month) else None


@console.page("/admin/partners/<partner_id>", roles=ADMINS)
def admin_partner(staff: Caller, partner_id: str) -> str:
    """A partner: its contract (the contact and the end may change), its leaders, a month
    of its budget with the ledger, and a form to allocate."""
    partner = services.partner_for(staff, partner_id)
    month = _month() or current_month(partner.city_code)
    allocation = AllocationForm(data={"month": month, "key": uuid.uuid4().hex})
    edit = PartnerEditForm(data={"contact": partner.contact})
    return render_template(
        "consoles/admin/partner.html",
        partner=services.describe(partner),
        leaders=services.leaders(partner),
        month=month,
        ledger=budget.budget_of(partner, month, request.args.get("cursor"), 50),
        allocation=allocation,
        edit=edit,
    )


@console.page("/admin/partners/<partner_id>/allocate", roles=ADMINS, methods=("POST",))
def allocate(staff: Caller, partner_id: str) -> Response:
    form = AllocationForm()
    if form.validate():
        body = {"month": form.month.data, "points": form.points.data}
        data = checked(form, AllocationSchema(), body)
        if data is not None:
            attempt(
                lambda: budget.allocate(
                    staff, partner_id, data["month"], data["points"], key=form.key.data or None
                ),
                _l("Allocated."),
            )
            return back("console.admin_partner", partner_id=partner_id, month=data["month"])
    for field in form:
        for error in field.errors:
            flash(f"{field.label.text}: {error}", "error")
    return back("console.admin_partner", partner_id=partner_id)


@console.page("/admin/partners/<partner_id>/edit", roles=ADMINS, methods=("POST",))
def edit_partner(staff: Caller, partner_id: str) -> Response:
    form = PartnerEditForm()
    body: dict[str, Any] = {}
    if form.validate():
        if form.contact.data:
            body["contact"] = form.contact.data
        if form.contract_end.data:
            body["contract_end"] = form.contract_end.data.isoformat()
    data = checked(form, CityPartnerUpdateSchema(), body) if body else None
    if data is None:
        flash(_("Change the contact or the contract's end."), "error")
    else:
        attempt(lambda: services.update_partner(staff, partner_id, data), _l("Saved."))
    return back("console.admin_partner", partner_id=partner_id)


def _ranking(staff: Caller) -> tuple[dict[str, Any], str, str]:
    month = _month() or utcnow().strftime("%Y-%m")
    asked = request.args.get("sort") or ""
    figure = asked if asked in FIGURES else "active_owners"
    order = "asc" if request.args.get("order") == "asc" else "desc"
    ranking = scorecards.ranked(staff, month, figure if order == "asc" else f"-{figure}")
    return ranking, figure, order


@console.page("/admin/scorecards", roles=ADMINS, nav=(ADMIN, _l("Scorecards")))
def admin_scorecards(staff: Caller) -> str:
    """Every partner's month side by side, sorted by any figure (a column's header), with a
    chart of each compared figure and CSV."""
    ranking, figure, order = _ranking(staff)
    rows = ranking["items"]
    return render_template(
        "consoles/admin/scorecards.html",
        month=ranking["month"],
        rows=rows,
        figure=figure,
        order=order,
        figures=FIGURES,
        figure_names=FIGURE_NAMES,
        charts=[
            charts.compared(
                FIGURE_NAMES[name],
                [row["name"] for row in rows],
                [row["figures"].get(name) or 0 for row in rows],
            )
            for name in COMPARED
        ]
        if rows
        else [],
    )


@console.page("/admin/scorecards.csv", roles=ADMINS)
def admin_scorecards_csv(staff: Caller) -> Response:
    ranking, _figure, _order = _ranking(staff)
    response = Response(as_csv(ranking["items"]), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="scorecards-{ranking["month"]}.csv"'
    )
    return response
