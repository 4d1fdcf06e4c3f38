"""The admin console's rewards catalogue (stock, per-owner limit, tier and city scope,
fulfilment, active) and earning rules (points, caps per day, week and month, active,
multiplied by tier; the most an event may pay). Forms are checked by the API's schemas."""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from accounts.services import all_cities
from app.auth import ADMIN, Caller
from app.db import get_or_404
from consoles.web import ADMINS, attempt, back, checked, console, options
from loyalty import rewards, rules
from loyalty.models import FULFILLMENTS, Reward
from loyalty.points_account import TIER_NAMES
from loyalty.rules import CAP_PERIODS
from loyalty.schemas import EarningRuleUpdateSchema, RewardCreateSchema, RewardUpdateSchema

TIER_LABELS = {
    "member": _l("Member"),
    "silver": _l("Silver"),
    "gold": _l("Gold"),
    "platinum": _l("Platinum"),
}
FULFILMENT_LABELS = {
    "pickup": _l("Pick-up"),
    "shipping": _l("Shipping"),
    "digital": _l("Digital"),
}
REWARD_FIELDS = (
    "title",
    "description",
    "cost",
    "stock",
    "per_owner_limit",
    "min_tier",
    "city_codes",
    "fulfillment",
    "active",
)


class RewardForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=2000)])
    cost = IntegerField(_l("Cost in points"), validators=[InputRequired()])
    stock = IntegerField(_l("Stock"), validators=[InputRequired()])
    per_owner_limit = IntegerField(_l("Per owner (empty: no limit)"), validators=[Optional()])
    min_tier = SelectField(_l("Lowest tier"))
    city_codes = SelectMultipleField(_l("Cities (none: every city)"), validators=[Optional()])
    fulfillment = SelectField(_l("Fulfilment"))
    active = BooleanField(_l("Offered to owners"), default=True)


class RuleForm(FlaskForm):
    points = IntegerField(_l("Points"), validators=[InputRequired()])
    day = IntegerField(_l("Per day"), validators=[Optional()])
    week = IntegerField(_l("Per week"), validators=[Optional()])
    month = IntegerField(_l("Per month"), validators=[Optional()])
    active = BooleanField(_l("Active"))
    multipliable = BooleanField(_l("Tier multiplier"))
    max_points = IntegerField(_l("Most per event"), validators=[Optional()])


def _reward_form(reward: Reward | None = None) -> RewardForm:
    data = None
    if reward is not None and request.method != "POST":
        data = {name: reward[name] for name in REWARD_FIELDS}
    form = RewardForm(data=data)
    form.min_tier.choices = options((tier, TIER_LABELS.get(tier, tier)) for tier in TIER_NAMES)
    form.fulfillment.choices = options((f, FULFILMENT_LABELS[f]) for f in FULFILLMENTS)
    form.city_codes.choices = [city.code for city in all_cities()]
    return form


def _reward_body(form: RewardForm) -> dict[str, Any]:
    body = {name: form[name].data for name in REWARD_FIELDS}
    body["description"] = body["description"] or None
    body["city_codes"] = list(body["city_codes"] or [])
    return body


@console.page("/admin/rewards", roles=ADMINS, methods=("GET", "POST"), nav=(ADMIN, _l("Rewards")))
def admin_rewards(staff: Caller) -> Any:
    """The whole catalogue, inactive rewards included; a form to add one."""
    form = _reward_form()
    if form.validate_on_submit():
        data = checked(form, RewardCreateSchema(), _reward_body(form))
        if data is not None and attempt(
            lambda: rewards.create_reward(staff, data), _l("Reward added.")
        ):
            return back("console.admin_rewards")
    return render_template(
        "consoles/admin/rewards.html",
        page=rewards.all_rewards(staff, request.args.get("cursor"), 100),
        form=form,
        tier_labels=TIER_LABELS,
        fulfilment_labels=FULFILMENT_LABELS,
    )


@console.page("/admin/rewards/<reward_id>", roles=ADMINS, methods=("GET", "POST"))
def admin_reward(staff: Caller, reward_id: str) -> Any:
    reward = get_or_404(Reward, reward_id)
    form = _reward_form(reward)
    if form.validate_on_submit():
        body = _reward_body(form)
        changes = {name: value for name, value in body.items() if reward[name] != value}
        if not changes:
            flash(_("Nothing changed."), "info")
            return back("console.admin_rewards")
        data = checked(form, RewardUpdateSchema(), changes)
        if data is not None and attempt(
            lambda: rewards.update_reward(staff, reward_id, data), _l("Saved.")
        ):
            return back("console.admin_rewards")
    return render_template("consoles/admin/reward.html", reward=reward, form=form)


@console.page("/admin/earning-rules", roles=ADMINS, nav=(ADMIN, _l("Earning rules")))
def earning_rules(staff: Caller) -> str:
    """Every rule with a form to change it."""
    listed = rules.list_rules(staff)
    forms = {
        rule.code: RuleForm(
            formdata=None,
            data={
                "points": rule.points,
                **{period: (rule.caps or {}).get(period) for period in CAP_PERIODS},
                "active": rule.active,
                "multipliable": rule.multipliable,
                "max_points": rule.max_points,
            },
        )
        for rule in listed
    }
    return render_template("consoles/admin/rules.html", rules=listed, forms=forms)


@console.page("/admin/earning-rules/<rule_code>", roles=ADMINS, methods=("POST",))
def edit_rule(staff: Caller, rule_code: str) -> Response:
    form = RuleForm()
    if form.validate():
        body: dict[str, Any] = {
            "points": form.points.data,
            "caps": {period: form[period].data for period in CAP_PERIODS},
            "active": form.active.data,
            "multipliable": form.multipliable.data,
        }
        if rule_code == "event.attended" and form.max_points.data is not None:
            body["max_points"] = form.max_points.data
        data = checked(form, EarningRuleUpdateSchema(), body)
        if data is not None:
            attempt(lambda: rules.update_rule(staff, rule_code, data), _l("Saved."))
            return back("console.earning_rules")
    for field in form:
        for error in field.errors:
            flash(f"{rule_code} · {field.label.text}: {error}", "error")
    return back("console.earning_rules")
