"""Command budgets of the consoles' pages (tests/support.py says how they count): each page a
leader opens, on a city with a partner, a budget, events with registrations and answers,
open follow-ups and vehicles waiting, opened by a signed-in leader in a warm process. Every
GET page of the console has a row; a page that needs more says why beside its budget."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.ownership import add_vehicle
from app.auth import load_caller
from app.clock import utcnow
from community import posts, reports
from events import feedback, registration, services, tickets
from events.models import Event
from tests.authz_table import CONSOLE_ACCESS
from tests.conftest import Worlds
from tests.consoles.support import cd_partner, page_within_budget, sign_in, sz_partner
from tests.events.conftest import many_owners, new_event
from tests.support import Person, make_person

# The caller's account is the first command of every page (its sessions, grants, ban).
PAGES: dict[str, int] = {
    # The caller (a redirect to their home).
    "/console/": 1,
    # The caller, the partners they work for (2), this month's budget, the published
    # events, the open follow-ups (which look up the caller's partners again: feedback's
    # own scope), the vehicle queue's count.
    "/console/leader": 8,
    # The caller, the targets with open reports (one aggregate), held posts and comments
    # (a count each), the caller's decisions they may still undo.
    "/console/ambassador": 5,
    # The caller, the latest reconciliation run and bulk credit, the desk's three counts,
    # the dead letters waiting.
    "/console/admin": 7,
    # The caller, the page of events (time zones are kept per process).
    "/console/events": 2,
    # The caller (the form's cities are the caller's grants).
    "/console/events/new": 1,
    # The caller, the event, its door counts (one aggregate), its conflicts.
    "/console/events/{event_id}": 4,
    "/console/events/{event_id}/edit": 2,
    # The caller, the event, its registrations, their owners' names and vehicles (2).
    "/console/events/{event_id}/registrations": 5,
    "/console/events/{event_id}/registrations.csv": 5,
    # The caller, the event (read twice: by the page, and by feedback's own check of who
    # may read it, with the event's partner and whether the caller works for it), the
    # answers' figures, the page of answers.
    "/console/events/{past_event_id}/feedback": 7,
    "/console/events/{event_id}/door": 3,
    # The caller, the event, its registrations, their owners (2), the partner's keys.
    "/console/events/{event_id}/door/kit": 6,
    "/console/events/{event_id}/door/counts": 3,
    # The caller, the queue's page, its owners' names.
    "/console/vehicles": 3,
    # The caller, the partners they work for, the page, its owners' names.
    "/console/follow-ups": 4,
    # The caller, their partners (2), the month's figures, the page of its entries.
    "/console/budget": 5,
    # The caller, their partners (2), the stored months, the current month refreshed as
    # the API's scorecard is.
    "/console/scorecard": 5,
    "/console/scorecard.csv": 4,
}
# Public, static, or forms posted: no page to budget.
NOT_PAGES = ("sign-in", "sign-out", "language", "sw.js", "static")


def build_busy_city() -> tuple[Person, dict[str, str]]:
    """SZ's leader, SZ run by a partner, with budget, an event of 12 registrations, a
    completed one with answers and follow-ups, and vehicles waiting."""
    leader = make_person("SZ", role="circle_leader")
    sz_partner(100_000)
    who = load_caller(leader.id)

    ids = {}
    attendees = []
    for name in ("event_id", "past_event_id"):
        event = new_event(who, timedelta(hours=1), capacity=40, points_reward=10)
        owners = many_owners(12)
        for owner in owners:
            registration.register(load_caller(owner.id), str(event.pk))
        for owner in owners[:6]:
            tickets.check_in(who, str(event.pk), user_id=owner.id)
        ids[name] = str(event.pk)
        attendees = owners[:6]
    past = ids["past_event_id"]
    now = utcnow()
    Event.objects(pk=past).update_one(
        set__starts_at=now - timedelta(hours=3), set__ends_at=now - timedelta(hours=1)
    )
    services.complete_event(who, past)
    for number, owner in enumerate(attendees):
        feedback.give_feedback(load_caller(owner.id), past, number % 5 + 1, number)
    for number, owner in enumerate(many_owners(5, verified_owner=True)):
        add_vehicle(owner.user, f"LSJW74U93MZ{number:06d}", "smart #1")
    return leader, ids


@pytest.fixture
def busy_city(worlds: Worlds) -> tuple[Person, dict[str, str]]:
    return worlds.restored(build_busy_city)


def test_every_console_page_has_a_budget():
    pages = {
        rule.split(" ", 1)[1].replace("<", "{").replace(">", "}")
        for rule in CONSOLE_ACCESS
        if rule.startswith("GET ") and not any(part in rule for part in NOT_PAGES)
    }
    budgeted = {
        path.replace("{past_event_id}", "{event_id}").split("?")[0]
        for path in (*PAGES, *DESK_PAGES, *ADMIN_PAGES)
    }
    assert pages == budgeted


@pytest.mark.parametrize("path", sorted(PAGES))
def test_a_page_within_its_budget(client, busy_city, path):
    leader, ids = busy_city
    admin_only = path in ("/console/admin", "/console/ambassador")
    person = leader
    if admin_only:
        person = make_person("SZ", role="admin")
    sign_in(client, person)
    status = 302 if path == "/console/" else 200
    page_within_budget(client, path.format(**ids), PAGES[path], status)


# The review desk, opened by an ambassador of SZ over a queue of held, hidden and reported
# posts, comments and accounts, with decisions made; the audit log by each filter.
DESK_PAGES: dict[str, int] = {
    # The caller, the open reports grouped by target, the held posts and comments, the
    # reported posts and comments, the items' records, their clubs, the accounts of
    # authors, reporters and claimers, their standings, their earlier decisions, the
    # points their content pays, the caller's decisions they may still undo.
    "/console/review": 13,
    # Posts only: the comments' two reads are left out; hidden ones: no held posts read.
    "/console/review?kind=post&reason=hidden": 10,
    # The caller, the target, its reports, the item's record, accounts, standings,
    # earlier decisions, content points, club, the decisions on it, their deciders' names,
    # the caller's recent decisions.
    "/console/review/{target_type}/{target_id}": 12,
    # The caller, the page of the log, the names in it.
    "/console/audit": 3,
    "/console/audit?actor={actor}": 3,
    "/console/audit?account={account}": 3,
    "/console/audit?target_type={target_type}&target_id={target_id}": 3,
}


def build_desk() -> tuple[Person, dict[str, str]]:
    """SZ's club with a held post, a post hidden by two reports, a reported comment and a
    reported account; the ambassador decided one item."""
    from community import clubs, moderation, words
    from tests.community.conftest import established, owner

    admin = load_caller(make_person("SZ", role="admin").id)
    words.add_word(admin, "spamword")
    author = owner()
    leader = load_caller(make_person("SZ", role="circle_leader").id)
    club = clubs.create_club(leader, name="Shenzhen owners", kind="city", city_code="SZ")
    clubs.join(load_caller(author.id), str(club.pk))
    as_author = load_caller(author.id)
    posts.publish_post(as_author, str(club.pk), "buy spamword", [])
    hidden = posts.publish_post(as_author, str(club.pk), "a noisy post", [])
    comment = posts.add_comment(as_author, str(hidden.pk), "and a comment")
    decided = posts.publish_post(as_author, str(club.pk), "decided", [])
    reporters = [load_caller(established(club).id) for _ in range(3)]
    for reporter in reporters[:2]:
        reports.file_report(reporter, "post", str(hidden.pk), "spam")
    reports.file_report(reporters[2], "comment", str(comment.pk), "rude")
    reports.file_report(reporters[2], "user", author.id, "spammer")
    ambassador = make_person("SZ", role="ambassador")
    entry = moderation.take_action(
        load_caller(ambassador.id), "post", str(decided.pk), "hide", "Off topic"
    )
    return ambassador, {
        "target_type": "post",
        "target_id": str(hidden.pk),
        "actor": ambassador.id,
        "account": author.id,
        "entry": str(entry.pk),
    }


@pytest.fixture
def desk(worlds: Worlds) -> tuple[Person, dict[str, str]]:
    return worlds.restored(build_desk)


def _opened(client, world, path: str, budget: int) -> str:
    person, ids = world
    sign_in(client, person)
    return page_within_budget(client, path.format(**ids), budget).get_data(as_text=True)


@pytest.mark.parametrize("path", sorted(DESK_PAGES))
def test_a_desk_page_within_its_budget(client, desk, path):
    page = _opened(client, desk, path, DESK_PAGES[path])
    assert "review-item" in page or "audit" in path


# The admin console, opened by an admin over two cities with partners, budgets, rewards,
# an owner's ledger, a bulk credit, a reconciliation run with a drift and dead letters.
ADMIN_PAGES: dict[str, int] = {
    # The caller, the page of words, the names of the admins who listed them.
    "/console/words": 3,
    # The caller, the partners not ended, the cities, their leaders (one aggregate).
    "/console/admin/cities": 4,
    "/console/admin/partners": 4,
    # The caller, the partner, its leaders and their names, the month's entries and
    # figures.
    "/console/admin/partners/{partner_id}": 6,
    # The caller, the partners under contract that month, then each partner's stored
    # month (partners.scorecards.ranked: one read per partner; two here).
    "/console/admin/scorecards": 4,
    "/console/admin/scorecards.csv": 4,
    # The caller, the cities (the form's scope), the catalogue.
    "/console/admin/rewards": 3,
    "/console/admin/rewards/{reward_id}": 3,
    # The caller, the stored rules (the defaults come from the code).
    "/console/admin/earning-rules": 2,
    "/console/admin/points": 1,
    # The caller, the owner looked up, their account, a page of the ledger, their lots.
    "/console/admin/points?q={email}": 5,
    # The caller, the latest uploads.
    "/console/admin/bulk-credits": 2,
    # The caller, the upload, a page of its lines.
    "/console/admin/bulk-credits/{job_id}": 3,
    "/console/admin/bulk-credits/{job_id}/not-applied.csv": 3,
    # The caller, the runs (the drifts come with them).
    "/console/admin/reconciliation": 2,
    "/console/admin/reconciliation/{run_id}": 2,
    # The caller, the page of letters.
    "/console/admin/dead-letters": 2,
}


def build_hq() -> tuple[Person, dict[str, str]]:
    """Two cities run by partners (SZ's with a budget), rewards, an owner with a ledger,
    a bulk credit applied with a line refused, a reconciliation run that found a drift,
    dead letters and listed words."""
    import io

    from community import words
    from loyalty import adjustments, bulk_credits, reconciliation, rewards
    from loyalty.models import PointsAccount
    from workers.models import DeadLetter

    admin_person = make_person("SZ", role="admin")
    admin = load_caller(admin_person.id)
    partner = sz_partner(50_000)
    cd_partner()
    reward = rewards.create_reward(
        admin, {"title": "Mug", "cost": 100, "stock": 50, "fulfillment": "pickup"}
    )
    rewards.create_reward(
        admin,
        {"title": "Cap", "cost": 300, "stock": 5, "fulfillment": "shipping", "city_codes": ["SZ"]},
    )
    owner = make_person("SZ")
    for amount in (500, 250, -100):
        adjustments.adjust(admin, owner.id, amount, "Goodwill")
    lines = [f"{person.id},20,Spring" for person in many_owners(20)] + ["nobody,5,x"]
    job = bulk_credits.preview(
        admin, io.BytesIO(("account,points,reason\n" + "\n".join(lines)).encode())
    )
    bulk_credits.start(admin, str(job.pk))
    bulk_credits.apply(str(job.pk))
    PointsAccount.objects(pk=owner.user.pk).update_one(inc__balance=7)
    run = reconciliation.request_reconciliation(admin)
    reconciliation.run_reconciliation(str(run.pk))
    for number in range(3):
        DeadLetter(
            message_id=f"budget{number}",
            queue_name="backbone",
            actor_name="outbox.handle",
            args=[{}, {}],
            error="boom",
        ).save()
    for word in ("spamword", "scamword", "傻逼"):
        words.add_word(admin, word)
    return admin_person, {
        "partner_id": str(partner.pk),
        "reward_id": str(reward.pk),
        "email": owner.user.email,
        "job_id": str(job.pk),
        "run_id": str(run.pk),
    }


@pytest.fixture
def hq(worlds: Worlds) -> tuple[Person, dict[str, str]]:
    return worlds.restored(build_hq)


@pytest.mark.parametrize("path", sorted(ADMIN_PAGES))
def test_an_admin_page_within_its_budget(client, hq, path):
    assert _opened(client, hq, path, ADMIN_PAGES[path])
