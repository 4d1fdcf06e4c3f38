"""The demo world gives each city a partner with a budget, and some feedback."""

from __future__ import annotations

from accounts.seed import DEMO_CITIES
from events.models import EventFeedback, FollowUp
from partners import budget
from partners.models import CityPartner, CityPartnerLeader


def test_seed_demo_contracts_a_partner_per_city_with_a_budget_and_feedback(app):
    for _ in range(2):  # a second run adds nothing
        result = app.test_cli_runner().invoke(args=["seed-demo"])
        assert result.exit_code == 0, result.output
    partners = list(CityPartner.objects)
    assert sorted(partner.city_code for partner in partners) == sorted(c for c, _, _ in DEMO_CITIES)
    for partner in partners:
        assert CityPartnerLeader.objects(city_partner_id=partner.pk).count() == 1
        month = budget.month_of(partner.created_at, partner.city_code)
        figures = budget.summary(partner.pk, month)
        assert figures["allocated"] == 20_000 and 0 < figures["left"] < 20_000
    assert EventFeedback.objects.count() == 2 * len(DEMO_CITIES)
    assert FollowUp.objects(status="open").count() == len(DEMO_CITIES)
    assert budget.reconcile() == []
