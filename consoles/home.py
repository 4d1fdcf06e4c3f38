"""Signing in and out, the language switch, and each role's home page: a circle leader's
shows their cities and partner (the month's budget left, events coming up, open follow-ups,
vehicles waiting); every home links to each page the role may open."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, send_from_directory, session
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from accounts.credentials import login_key
from accounts.services import AMBASSADOR, CIRCLE_LEADER
from app.auth import ADMIN, Caller
from app.errors import DomainError
from app.extensions import limiter
from community import moderation, review_queue
from consoles import auth, staff_places
from consoles.i18n import LANGUAGES
from consoles.web import STAFF, back, console, flash_refusal, nav_sections, roles_of
from loyalty import bulk_credits, reconciliation
from workers import services as backbone


class SignInForm(FlaskForm):
    account = StringField(_l("Email or phone"), validators=[DataRequired(), Length(max=200)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])


def _account_key() -> str:
    account = (request.form.get("account") or "").strip()
    email, phone = (account, None) if "@" in account else (None, account)
    return login_key(email, phone) or "unknown"


def _limit(setting: str):
    return lambda: current_app.config[setting]


def _posts_only() -> bool:
    return request.method != "POST"


@console.page("/sign-in", methods=("GET", "POST"), public=True)
@limiter.limit(
    _limit("RATELIMIT_LOGIN_PER_ACCOUNT"),
    key_func=_account_key,
    scope="console-login-account",
    exempt_when=_posts_only,
)
@limiter.limit(_limit("RATELIMIT_LOGIN_PER_IP"), scope="console-login-ip", exempt_when=_posts_only)
def sign_in() -> Any:
    """The sign-in form (rate-limited as the API's login: per account and per IP)."""
    form = SignInForm()
    if form.validate_on_submit():
        try:
            auth.sign_in(form.account.data or "", form.password.data or "", _device())
        except DomainError as refusal:
            flash_refusal(refusal)
        else:
            return back("console.home")
    elif auth.signed_in_staff() is not None:
        return back("console.home")
    return render_template("consoles/sign_in.html", form=form)


def _device() -> str:
    return request.user_agent.string or "browser"


@console.page("/sign-out", methods=("POST",), public=True)
def sign_out() -> Response:
    auth.sign_out()
    return redirect("/console/sign-in", code=303)


@console.page("/language/<code>", public=True)
def language(code: str) -> Response:
    """Switch the language (kept in the cookie session, signed in or not)."""
    if code in LANGUAGES:
        session["lang"] = code
    return back("console.home")


@console.page("/sw.js", public=True)
def service_worker() -> Response:
    """The door's service worker, served from /console/ so that its scope is the console."""
    return send_from_directory(console.static_folder or "", "sw.js", max_age=0)


@console.page("/", roles=STAFF)
def home(staff: Caller) -> Response:
    """Each person lands on the home of their first role."""
    [first, *_] = roles_of(staff)
    return redirect(f"/console/{HOMES[first]}", code=302)


HOMES = {ADMIN: "admin", CIRCLE_LEADER: "leader", AMBASSADOR: "ambassador"}


def _home(staff: Caller, role: str, **more: Any) -> str:
    sections = [(role, console.nav_for(staff, role))]
    if role == ADMIN:
        sections = nav_sections(staff)
    return render_template("consoles/home.html", role=role, sections=sections, **more)


@console.page("/leader", roles=frozenset({CIRCLE_LEADER}), nav=(CIRCLE_LEADER, _l("Home")))
def leader_home(staff: Caller) -> str:
    """My cities and my partner: the month's budget left, events coming up, open
    follow-ups, vehicles waiting for verification."""
    return _home(staff, CIRCLE_LEADER, overview=staff_places.overview(staff))


@console.page("/ambassador", roles=frozenset({AMBASSADOR}), nav=(AMBASSADOR, _l("Home")))
def ambassador_home(staff: Caller) -> str:
    """My cities: what waits on the review desk, and my decisions I may still undo."""
    return _home(
        staff,
        AMBASSADOR,
        desk={
            "cities": staff.cities_for(AMBASSADOR),
            "waiting": review_queue.waiting(staff),
            "recent": moderation.recent_decisions(staff),
        },
    )


@console.page("/admin", roles=frozenset({ADMIN}), nav=(ADMIN, _l("Home")))
def admin_home(staff: Caller) -> str:
    """An admin opens every page: the leaders' and ambassadors' pages act in every city for
    them. Their home shows what needs an admin: the desk's queue, dead letters, the last
    reconciliation run and bulk credit."""
    runs = reconciliation.recent_runs(staff, 1)
    jobs = bulk_credits.recent_jobs(staff, 1)
    return _home(
        staff,
        ADMIN,
        hq={
            "waiting": review_queue.waiting(staff),
            "dead_letters": backbone.dead_letters(staff, False).count(),
            "run": runs[0] if runs else None,
            "job": jobs[0] if jobs else None,
        },
    )
