"""Ecosystem partners over HTTP: owners' pay codes, the partners' signed credits, debits,
reversals and statements, and admins' partner settings, statements, exceptions and settlements.
Views validate, call one service function and return a document for their response schema."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import Response, current_app, g, request
from flask.views import MethodView

from app.auth import caller
from app.db import widen_request_budget
from app.errors import Forbidden, RateLimited
from app.extensions import limiter
from app.idempotency import idempotent
from app.web import Blueprint, PageArgsSchema, header_parameters, page_of, paginate, refuses
from loyalty import (
    errors,
    partner_systems,
    partner_transactions,
    pay_codes,
    settlement,
    statement_exceptions,
    statements,
)
from loyalty.partner_schemas import (
    EcosystemPartnerSchema,
    ExceptionArgsSchema,
    MonthArgsSchema,
    PartnerDebitCreateSchema,
    PartnerReversalCreateSchema,
    PartnerTransactionSchema,
    PartnerUpdateSchema,
    PayCodeCreateSchema,
    PayCodeSchema,
    ResolutionSchema,
    SecretIssuedSchema,
    SecretRotationSchema,
    SettlementSchema,
    StatementCreateSchema,
    StatementExceptionSchema,
    StatementListItemSchema,
    StatementReceivedSchema,
    StatementSchema,
)
from loyalty.schemas import (
    PartnerCreatedSchema,
    PartnerCreateSchema,
    PartnerCreditCreateSchema,
    PartnerCreditSchema,
)

ecosystem = Blueprint(
    "ecosystem_partners",
    __name__,
    description="Ecosystem partners: points both ways (pay codes, debits, reversals,"
    " statements, settlements)",
)
blueprints = (ecosystem,)

CSV = "text/csv"

_SIGNATURE_HEADERS = [
    {
        "in": "header",
        "name": name,
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }
    for name, description in (
        ("X-Partner-Key", "The partner's API key"),
        ("X-Signature", "Hex HMAC-SHA256 of `<X-Timestamp>.<raw body>` with the partner's secret"),
        (
            "X-Timestamp",
            "Unix seconds or ISO 8601, signed with the body; refused when 5+ minutes off",
        ),
    )
]


def partner_signed(
    view: Callable[..., Any] | None = None,
    *,
    max_body: str | None = None,
    db_budget: str | None = None,
) -> Any:
    """Authenticate the partner before the body is even validated: an unsigned request
    learns nothing, not even which fields it got wrong. Documents the signature headers.
    `max_body` and `db_budget` name the settings that bound the body and the request's
    database work instead of `MAX_CONTENT_LENGTH` and `REQUEST_DB_BUDGET_MS`
    (`@partner_signed(max_body="STATEMENT_MAX_BYTES", db_budget="STATEMENT_DB_BUDGET_MS")`)."""
    if view is None:
        return lambda inner: partner_signed(inner, max_body=max_body, db_budget=db_budget)

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if max_body is not None:
            request.max_content_length = current_app.config[max_body]
        if db_budget is not None:
            widen_request_budget(current_app.config[db_budget])
        g.partner = partner_systems.authenticate_partner(
            request.headers.get("X-Partner-Key"),
            request.headers.get("X-Signature"),
            request.headers.get("X-Timestamp"),
            request.get_data(),
        )
        return view(*args, **kwargs)

    return refuses(errors.InvalidSignature)(header_parameters(*_SIGNATURE_HEADERS)(wrapper))


def transaction_document(record: dict[str, Any]) -> dict[str, Any]:
    """A partner's transaction as its API answers it."""
    return {**record, "id": record.get("_id"), "member_id": record["user_id"]}


# --- owners ----------------------------------------------------------------------------------


@ecosystem.route("/me/pay-codes")
class PayCodes(MethodView):
    @idempotent
    @ecosystem.arguments(PayCodeCreateSchema)
    @ecosystem.response(201, PayCodeSchema)
    @ecosystem.refuses(errors.UnknownPartner, RateLimited)
    @limiter.limit(
        lambda: current_app.config["RATELIMIT_PAY_CODES_PER_USER"],
        key_func=lambda: g.caller.id,
        scope="pay_codes",
    )
    def post(self, data):
        """A one-time code to pay with points at a partner: 2 minutes, used once"""
        return pay_codes.issue_pay_code(caller().user, data["max_points"], data.get("partner_id"))


