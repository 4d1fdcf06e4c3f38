"""City partners over HTTP: thin views over `partners.services`, `.budget` and `.scorecards`."""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask.views import MethodView

from accounts.errors import UnknownCity
from app.auth import caller
from app.errors import Forbidden
from app.idempotency import idempotent
from app.web import Blueprint, page_of
from partners import budget, errors, scorecards, services
from partners.schemas import (
    AllocationSchema,
    BudgetArgsSchema,
    BudgetFiguresSchema,
    BudgetSchema,
    CityPartnerCreateSchema,
    CityPartnerDetailsSchema,
    CityPartnerListArgsSchema,
    CityPartnerSchema,
    CityPartnerUpdateSchema,
    MonthArgsSchema,
    RankingArgsSchema,
    RankingSchema,
    ScorecardSchema,
)

blp = Blueprint(
    "city_partners",
    __name__,
    description="City partners: the one operator of a city, its budget and scorecards",
)
blueprints = (blp,)
CSV = "text/csv"
_CSV_DOC = {"type": "string", "description": "The same table as CSV, a row per scorecard"}


def _wants_csv() -> bool:
    return request.accept_mimetypes.best_match(["application/json", CSV]) == CSV


def _csv(rows: list[dict[str, Any]], filename: str) -> Response:
    response = Response(scorecards.as_csv(rows), mimetype=CSV)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


@blp.route("/admin/city-partners")
class CityPartners(MethodView):
    @blp.arguments(CityPartnerCreateSchema)
    @blp.response(201, CityPartnerSchema)
    @blp.refuses(Forbidden, errors.CityTaken, errors.InvalidContract, UnknownCity)
    def post(self, data):
        """Contract a city partner (admin)"""
        return services.describe(services.create_partner(caller(), **data))

    @blp.arguments(CityPartnerListArgsSchema, location="query")
    @blp.response(200, page_of(CityPartnerSchema))
    @blp.refuses(Forbidden)
    def get(self, args):
        """City partners, newest first (admin)"""
        caller().require_admin()
        page = services.list_partners(args.get("city"), args["cursor"], args["limit"])
        page["items"] = [services.describe(partner) for partner in page["items"]]
        return page


@blp.route("/admin/city-partners/<partner_id>")
class CityPartnerAdmin(MethodView):
    @blp.arguments(CityPartnerUpdateSchema)
    @blp.response(200, CityPartnerSchema)
    @blp.refuses(Forbidden, errors.CityTaken, errors.InvalidContract)
    def patch(self, changes, partner_id):
        """Change a partner's contact or contract end (admin)"""
        return services.describe(services.update_partner(caller(), partner_id, changes))


@blp.route("/city-partners/<partner_id>")
class CityPartnerItem(MethodView):
    @blp.response(200, CityPartnerDetailsSchema)
    def get(self, partner_id):
        """A partner with its leaders and this month's budget (its leaders, admin)"""
        return services.partner_details(services.partner_for(caller(), partner_id))


@blp.route("/admin/city-partners/<partner_id>/budget-allocations")
class BudgetAllocations(MethodView):
    @idempotent
    @blp.arguments(AllocationSchema)
    @blp.response(201, BudgetFiguresSchema)
    @blp.refuses(Forbidden, errors.MonthOutsideContract)
    def post(self, data, partner_id):
        """Add points to a partner's monthly budget (admin)"""
        return budget.allocate(caller(), partner_id, data["month"], data["points"])


@blp.route("/city-partners/<partner_id>/budget")
class Budget(MethodView):
    @blp.arguments(BudgetArgsSchema, location="query")
    @blp.response(200, BudgetSchema)
    def get(self, args, partner_id):
        """A month's budget figures and its entries, newest first (its leaders, admin)"""
        partner = services.partner_for(caller(), partner_id)
        month = args.get("month") or scorecards.current_month(partner.city_code)
        return budget.budget_of(partner, month, args["cursor"], args["limit"])


@blp.route("/city-partners/<partner_id>/scorecard")
class Scorecard(MethodView):
    @blp.arguments(MonthArgsSchema, location="query")
    @blp.response(200, ScorecardSchema)
    @blp.alt_response(200, schema=_CSV_DOC, content_type=CSV, success=True)
    @blp.refuses(errors.FutureMonth)
    def get(self, args, partner_id):
        """A partner's monthly scorecard; `Accept: text/csv` for CSV (its leaders, admin)"""
        card = scorecards.scorecard(caller(), partner_id, args.get("month"))
        if _wants_csv():
            return _csv([card], f"scorecard-{card['city_code']}-{card['month']}")
        return card


@blp.route("/admin/scorecards")
class Scorecards(MethodView):
    @blp.arguments(RankingArgsSchema, location="query")
    @blp.response(200, RankingSchema)
    @blp.alt_response(200, schema=_CSV_DOC, content_type=CSV, success=True)
    @blp.refuses(Forbidden, errors.FutureMonth)
    def get(self, args):
        """Every partner's scorecard of a month, ranked by a figure (admin)"""
        ranking = scorecards.ranked(caller(), args["month"], args["sort"])
        if _wants_csv():
            return _csv(ranking["items"], f"scorecards-{ranking['month']}")
        return ranking
