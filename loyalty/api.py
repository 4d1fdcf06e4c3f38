"""Points, rewards, redemptions, earning rules and reconciliation over HTTP (ecosystem
partners: `partner_api.py`). Views validate, call one service function and return a
document for their response schema."""

from __future__ import annotations

from flask import request
from flask.views import MethodView

from accounts.errors import UnknownCity
from app.auth import caller
from app.db import get_or_404
from app.errors import Forbidden, NotFound
from app.idempotency import HEADER, idempotent
from app.web import Blueprint, PageArgsSchema, page_of, paginate
from loyalty import (
    adjustments,
    balances,
    errors,
    reconciliation,
    rules,
)
from loyalty import rewards as redemptions  # `rewards` is the blueprint
from loyalty.models import ReconciliationRun, Redemption
from loyalty.partner_api import ecosystem
from loyalty.schemas import (
    AdjustmentEntrySchema,
    AdjustmentSchema,
    EarningRuleSchema,
    EarningRuleUpdateSchema,
    LedgerEntrySchema,
    PointsSchema,
    ReconciliationRunSchema,
    RedemptionCreateSchema,
    RedemptionSchema,
    ReversalSchema,
    RewardArgsSchema,
    RewardCreateSchema,
    RewardOfferSchema,
    RewardSchema,
    RewardUpdateSchema,
    RunStartedSchema,
)

points = Blueprint("points", __name__, description="Points balance, ledger and administration")
rewards = Blueprint("rewards", __name__, description="Rewards catalog and redemptions")
blueprints = (points, rewards, ecosystem)


@points.route("/me/points")
class MyPoints(MethodView):
    @points.response(200, PointsSchema)
    def get(self):
        """The caller's balance, tier and points expiring soon"""
        return balances.points_summary(caller().id)


@points.route("/me/points/ledger")
class MyLedger(MethodView):
    @points.arguments(PageArgsSchema, location="query")
    @points.response(200, page_of(LedgerEntrySchema))
    def get(self, args):
        """The caller's ledger, newest first"""
        return paginate(balances.ledger_of(caller().id), args["cursor"], args["limit"])


@points.route("/admin/points/adjustments")
class Adjustments(MethodView):
    @idempotent
    @points.arguments(AdjustmentSchema)
    @points.response(201, AdjustmentEntrySchema)
    @points.refuses(Forbidden, NotFound, errors.OwnPoints, errors.InsufficientPoints)
    def post(self, data):
        """Credit or debit an owner's points, with a reason (admin)

        Audited. Nobody adjusts their own points (403 `own_points`); a debit may not take
        the balance below zero (409 `insufficient_points`).
        """
        return adjustments.adjust(caller(), **data, key=request.headers.get(HEADER))


@points.route("/admin/points/entries/<entry_id>/reversal")
class Reversal(MethodView):
    @idempotent
    @points.arguments(ReversalSchema)
    @points.response(201, AdjustmentEntrySchema)
    @points.refuses(
        Forbidden,
        errors.OwnPoints,
        errors.NotReversible,
        errors.AlreadyReversed,
        errors.InsufficientPoints,
    )
    def post(self, data, entry_id):
        """Reverse a mistaken earn or credit adjustment, once (admin)

        Only an earn or a positive adjustment (409 `not_reversible`), once (409
        `already_reversed`).
        """
        return adjustments.reverse_entry(
            caller(), entry_id, data["reason"], key=request.headers.get(HEADER)
        )


@points.route("/admin/earning-rules")
class EarningRules(MethodView):
    @points.response(200, page_of(EarningRuleSchema))
    @points.refuses(Forbidden)
    def get(self):
        """Earning rules, all on one page (admin)"""
        return {"items": rules.list_rules(caller()), "next_cursor": None}


@points.route("/admin/earning-rules/<code>")
class EarningRuleItem(MethodView):
    @points.arguments(EarningRuleUpdateSchema)
    @points.response(200, EarningRuleSchema)
    @points.refuses(Forbidden)
    def put(self, changes, code):
        """Change an earning rule's points, caps, activity or multiplier (admin)"""
        return rules.update_rule(caller(), code, changes)


@points.route("/admin/reconciliation/runs")
class ReconciliationRuns(MethodView):
    @idempotent
    @points.response(202, RunStartedSchema)
    @points.refuses(Forbidden)
    def post(self):
        """Start a reconciliation run on the workers (admin)"""
        return reconciliation.request_reconciliation(caller())


@points.route("/admin/reconciliation/runs/<run_id>")
class ReconciliationRunItem(MethodView):
    @points.response(200, ReconciliationRunSchema)
    @points.refuses(Forbidden)
    def get(self, run_id):
        """A reconciliation run and the drifts it found (admin)"""
        caller().require_admin()
        return get_or_404(ReconciliationRun, run_id)


