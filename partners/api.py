"""City partners over HTTP: thin views over `partners.services`, `.budget` and `.scorecards`."""

from __future__ import annotations

from typing import Any

from flask import Response
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
# Every CSV has a path of its own (`.../scorecard.csv`) rather than an `Accept` switch on
# the JSON one: a generated client parses a path's answer by its one documented type.
CSV = "text/csv"
_CSV_DOC = {"type": "string", "description": "The same table as CSV, a row per scorecard"}


def _csv(rows: list[dict[str, Any]], filename: str) -> Response:
    response = Response(scorecards.as_csv(rows), mimetype=CSV)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.csv"'
    return response


@blp.route("/admin/city-partners")
class CityPartners(MethodView):
    @idempotent
    @blp.arguments(CityPartnerCreateSchema)
    @blp.response(201, CityPartnerSchema)
    @blp.refuses(Forbidden, errors.CityTaken, errors.InvalidContract, UnknownCity)
    def post(self, data):
        """Contract a city partner (admin)

        A city has at most one partner on any day: a contract overlapping another partner's
        in the city is 409 `city_taken`. Contract days are dates in the city's time zone,
        both included. A partner whose contract begins takes over the city's circle leaders
        who work for no one.
        """
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
        """Add points to a partner's monthly budget (admin)

        The month must be within the partner's contract (422 `month_outside_contract`).
        """
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
    @blp.refuses(errors.FutureMonth, errors.MonthOutsideContract)
    def get(self, args, partner_id):
        """A partner's monthly scorecard (its leaders, admin)

        Only a month of the partner's contract (422 `month_outside_contract`), not a month
        still to come (422 `future_month`); without `month`, the current one, or the
        contract's last once it ended. Computed nightly; the current month is refreshed on
        reading at most every `SCORECARD_REFRESH_SECONDS`. A leader sees only their own
        partner's (404 for another's).
        """
        return scorecards.scorecard(caller(), partner_id, args.get("month"))


@blp.route("/city-partners/<partner_id>/scorecard.csv")
class ScorecardCsv(MethodView):
    @blp.arguments(MonthArgsSchema, location="query")
    @blp.response(200, _CSV_DOC, content_type=CSV)
    @blp.refuses(errors.FutureMonth, errors.MonthOutsideContract)
    def get(self, args, partner_id):
        """A partner's monthly scorecard as CSV (its leaders, admin)"""
        card = scorecards.scorecard(caller(), partner_id, args.get("month"))
        return _csv([card], f"scorecard-{card['city_code']}-{card['month']}")


@blp.route("/admin/scorecards")
class Scorecards(MethodView):
    @blp.arguments(RankingArgsSchema, location="query")
    @blp.response(200, RankingSchema)
    @blp.refuses(Forbidden, errors.FutureMonth)
    def get(self, args):
        """Every partner's scorecard of a month, ranked by a figure (admin)

        Every partner under contract that month, ranked by `sort` (a figure) in `order`
        (`desc`: the highest first); partners without a value for the figure (a rate with no
        events) come last either way.
        """
        return scorecards.ranked(caller(), args["month"], args["sort"], args["order"])


@blp.route("/admin/scorecards.csv")
class ScorecardsCsv(MethodView):
    @blp.arguments(RankingArgsSchema, location="query")
    @blp.response(200, _CSV_DOC, content_type=CSV)
    @blp.refuses(Forbidden, errors.FutureMonth)
    def get(self, args):
        """Every partner's scorecard of a month, ranked, as CSV (admin)"""
        ranking = scorecards.ranked(caller(), args["month"], args["sort"], args["order"])
        return _csv(ranking["items"], f"scorecards-{ranking['month']}")
