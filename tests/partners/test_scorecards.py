"""Monthly scorecards: a small month built by the test gives exactly the expected figures,
counted in the city's time zone at the month's edges; reading one is a single lookup."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from accounts.models import User, Vehicle
from accounts.ownership import add_vehicle, verify_vehicle
from community import clubs, moderation, posts, reports
from community.models import Comment, Post, Report
from events import services
from events.feedback import give_feedback
from events.models import EventFeedback, FollowUp
from loyalty.models import LedgerEntry
from loyalty.rewards import redeem
from partners import budget, scorecards
from partners.models import CityPartnerScorecard
from tests.events.conftest import as_caller, many_owners
from tests.loyalty.conftest import earn, make_reward
from tests.partners.conftest import move_event, run_event
from tests.support import count_commands, make_person

API = "/api/v1"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*moment: int) -> datetime:
    """A time in Shenzhen, in UTC as stored."""
    return datetime(*moment, tzinfo=SHANGHAI).astimezone(UTC)


def verified(person, vin: str, leader, at: datetime) -> None:
    vehicle = add_vehicle(person.user, vin, "smart #1")
    verify_vehicle(as_caller(leader), str(vehicle.pk))
    Vehicle.objects(pk=vehicle.pk).update_one(set__reviewed_at=at)


def build_october(leader, make_partner, admin):
    """October 2026 in Shenzhen, and what lies just outside it on either side."""
    partner = make_partner()
    budget.allocate(as_caller(admin), str(partner.pk), "2026-10", 1000)
    o1, o2, o3, o4 = many_owners(4)
    User.objects(pk=o1.user.pk).update_one(set__referred_by=o4.user.pk)
    verified(o1, "LSJA24U30MS000001", leader, local(2026, 10, 1, 0, 30))  # October
    verified(o2, "LSJA24U30MS000002", leader, local(2026, 9, 30, 23, 30))  # September

    # Held on the month's last evening; checked in at 23:30 local (15:30 UTC).
    last_evening = run_event(leader, [o1, o2], [o3], points_reward=0)
    for person, score, recommend in ((o1, 5, 10), (o2, 2, 5)):
        give_feedback(as_caller(person), str(last_evening.pk), score, recommend)
    services.complete_event(as_caller(leader), str(last_evening.pk))
    move_event(last_evening, local(2026, 10, 31, 22, 0), attended_at=local(2026, 10, 31, 23, 30))
    EventFeedback.objects.update(set__created_at=local(2026, 10, 31, 23, 50))
    FollowUp.objects.update(set__created_at=local(2026, 10, 31, 23, 50))

    # Just after midnight on November 1st local: still October 31st in UTC.
    after_midnight = run_event(leader, [o3], points_reward=0)
    services.complete_event(as_caller(leader), str(after_midnight.pk))
    move_event(after_midnight, local(2026, 11, 1, 0, 30), attended_at=local(2026, 11, 1, 0, 40))

    earn(o4.user.pk, 1000, now=local(2026, 10, 15, 12, 0))
    earn(o2.user.pk, 50, now=local(2026, 11, 1, 0, 10))
    earn(o3.user.pk, 30, now=local(2026, 9, 30, 23, 59))
    reward = make_reward(cost=100)
    redeem(o4.user, str(reward.pk), now=local(2026, 10, 20, 12, 0))
    assert LedgerEntry.objects(kind="redeem").count() == 1

    # The community: a post and a comment in October, a post just after it; a report on
    # the October post resolved six and a half hours after it was filed.
    club = clubs.create_club(as_caller(leader), name="Shenzhen owners", kind="city", city_code="SZ")
    for person in (o2, o3):
        clubs.join(as_caller(person), str(club.pk))
    post = posts.publish_post(as_caller(o3), str(club.pk), "Sunset drive", [])
    comment = posts.add_comment(as_caller(o2), str(post.pk), "Beautiful")
    late = posts.publish_post(as_caller(o2), str(club.pk), "November already", [])
    report, _ = reports.file_report(as_caller(o4), "post", str(post.pk), "Off topic")
    ambassador = make_person("SZ", role="ambassador")
    moderation.take_action(as_caller(ambassador), "post", str(post.pk), "warn", "Checking")
    Post.objects(pk=post.pk).update_one(set__published_at=local(2026, 10, 10, 12, 0))
    Comment.objects(pk=comment.pk).update_one(set__published_at=local(2026, 10, 10, 13, 0))
    Post.objects(pk=late.pk).update_one(set__published_at=local(2026, 11, 1, 0, 5))
    Report.objects(pk=report.pk).update_one(
        set__created_at=local(2026, 10, 11, 8, 0), set__resolved_at=local(2026, 10, 11, 14, 30)
    )
    return partner


OCTOBER = {
    "new_verified_owners": 1,
    "referrals_completed": 1,
    "active_owners": 4,
    "events_held": 1,
    "registrations": 3,
    "attended": 2,
    "no_shows": 1,
    "attendance_rate": 0.6667,
    "no_show_rate": 0.3333,
    "feedback_count": 2,
    "average_rating": 3.5,
    "nps": 0.0,
    "follow_ups_open": 1,
    "follow_ups_overdue": 1,
    "points_issued": 1000,
    "points_issued_by_source": {"vehicle.verified": 1000},
    "budget_allocated": 1000,
    "budget_used": 0,
    "posts": 1,
    "comments": 1,
    "reports_resolved": 1,
    "median_hours_to_resolve": 6.5,
}


def test_a_month_in_the_city_time_zone(client, leader, admin, make_partner):
    partner = build_october(leader, make_partner, admin)
    answer = client.get(
        f"{API}/city-partners/{partner.pk}/scorecard?month=2026-10", headers=leader.headers
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["figures"] == OCTOBER
    november = scorecards.compute(partner, "2026-11")
    # o3 attended after midnight; o2 posted just after it.
    assert (november["events_held"], november["attended"], november["active_owners"]) == (1, 1, 2)
    assert (november["new_verified_owners"], november["points_issued"]) == (0, 50)
    assert (november["posts"], november["comments"], november["reports_resolved"]) == (1, 0, 0)
    assert november["feedback_count"] == 0


def test_only_visible_content_counts(client, leader, admin, make_partner):
    """Issue 20, finding 3: posting and deleting lifted `posts` and `active_owners`."""
    partner = make_partner()
    o1, o2 = many_owners(2)
    club = clubs.create_club(as_caller(leader), name="Shenzhen owners", kind="city", city_code="SZ")
    for person in (o1, o2):
        clubs.join(as_caller(person), str(club.pk))
    kept = posts.publish_post(as_caller(o1), str(club.pk), "Sunset drive", [])
    gone = posts.publish_post(as_caller(o2), str(club.pk), "Here and gone", [])
    assert client.delete(f"{API}/posts/{gone.pk}", headers=o2.headers).status_code == 204
    hidden = posts.add_comment(as_caller(o2), str(kept.pk), "Hidden later")
    Comment.objects(pk=hidden.pk).update_one(set__status="hidden")
    month = datetime.now(SHANGHAI).strftime("%Y-%m")
    answer = client.get(
        f"{API}/city-partners/{partner.pk}/scorecard?month={month}", headers=leader.headers
    )
    figures = answer.json["figures"]
    assert (figures["posts"], figures["comments"], figures["active_owners"]) == (1, 0, 1)


def test_reading_a_scorecard_is_one_lookup_and_csv_is_the_same_table(
    client, leader, admin, make_partner
):
    partner = build_october(leader, make_partner, admin)
    url = f"{API}/city-partners/{partner.pk}/scorecard?month=2026-10"
    first = client.get(url, headers=admin.headers)
    with count_commands() as commands:
        again = client.get(url, headers=admin.headers)
    assert again.json == first.json
    # The caller, the partner, the snapshot (its city's time zone, which says the current
    # month, is kept per process).
    assert commands.names == ["find users", "find city_partners", "find city_partner_scorecards"]
    # CSV has a path of its own; the JSON path answers JSON whatever the client accepts.
    csv_url = url.replace("/scorecard?", "/scorecard.csv?")
    as_csv = client.get(csv_url, headers=admin.headers)
    assert as_csv.status_code == 200 and as_csv.mimetype == "text/csv"
    assert client.get(url, headers={**admin.headers, "Accept": "text/csv"}).json == first.json
    [row] = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert (row["name"], row["month"], row["active_owners"]) == ("SZ Motors", "2026-10", "4")
    assert (row["attendance_rate"], row["points_issued:vehicle.verified"]) == ("0.6667", "1000")
    assert row["median_hours_to_resolve"] == "6.5"


def test_admins_rank_partners_by_any_figure(client, leader, admin, make_partner):
    shenzhen = build_october(leader, make_partner, admin)
    guangzhou = make_partner("GZ", name="=HYPERLINK(1)")
    url = f"{API}/admin/scorecards?month=2026-10"
    by_active = client.get(f"{url}&sort=active_owners&order=desc", headers=admin.headers)
    assert [item["city_partner_id"] for item in by_active.json["items"]] == [
        str(shenzhen.pk),
        str(guangzhou.pk),
    ]
    ascending = client.get(f"{url}&sort=active_owners&order=asc", headers=admin.headers)
    assert [item["city_code"] for item in ascending.json["items"]] == ["GZ", "SZ"]
    # Without a rate (no events), Guangzhou ranks last either way.
    by_rate = client.get(f"{url}&sort=attendance_rate&order=asc", headers=admin.headers)
    assert [item["city_code"] for item in by_rate.json["items"]] == ["SZ", "GZ"]
    as_csv = client.get(
        f"{API}/admin/scorecards.csv?month=2026-10&sort=active_owners", headers=admin.headers
    )
    assert as_csv.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(as_csv.get_data(as_text=True))))
    assert [row["city_code"] for row in rows] == ["SZ", "GZ"]
    # A name a spreadsheet would run as a formula is written as text.
    assert rows[1]["name"] == "'=HYPERLINK(1)"
    bad_queries = (
        "month=2026-10&sort=nope",
        "month=2026-10&sort=-posts",
        "month=2026-10&order=up",
        "month=2026-1",
        "month=2999-01",
        "sort=posts",
    )
    for bad in bad_queries:
        refused = client.get(f"{API}/admin/scorecards?{bad}", headers=admin.headers)
        assert refused.status_code == 422, bad
    assert client.get(url, headers=leader.headers).status_code == 403


def test_months_outside_the_contract_are_refused_and_store_nothing(client, admin, make_partner):
    # An ended contract: its leaders have lost the city, admins still read its months.
    partner = make_partner(contract_start=date(2026, 3, 15), contract_end=date(2026, 9, 30))
    url = f"{API}/city-partners/{partner.pk}/scorecard"
    for month in ("2026-02", "2026-10", "2001-01"):
        for path in (url, f"{url}.csv"):
            refused = client.get(f"{path}?month={month}", headers=admin.headers)
            assert refused.status_code == 422, (path, month)
            assert refused.json["error"] == "month_outside_contract"
    # Year 0 or 1 is no month a contract can hold: refused by the schema, never a 500.
    for month in ("0000-01", "0001-01", "2026-10\n", "２０２６-１０"):
        refused = client.get(url, query_string={"month": month}, headers=admin.headers)
        assert refused.status_code == 422, month
        assert refused.json["error"] == "validation_failed"
    ranked = client.get(f"{API}/admin/scorecards?month=0001-01", headers=admin.headers)
    assert ranked.status_code == 422
    assert CityPartnerScorecard.objects(city_partner_id=partner.pk).count() == 0
    # Without a month, a contract that ended shows its last month.
    ended = client.get(url, headers=admin.headers)
    assert ended.status_code == 200 and ended.json["month"] == "2026-09"
    assert CityPartnerScorecard.objects(city_partner_id=partner.pk).count() == 1


def test_leaders_see_only_their_own_partner(client, leader, make_partner):
    partner = make_partner()
    elsewhere = make_person("GZ", role="circle_leader")
    make_partner("GZ")
    url = f"{API}/city-partners/{partner.pk}/scorecard"
    assert client.get(url, headers=leader.headers).status_code == 200
    assert client.get(url, headers=elsewhere.headers).status_code == 404


def test_the_nightly_job_computes_this_and_last_month_and_reads_are_bounded(
    client, leader, make_partner
):
    partner = make_partner()
    assert scorecards.compute_all() == 2
    this_month = scorecards.current_month("SZ")
    stored = CityPartnerScorecard.objects(city_partner_id=partner.pk, month=this_month).first()
    url = f"{API}/city-partners/{partner.pk}/scorecard?month={this_month}"
    client.get(url, headers=leader.headers)
    client.get(url, headers=leader.headers)
    assert stored.reload().computed_at == stored.computed_at
