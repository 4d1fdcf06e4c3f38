"""The consoles' base: one blueprint of server-rendered pages under /console, where every
page declares the staff roles that may open it and, when it is a place to go, its entry in
the navigation. The role home pages, the navigation, the guard and the console rows of
tests/authz_table.py all read that one registry, so a new page (issue 23's review desk, the
admin console) is one decorated view:

    @console.page("/moderation", roles=AMBASSADORS, nav=(AMBASSADOR, _l("Review desk")))
    def review_desk(staff: Caller): ...

Every page requires a signed-in staff member (`consoles.auth`) unless `public=True`; a
caller who holds none of its roles gets 403 (admins hold every role: they act in every
city). Pages call the domains' services; a refusal they raise is shown as a message on the
page (`flash_refusal`) or, unhandled, as an error page in the caller's language. Every POST
carries a CSRF token (Flask-WTF; htmx sends it as a header).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import lazy_gettext as _l
from flask_babel import refresh
from flask_wtf.csrf import CSRFError, CSRFProtect
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as WerkzeugResponse
from wtforms.fields.choices import SelectChoice

from accounts.services import AMBASSADOR, CIRCLE_LEADER
from app.auth import ADMIN, Caller
from app.errors import DomainError, Forbidden, NotFound
from consoles import auth
from consoles.auth import STAFF_ROLES, holds
from consoles.messages import refusal_text

# In the order of their home pages: an admin lands on theirs.
LEADERS = frozenset({CIRCLE_LEADER})
AMBASSADORS = frozenset({AMBASSADOR})
ADMINS = frozenset({ADMIN})
STAFF = frozenset(STAFF_ROLES)
ROLE_NAMES = {
    CIRCLE_LEADER: _l("Circle leader"),
    AMBASSADOR: _l("Ambassador"),
    ADMIN: _l("Admin"),
}

# No inline script or style anywhere: scripts and styles are files of this app; charts are
# SVG images; the door's camera is a media stream; its service worker and kit are same-origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "worker-src 'self'",
        "manifest-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

csrf = CSRFProtect()


@dataclass(frozen=True)
class Page:
    endpoint: str
    rule: str
    methods: tuple[str, ...]
    roles: frozenset[str]
    public: bool
    # (role, label): listed on that role's home page and in its navigation.
    nav: tuple[str, Any] | None
    # The setting naming the largest body the page takes (an upload), else
    # MAX_CONTENT_LENGTH.
    upload_limit: str | None = None


class Console(Blueprint):
    """A blueprint whose views are pages with roles (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pages: dict[str, Page] = {}

    def page(
        self,
        rule: str,
        *,
        roles: frozenset[str] = frozenset(),
        methods: Iterable[str] = ("GET",),
        nav: tuple[str, Any] | None = None,
        public: bool = False,
        json: bool = False,
        upload_limit: str | None = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Route a page open to `roles` (admins always); `json=True` for the endpoints the
        door's script calls, which answer 401 rather than redirect to the sign-in form;
        `upload_limit` names the setting of the largest body it takes."""
        if not public and not roles:
            raise TypeError(f"{rule}: a page names its roles or is public")

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            endpoint = view.__name__
            page = Page(endpoint, rule, tuple(methods), roles, public, nav, upload_limit)
            self.pages[endpoint] = page
            guarded = view if public else _guard(view, page, json)
            self.add_url_rule(rule, endpoint, guarded, methods=list(methods))
            return view

        return decorate

    def nav_for(self, staff: Caller, role: str) -> list[Page]:
        """The pages on `role`'s home and in its navigation that `staff` may open."""
        return [
            page
            for page in self.pages.values()
            if page.nav is not None and page.nav[0] == role and may_open(staff, page)
        ]


def roles_of(staff: Caller) -> list[str]:
    """The roles the caller holds, an admin's being admin alone."""
    return [ADMIN] if staff.is_admin else [role for role in STAFF_ROLES if holds(staff, role)]


def nav_sections(staff: Caller) -> list[tuple[str, list[Page]]]:
    """Every role's pages the caller may open, by role (an admin's: every role's)."""
    sections = [(role, console.nav_for(staff, role)) for role in STAFF_ROLES]
    return [(role, pages) for role, pages in sections if pages]


def may_open(staff: Caller, page: Page) -> bool:
    return page.public or any(holds(staff, role) for role in page.roles)


def _guard(view: Callable[..., Any], page: Page, json: bool) -> Callable[..., Any]:
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        staff = auth.signed_in_staff()
        if staff is None:
            if json:
                return jsonify(error="signed_out"), 401
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        if not may_open(staff, page):
            raise Forbidden(message="This page is not for your role.")
        return view(staff, *args, **kwargs)

    return guarded


console = Console(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


def flash_refusal(refusal: DomainError) -> None:
    """Tell the caller why the service refused, in their language. A refusal of access (a
    thing outside the caller's scope, a role they lack) is no message on a page: it is
    raised again, to answer the page's 404 or 403."""
    if isinstance(refusal, NotFound) or type(refusal) is Forbidden:
        raise refusal
    flash(refusal_text(refusal), "error")


def attempt(change: Callable[[], Any], done: Any) -> bool:
    """Run a service's change for a form: say `done` when it is made, or why the service
    refused (`flash_refusal`); whether it was made."""
    try:
        change()
    except DomainError as refusal:
        flash_refusal(refusal)
        return False
    flash(done, "success")
    return True


def options(pairs: Iterable[tuple[str, Any]]) -> list[SelectChoice]:
    """A select's choices from (value, label) pairs (labels may be lazy translations)."""
    return [SelectChoice(value, str(label)) for value, label in pairs]


def checked(form: Any, schema: Any, body: dict[str, Any]) -> dict[str, Any] | None:
    """`body` as the API's own `schema` loads it, so a console accepts exactly what the API
    does; None, with the schema's messages on the form's fields (those about no field of the
    form on its first), when it does not."""
    try:
        loaded: dict[str, Any] = schema.load(body)
    except ValidationError as invalid:
        first = next(field for field in form if field.type not in ("CSRFTokenField", "HiddenField"))
        for name, messages in invalid.normalized_messages().items():
            target = form[name] if name in form else first  # noqa: SIM401 - no Form.get
            target.errors = [*target.errors, *(messages if isinstance(messages, list) else [])]
        return None
    return loaded


def back(default: str, **values: Any) -> WerkzeugResponse:
    """Redirect (303, so a reload does not post again) to `next` when it is a console path
    of this site, else to `default`."""
    target = request.values.get("next") or ""
    if not (target.startswith("/console/") and not target.startswith("//")):
        target = url_for(default, **values)
    return redirect(target, code=303)


@console.after_request
def _page_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    if request.endpoint != "console.static":
        # Pages show what one signed-in person may see: no shared cache keeps them.
        response.headers["Cache-Control"] = "no-store"
    response.vary.add("Cookie")
    return response


@console.before_request
def _each_request() -> None:
    # Flask-WTF and Flask-Babel keep the request's token and language in `g`, which outlives
    # the request where one app context spans several (the tests' does): each request
    # settles its own.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    refresh()
    page = console.pages.get((request.endpoint or "").removeprefix("console."))
    if page is not None and page.upload_limit:
        # Raised before the CSRF check reads the form (Flask 3.1 reads it per request).
        request.max_content_length = current_app.config[page.upload_limit]
    if request.endpoint != "console.static":
        csrf.protect()
        # Who is signed in is settled before any form is made: a session that ended is
        # forgotten first, so the form's token is kept in the session that follows.
        auth.signed_in_staff()


@console.context_processor
def _page_context() -> dict[str, Any]:
    staff = auth.signed_in_staff() if request.endpoint != "console.static" else None
    return {
        "staff": staff,
        "staff_roles": roles_of(staff) if staff else [],
        "nav_sections": nav_sections(staff) if staff else [],
        "role_names": ROLE_NAMES,
        "console": console,
    }


@console.errorhandler(DomainError)
def _refused(refusal: DomainError) -> tuple[str, int, dict[str, str]]:
    return (
        render_template("consoles/error.html", status=refusal.status, text=refusal_text(refusal)),
        refusal.status,
        refusal.headers,
    )


@console.errorhandler(CSRFError)
def _stale_form(error: CSRFError) -> tuple[str, int]:
    text = _l("This form has expired. Reload the page and try again.")
    return render_template("consoles/error.html", status=400, text=text), 400


@console.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Any:
    # Rate limits (429) keep their Retry-After; the rest get a page in the caller's language.
    status = error.code or 500
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    text = _l("Too many attempts. Wait a minute and try again.") if status == 429 else error.name
    return render_template("consoles/error.html", status=status, text=text), status, headers