@rewards.route("/rewards")
class Rewards(MethodView):
    @rewards.arguments(RewardArgsSchema, location="query")
    @rewards.response(200, page_of(RewardOfferSchema))
    def get(self, args):
        """Active rewards offered in the caller's city, each saying whether it is redeemable

        `redeemable: false` comes with `locked_reason`, the slug redeeming it would be
        refused with. Rewards above the caller's tier are left out unless
        `include_locked=true`. Points and the per-owner limit are not considered here.
        """
        return redemptions.catalogue(
            caller().user,
            args.get("city"),
            args["cursor"],
            args["limit"],
            include_locked=args["include_locked"],
        )


@rewards.route("/admin/rewards")
class AdminRewards(MethodView):
    @rewards.arguments(PageArgsSchema, location="query")
    @rewards.response(200, page_of(RewardSchema))
    @rewards.refuses(Forbidden)
    def get(self, args):
        """The whole catalogue, inactive rewards included, newest first (admin)"""
        return redemptions.all_rewards(caller(), args["cursor"], args["limit"])

    @idempotent
    @rewards.arguments(RewardCreateSchema)
    @rewards.response(201, RewardSchema)
    @rewards.refuses(Forbidden, UnknownCity)
    def post(self, data):
        """Add a reward to the catalog (admin)"""
        return redemptions.shown(redemptions.create_reward(caller(), data))


@rewards.route("/admin/rewards/<reward_id>")
class AdminRewardItem(MethodView):
    @rewards.arguments(RewardUpdateSchema)
    @rewards.response(200, RewardSchema)
    @rewards.refuses(Forbidden, UnknownCity)
    def patch(self, changes, reward_id):
        """Change a reward (admin)"""
        return redemptions.shown(redemptions.update_reward(caller(), reward_id, changes))


# Where these admin writes lived before every one moved under /admin: still answered.
class RewardCreationBeforeAdmin(AdminRewards):
    methods = {"POST"}


class RewardItemBeforeAdmin(AdminRewardItem):
    pass


rewards.add_url_rule(
    "/rewards", view_func=RewardCreationBeforeAdmin, deprecated_for="POST /admin/rewards"
)
rewards.add_url_rule(
    "/rewards/<reward_id>",
    view_func=RewardItemBeforeAdmin,
    deprecated_for="PATCH /admin/rewards/{reward_id}",
)


@rewards.route("/redemptions")
class Redemptions(MethodView):
    @idempotent(service=redemptions.redeem)
    @rewards.arguments(RedemptionCreateSchema)
    @rewards.response(201, RedemptionSchema, lean=True)
    @rewards.refuses(
        NotFound,
        errors.NotInCity,
        errors.CityTooRecent,
        errors.TierTooLow,
        errors.LimitReached,
        errors.OutOfStock,
        errors.InsufficientPoints,
        errors.DropOnly,
    )
    def post(self, data):
        """Redeem a reward: points and stock are debited at once

        Refused with 409 `insufficient_points`, `out_of_stock`, `limit_reached` (the
        reward's per-owner limit), `tier_too_low`, `not_in_city` (a reward limited to other
        cities) or `city_too_recent` (the owner moved to the city less than 30 days ago;
        `eligible_from` says when). Points are spent oldest-expiry first. The redemption is
        `pending` until handed over.
        """
        return redemptions.redeem(
            caller().user,
            data["reward_id"],
            data["quantity"],
            client_key=request.headers.get(HEADER),
        )


@rewards.route("/me/redemptions")
class MyRedemptions(MethodView):
    @rewards.arguments(PageArgsSchema, location="query")
    @rewards.response(200, page_of(RedemptionSchema))
    def get(self, args):
        """The caller's redemptions, newest first"""
        return paginate(Redemption.objects(user_id=caller().user.pk), args["cursor"], args["limit"])


@rewards.route("/redemptions/<redemption_id>")
class RedemptionItem(MethodView):
    @rewards.response(200, RedemptionSchema)
    def get(self, redemption_id):
        """One redemption (its owner, admin)"""
        return redemptions.redemption_for(caller(), redemption_id)


@rewards.route("/redemptions/<redemption_id>/fulfill")
class FulfilRedemption(MethodView):
    @rewards.response(200, RedemptionSchema)
    @rewards.refuses(errors.OwnRedemption, errors.RedemptionNotPending)
    def post(self, redemption_id):
        """Mark a redemption handed over (admin, circle leader of the pickup city)

        Nobody hands over their own redemption (403 `own_redemption`). 409 `not_pending`
        unless pending.
        """
        return redemptions.fulfil_redemption(caller(), redemption_id)


@rewards.route("/redemptions/<redemption_id>/cancel")
class CancelRedemption(MethodView):
    @rewards.response(200, RedemptionSchema)
    @rewards.refuses(errors.RedemptionNotPending)
    def post(self, redemption_id):
        """Cancel a pending redemption: points refunded once, stock restored

        Its owner while pending, or an admin (409 `not_pending` otherwise).
        """
        return redemptions.cancel_redemption(caller(), redemption_id)
