"""Demo data for city partners: one partner per demo city, under contract from the start of
this month for two years, with a points budget for this month and the next."""

from __future__ import annotations

from datetime import date, timedelta

from accounts.seed import DEMO_CITIES
from partners import budget, services
from partners.models import CityPartner

DEMO_BUDGET = 20_000


def seed_partners() -> list[str]:
    lines = []
    for code, name, _ in DEMO_CITIES:
        if CityPartner.objects(city_code=code).first():
            continue
        first = date.fromisoformat(services.local_today(code)[:7] + "-01")
        partner = services.contract_partner(
            name=f"{name} Auto Partners",
            contact=f"partner.{code.lower()}@demo.example",
            city_code=code,
            contract_start=first,
            contract_end=first.replace(year=first.year + 2) - timedelta(days=1),
        )
        following = (first + timedelta(days=32)).strftime("%Y-%m")
        for month in (first.strftime("%Y-%m"), following):
            budget.add_allocation(partner, month, DEMO_BUDGET)
        lines.append(f"city partner {code}: {partner.name}, {DEMO_BUDGET} points a month")
    return lines