# --- partner systems (signed) -------------------------------------------------------------------

_PAY_CODE_REFUSALS = {
    refusal.error for refusal in (errors.InvalidPayCode, errors.PayCodeUsed, errors.PayCodeExpired)
}


def _refused_pay_code(response: Response) -> bool:
    body = response.get_json(silent=True) or {}
    return isinstance(body, dict) and body.get("error") in _PAY_CODE_REFUSALS


@ecosystem.route("/partner/points/debits")
class PartnerDebits(MethodView):
    @ecosystem.public  # no account: the partner signs its request (`partner_signed`)
    @limiter.limit(
        lambda: current_app.config["RATELIMIT_PAY_CODE_FAILURES_PER_PARTNER"],
        key_func=lambda: request.headers.get("X-Partner-Key", ""),
        scope="pay_code_failures",
        deduct_when=_refused_pay_code,
    )
    @partner_signed
    @ecosystem.arguments(PartnerDebitCreateSchema)
    @ecosystem.response(201, PartnerTransactionSchema)
    @ecosystem.alt_response(
        200,
        schema=PartnerTransactionSchema,
        description="A replayed `partner_txn_id`: the first result",
    )
    @ecosystem.refuses(
        errors.InvalidPayCode,
        errors.PayCodeUsed,
        errors.PayCodeExpired,
        errors.OverPayCodeMax,
        errors.OverCap,
        errors.InsufficientPoints,
        errors.PartnerTxnReused,
        errors.DailyCapReached,
        RateLimited,
    )
    def post(self, data):
        """Debit an owner who showed a pay code (partner systems, HMAC-signed)"""
        data["pay_code"] = pay_codes.code_of(data["pay_code"])
        record, created = partner_transactions.debit_with_pay_code(g.partner, **data)
        return transaction_document(record), 201 if created else 200


@ecosystem.route("/partner/points/reversals")
class PartnerReversals(MethodView):
    @ecosystem.public
    @partner_signed
    @ecosystem.arguments(PartnerReversalCreateSchema)
    @ecosystem.response(201, PartnerTransactionSchema)
    @ecosystem.alt_response(
        200,
        schema=PartnerTransactionSchema,
        description="A replayed `reversal_txn_id`: the first result",
    )
    @ecosystem.refuses(
        errors.UnknownPartnerTxn,
        errors.NotReversible,
        errors.OverReversal,
        errors.InsufficientPoints,
        errors.PartnerTxnReused,
    )
    def post(self, data):
        """Reverse all or part of a credit or debit (partner systems, HMAC-signed)"""
        record, created = partner_transactions.reverse_from_partner(g.partner, **data)
        return transaction_document(record), 201 if created else 200


@ecosystem.route("/partner/statements")
class PartnerStatements(MethodView):
    @ecosystem.public
    @partner_signed(max_body="STATEMENT_MAX_BYTES", db_budget="STATEMENT_DB_BUDGET_MS")
    @ecosystem.arguments(StatementCreateSchema)
    @ecosystem.response(202, StatementReceivedSchema)
    @ecosystem.refuses(errors.DayNotOver)
    def post(self, data):
        """Send a business day's statement; it is matched on the workers (partner systems,
        HMAC-signed)"""
        return statements.receive_statement(
            g.partner,
            day=data.pop("date"),
            body=request.get_data(),
            **data,
        )


# --- admins ------------------------------------------------------------------------------------


