"""The admin console's points: look an owner up (by id, email or phone) and read their
balance, ledger and lots; adjust (a credit or a debit) or reverse a credit, with a reason
(nobody adjusts their own points); and bulk credits from a CSV upload: a preview of every
line, applied on a worker, then a report of what was applied and refused
(`loyalty.bulk_credits`)."""

from __future__ import annotations

from typing import Any

from flask import flash, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from werkzeug.wrappers import Response
from wtforms import IntegerField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from accounts.services import find_account
from app.auth import ADMIN, Caller
from app.errors import DomainError
from consoles.catalogue import TIER_LABELS
from consoles.csv import csv_response
from consoles.web import ADMINS, attempt, back, checked, console, flash_refusal
from loyalty import adjustments, balances, bulk_credits
from loyalty.models import (
    BULK_DONE,
    BULK_PREVIEWED,
    LINE_INVALID,
    LINE_REFUSED,
    LINE_STATUSES,
)
from loyalty.schemas import AdjustmentSchema, ReversalSchema

# Why a line of a bulk credit was not applied (loyalty.bulk_credits.LINE_ERRORS).
LINE_ERRORS = {
    "missing_account": _l("No account given"),
    "unknown_account": _l("No such owner"),
    "invalid_points": _l("Points are not a whole number (not zero, at most 1,000,000)"),
    "missing_reason": _l("No reason"),
    "reason_too_long": _l("Reason longer than 500 characters"),
    "invalid_reference": _l("Reference longer than 100 characters"),
    "duplicate_reference": _l("The reference is used by an earlier line"),
    "own_points": _l("Your own account"),
    "insufficient_points": _l("The owner has too few points for the debit"),
}
LINE_STATUS_NAMES = {
    "ready": _l("Ready"),
    "invalid": _l("Invalid"),
    "applied": _l("Applied"),
    "refused": _l("Refused"),
    "already_applied": _l("Already applied"),
}
JOB_STATUS_NAMES = {
    "previewed": _l("Previewed"),
    "queued": _l("Queued"),
    "running": _l("Running"),
    "done": _l("Done"),
    "failed": _l("Failed"),
}
ENTRY_KINDS = {
    "earn": _l("Earned"),
    "redeem": _l("Redeemed"),
    "refund": _l("Refunded"),
    "expire": _l("Expired"),
    "adjust": _l("Adjusted"),
    "reverse": _l("Reversed"),
}


class AdjustForm(FlaskForm):
    amount = IntegerField(_l("Points (negative to debit)"), validators=[InputRequired()])
    reason = StringField(_l("Reason the owner reads"), validators=[DataRequired(), Length(max=500)])


class ReverseForm(FlaskForm):
    reason = StringField(_l("Reason"), validators=[DataRequired(), Length(max=500)])


class UploadForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired()])
    reason = StringField(
        _l("Reason for lines without one"), validators=[Optional(), Length(max=500)]
    )


@console.page("/admin/points", roles=ADMINS, nav=(ADMIN, _l("Points")))
def admin_points(staff: Caller) -> str:
    """Look an owner up; their points, ledger and lots, and the forms to correct them."""
    query = (request.args.get("q") or "").strip()
    owner = find_account(query) if query else None
    if query and owner is None:
        flash(_("No owner with that id, email or phone."), "error")
    found = balances.points_of(staff, owner.pk, request.args.get("cursor"), 50) if owner else None
    return render_template(
        "consoles/admin/points.html",
        query=query,
        owner=owner,
        found=found,
        adjust=AdjustForm(),
        reverse=ReverseForm(),
        entry_kinds=ENTRY_KINDS,
        tier_labels=TIER_LABELS,
    )


@console.page("/admin/points/<user_id>/adjust", roles=ADMINS, methods=("POST",))
def adjust(staff: Caller, user_id: str) -> Response:
    form = AdjustForm()
    if form.validate():
        body = {"user_id": user_id, "amount": form.amount.data, "reason": form.reason.data}
        data = checked(form, AdjustmentSchema(), body)
        if data is not None:
            attempt(lambda: adjustments.adjust(staff, **data), _l("Adjusted: the owner is told."))
            return back("console.admin_points")
    flash(_("Give the points and a reason."), "error")
    return back("console.admin_points")


