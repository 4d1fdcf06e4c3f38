"""Earning rules, caps and awards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.db import transaction
from app.errors import NotFound
from loyalty import (
    rules,
)
from tests.loyalty.conftest import T0, assert_invariants, earn
from tests.support import make_city, make_person


def test_daily_cap_counts_in_the_owner_city_time_zone(app):
    make_city("SZ", timezone="Asia/Shanghai")
    owner = make_person("SZ")
    # 15:30 UTC is 23:30 in Shanghai; 16:30 UTC is already the next day there.
    evening = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
    awarded = [
        earn(owner.id, None, now=evening + timedelta(minutes=i), rule="post.published")
        for i in range(4)
    ]
    assert [entry is not None for entry in awarded] == [True, True, True, False]
    assert earn(owner.id, None, now=evening + timedelta(hours=1), rule="post.published")
    assert assert_invariants(owner.id) == 20


def test_inactive_rule_earns_nothing(app, admin):
    owner = make_person("SZ")
    rules.update_rule(admin.caller, "comment.created", {"active": False})
    assert earn(owner.id, None, rule="comment.created") is None
    with pytest.raises(NotFound):
        rules.update_rule(admin.caller, "no.such.rule", {"points": 1})


def test_default_rules_are_seeded_once_and_keep_admin_changes(app, admin):
    rules.update_rule(admin.caller, "post.published", {"points": 7})
    rules.ensure_default_rules()
    by_code = {rule.code: rule for rule in rules.list_rules(admin.caller)}
    assert set(by_code) == set(rules.DEFAULT_RULES)
    assert by_code["post.published"].points == 7 and by_code["post.published"].caps == {"day": 3}
    assert by_code["vehicle.verified"].points == 500


def test_award_in_a_transaction_for_an_erased_owner_earns_nothing(app):
    owner = make_person("SZ")
    from accounts.models import User

    User.objects(pk=owner.user.pk).update_one(set__erased_at=T0)
    assert (
        transaction(lambda s: rules.award(s, owner.id, "vehicle.verified", key="x", source={}))
        is None
    )
