"""The admin console's operations: reconciliation runs (start one on the workers, read
each run's drift report) and dead letters (messages whose handler kept failing, replayed
once each)."""

from __future__ import annotations

from flask import render_template, request
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from app.auth import ADMIN, Caller
from app.web import paginate
from consoles.web import ADMINS, attempt, back, console
from loyalty import reconciliation
from workers import services as backbone

RUN_STATUS_NAMES = {
    "queued": _l("Queued"),
    "running": _l("Running"),
    "done": _l("Done"),
    "failed": _l("Failed"),
}


@console.page("/admin/reconciliation", roles=ADMINS, nav=(ADMIN, _l("Reconciliation")))
def reconciliation_runs(staff: Caller) -> str:
    """The latest runs; a button to start one."""
    return render_template(
        "consoles/admin/runs.html",
        runs=reconciliation.recent_runs(staff),
        status_names=RUN_STATUS_NAMES,
    )


@console.page("/admin/reconciliation/start", roles=ADMINS, methods=("POST",))
def start_reconciliation(staff: Caller) -> Response:
    attempt(
        lambda: reconciliation.request_reconciliation(staff),
        _l("Started: a worker checks every account against its ledger."),
    )
    return back("console.reconciliation_runs")


@console.page("/admin/reconciliation/<run_id>", roles=ADMINS)
def reconciliation_run(staff: Caller, run_id: str) -> str:
    """One run: its figures and every drift it found (and repaired)."""
    return render_template(
        "consoles/admin/run.html",
        run=reconciliation.run_for(staff, run_id),
        status_names=RUN_STATUS_NAMES,
    )


@console.page("/admin/dead-letters", roles=ADMINS, nav=(ADMIN, _l("Dead letters")))
def dead_letters(staff: Caller) -> str:
    """Messages waiting for a replay (or, `?replayed=1`, those replayed)."""
    replayed = request.args.get("replayed") == "1"
    page = paginate(backbone.dead_letters(staff, replayed), request.args.get("cursor"), 50)
    return render_template("consoles/admin/dead_letters.html", page=page, replayed=replayed)


@console.page("/admin/dead-letters/<dead_letter_id>/replay", roles=ADMINS, methods=("POST",))
def replay(staff: Caller, dead_letter_id: str) -> Response:
    attempt(
        lambda: backbone.replay_dead_letter(staff, dead_letter_id),
        _l("Sent again: its handler runs on a worker."),
    )
    return back("console.dead_letters")