@console.page("/admin/points/entries/<entry_id>/reverse", roles=ADMINS, methods=("POST",))
def reverse(staff: Caller, entry_id: str) -> Response:
    form = ReverseForm()
    data = (
        checked(form, ReversalSchema(), {"reason": form.reason.data}) if form.validate() else None
    )
    if data is None:
        flash(_("Say why the entry is reversed."), "error")
    else:
        attempt(
            lambda: adjustments.reverse_entry(staff, entry_id, data["reason"]),
            _l("Reversed: the owner is told."),
        )
    return back("console.admin_points")


# --- bulk credits ------------------------------------------------------------------------


@console.page(
    "/admin/bulk-credits",
    roles=ADMINS,
    methods=("GET", "POST"),
    nav=(ADMIN, _l("Bulk credits")),
    upload_limit="BULK_CREDIT_MAX_BYTES",
)
def bulk_credit_uploads(staff: Caller) -> Any:
    """Upload a CSV (its preview follows); the latest uploads."""
    # The one body allowed past MAX_CONTENT_LENGTH (`upload_limit`): files of a few
    # hundred thousand owners, read as a stream, a chunk at a time.
    form = UploadForm()
    if form.validate_on_submit():
        upload = form.file.data
        try:
            job = bulk_credits.preview(
                staff, upload.stream, upload.filename or "", form.reason.data or ""
            )
        except DomainError as refusal:
            flash_refusal(refusal)
        else:
            return back("console.bulk_credit", job_id=str(job.pk))
    return render_template(
        "consoles/admin/bulk_uploads.html",
        form=form,
        jobs=bulk_credits.recent_jobs(staff),
        status_names=JOB_STATUS_NAMES,
    )


@console.page("/admin/bulk-credits/<job_id>", roles=ADMINS)
def bulk_credit(staff: Caller, job_id: str) -> str:
    """A bulk credit: its preview, its progress while a worker applies it, then its report
    (htmx refreshes the figures while it runs)."""
    job = bulk_credits.job_for(staff, job_id)
    wanted = request.args.get("status")
    shown = wanted if wanted in LINE_STATUSES else None
    if wanted is None and job.status == BULK_PREVIEWED:
        shown = LINE_INVALID  # what a preview is for: the lines that will not apply
    elif wanted is None and job.status == BULK_DONE:
        # A report opens on what needs mending (invalid, then refused lines), not on the
        # hundreds of thousands that went through.
        shown = next((s for s in (LINE_INVALID, LINE_REFUSED) if job.counts.get(s)), None)
    lines = bulk_credits.lines_of(job, shown, request.args.get("cursor"), 50)
    template = (
        "consoles/admin/_bulk_figures.html"
        if request.headers.get("HX-Request")
        else "consoles/admin/bulk_credit.html"
    )
    return render_template(
        template,
        job=job,
        lines=lines,
        shown=shown,
        line_errors=LINE_ERRORS,
        line_status_names=LINE_STATUS_NAMES,
        status_names=JOB_STATUS_NAMES,
        statuses=LINE_STATUSES,
    )


@console.page("/admin/bulk-credits/<job_id>/start", roles=ADMINS, methods=("POST",))
def start_bulk_credit(staff: Caller, job_id: str) -> Response:
    attempt(
        lambda: bulk_credits.start(staff, job_id),
        _l("Started: a worker applies it; this page shows its progress."),
    )
    return back("console.bulk_credit", job_id=job_id)


@console.page("/admin/bulk-credits/<job_id>/not-applied.csv", roles=ADMINS)
def bulk_credit_report(staff: Caller, job_id: str) -> Response:
    """Every line that was not applied, and why, to mend and upload again."""
    rows = list(bulk_credits.not_applied(staff, job_id))
    return csv_response(rows, f"bulk-credit-{job_id}-not-applied")