@ecosystem.route("/admin/partners")
class EcosystemPartners(MethodView):
    @idempotent
    @ecosystem.arguments(PartnerCreateSchema)
    @ecosystem.response(201, PartnerCreatedSchema)
    @ecosystem.refuses(Forbidden)
    def post(self, data):
        """Register a partner system; its secret is shown only here (admin)"""
        partner, secret = partner_systems.create_partner(caller(), **data)
        return {
            "id": partner.pk,
            "name": partner.name,
            "key": partner.key,
            "secret": secret,
            "max_points_per_txn": partner.max_points_per_txn,
        }

    @ecosystem.arguments(PageArgsSchema, location="query")
    @ecosystem.response(200, page_of(EcosystemPartnerSchema))
    @ecosystem.refuses(Forbidden)
    def get(self, args):
        """Ecosystem partners, newest first (admin)"""
        return paginate(partner_systems.all_partners(caller()), args["cursor"], args["limit"])


@ecosystem.route("/partner/points/credits")
class PartnerCredits(MethodView):
    @ecosystem.public  # no account: the partner signs its request (`partner_signed`)
    @partner_signed
    @ecosystem.arguments(PartnerCreditCreateSchema)
    @ecosystem.response(201, PartnerCreditSchema)
    @ecosystem.alt_response(
        200, schema=PartnerCreditSchema, description="A replayed `partner_txn_id`: the first result"
    )
    @ecosystem.refuses(errors.PartnerTxnReused, errors.OverCap, errors.UnknownMember)
    def post(self, data):
        """Credit points to an owner (partner systems, HMAC-signed)"""
        credit, created = partner_transactions.credit_from_partner(g.partner, **data)
        return transaction_document(credit), 201 if created else 200


@ecosystem.route("/admin/partners/<ecosystem_partner_id>")
class EcosystemPartnerItem(MethodView):
    @ecosystem.response(200, EcosystemPartnerSchema)
    @ecosystem.refuses(Forbidden)
    def get(self, ecosystem_partner_id):
        """An ecosystem partner's settings (admin)"""
        return partner_systems.partner_for(caller(), ecosystem_partner_id)

    @ecosystem.arguments(PartnerUpdateSchema)
    @ecosystem.response(200, EcosystemPartnerSchema)
    @ecosystem.refuses(Forbidden)
    def patch(self, changes, ecosystem_partner_id):
        """Change a partner's caps, business day, prices or activity (admin)"""
        return partner_systems.update_partner(caller(), ecosystem_partner_id, changes)


@ecosystem.route("/admin/partners/<ecosystem_partner_id>/secrets")
class PartnerSecrets(MethodView):
    @idempotent
    @ecosystem.arguments(SecretRotationSchema)
    @ecosystem.response(201, SecretIssuedSchema)
    @ecosystem.refuses(Forbidden)
    def post(self, data, ecosystem_partner_id):
        """Rotate a partner's signing secret; the previous one signs for `overlap_hours`
        (admin)"""
        partner, secret = partner_systems.rotate_secret(
            caller(), ecosystem_partner_id, timedelta(hours=data["overlap_hours"])
        )
        return {
            "id": partner.pk,
            "key": partner.key,
            "secret": secret,
            "previous_secret_until": partner.previous_secret_until,
        }


@ecosystem.route("/admin/partners/<ecosystem_partner_id>/secrets/previous")
class PreviousSecret(MethodView):
    @ecosystem.response(204)
    @ecosystem.refuses(Forbidden)
    def delete(self, ecosystem_partner_id):
        """End a rotation: only the newest secret signs from now on (admin)"""
        partner_systems.retire_previous_secret(caller(), ecosystem_partner_id)


@ecosystem.route("/admin/partners/<ecosystem_partner_id>/statements")
class Statements(MethodView):
    @ecosystem.arguments(PageArgsSchema, location="query")
    @ecosystem.response(200, page_of(StatementListItemSchema))
    @ecosystem.refuses(Forbidden)
    def get(self, args, ecosystem_partner_id):
        """A partner's statements, latest day first (admin)"""
        queryset = statements.statements_of(caller(), ecosystem_partner_id)
        page = paginate(queryset, args["cursor"], args["limit"], ("-date", "id"))
        page["items"] = [item.to_mongo().to_dict() for item in page["items"]]
        return page


def _exceptions_page(
    statement: dict[str, Any], cursor: str | None, limit: int, **filters: str
) -> dict[str, Any]:
    page = paginate(statements.exceptions_of(statement).filter(**filters), cursor, limit)
    page["items"] = [
        {**document, "actions": statement_exceptions.actions_for(document)}
        for document in (item.to_mongo().to_dict() for item in page["items"])
    ]
    return page


@ecosystem.route("/admin/partners/<ecosystem_partner_id>/statements/<day>")
class StatementItem(MethodView):
    @ecosystem.response(200, StatementSchema)
    @ecosystem.refuses(Forbidden)
    def get(self, ecosystem_partner_id, day):
        """A day's statement: its matching, and the first page of its exceptions (admin)"""
        statement = statements.statement_for(caller(), ecosystem_partner_id, day)
        page = _exceptions_page(statement, None, 100)
        return {
            **statement,
            "exceptions": page["items"],
            "exceptions_next_cursor": page["next_cursor"],
        }


@ecosystem.route("/admin/partners/<ecosystem_partner_id>/statements/<day>/exceptions")
class StatementExceptions(MethodView):
    @ecosystem.arguments(ExceptionArgsSchema, location="query")
    @ecosystem.response(200, page_of(StatementExceptionSchema))
    @ecosystem.refuses(Forbidden)
    def get(self, args, ecosystem_partner_id, day):
        """A day's statement exceptions, by `status` and `kind` (admin)"""
        statement = statements.statement_for(caller(), ecosystem_partner_id, day)
        filters = {name: args[name] for name in ("status", "kind") if args.get(name)}
        return _exceptions_page(statement, args["cursor"], args["limit"], **filters)


@ecosystem.route("/admin/statement-exceptions/<exception_id>/resolution")
class ExceptionResolution(MethodView):
    @idempotent
    @ecosystem.arguments(ResolutionSchema)
    @ecosystem.response(200, StatementExceptionSchema)
    @ecosystem.refuses(
        Forbidden,
        errors.OwnPoints,
        errors.ResolutionNotApplicable,
        errors.ExceptionResolved,
        errors.ExceptionWithdrawn,
        errors.InsufficientPoints,
        errors.OverReversal,
        errors.UnknownMember,
        errors.UnknownPartnerTxn,
    )
    def post(self, data, exception_id):
        """Resolve a statement exception: accept theirs, keep ours or reverse ours, once
        however often sent (admin)"""
        return statement_exceptions.resolve_exception(caller(), exception_id, **data)


@ecosystem.route("/admin/partners/<ecosystem_partner_id>/settlement")
class Settlement(MethodView):
    @ecosystem.arguments(MonthArgsSchema, location="query")
    @ecosystem.response(200, SettlementSchema)
    @ecosystem.refuses(Forbidden)
    def get(self, args, ecosystem_partner_id):
        """A partner's month: points each way, money owed each way, open exceptions (admin)"""
        return settlement.settlement_of(caller(), ecosystem_partner_id, args["month"])


@ecosystem.route("/admin/partners/<ecosystem_partner_id>/settlement.csv")
class SettlementCsv(MethodView):
    @ecosystem.arguments(MonthArgsSchema, location="query")
    @ecosystem.response(
        200, {"type": "string", "description": "A row per day, then the month"}, content_type=CSV
    )
    @ecosystem.refuses(Forbidden)
    def get(self, args, ecosystem_partner_id):
        """A partner's month as CSV (admin)"""
        month = settlement.settlement_of(caller(), ecosystem_partner_id, args["month"])
        response = Response(settlement.as_csv(month), mimetype=CSV)
        response.headers["Content-Disposition"] = (
            f'attachment; filename="settlement-{month["partner_id"]}-{month["month"]}.csv"'
        )
        return response


@ecosystem.route("/admin/partners/<ecosystem_partner_id>/settlement/close")
class CloseSettlement(MethodView):
    @idempotent
    @ecosystem.arguments(MonthArgsSchema)
    @ecosystem.response(200, SettlementSchema)
    @ecosystem.refuses(Forbidden, errors.MonthNotOver, errors.MonthClosed)
    def post(self, data, ecosystem_partner_id):
        """Close a partner's month, once: later movements land in the next month (admin)"""
        return settlement.close_month(caller(), ecosystem_partner_id, data["month"])
