"""The brand's admin console in a real browser (headless Chromium), with a real worker and
dispatcher: an admin adds a city and contracts its partner (an overlapping contract is
refused), allocates a budget (a form sent twice allocates once), compares scorecards, adds
and edits a reward, changes an earning rule, looks an owner up and adjusts their points,
bulk-credits 500 owners from a CSV with 3 bad lines (497 applied, 3 reported, and the same
file again applies nothing), runs a reconciliation, replays a dead letter and tests a
sentence against the word filter. Every page is photographed at desktop size in zh-CN and
en (`test_every_admin_page_in_both_languages`)."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest

from app.auth import load_caller
from app.clock import utcnow
from community import words
from loyalty import adjustments, reconciliation, rewards
from loyalty.models import BulkCredit, LedgerEntry, PointsAccount, Reward
from partners import budget
from partners.models import CityPartner, CityPartnerScorecard
from tests.consoles.browser import DESKTOP, new_page, sign_in_page
from tests.consoles.support import cd_partner, sz_partner
from tests.events.conftest import many_owners
from tests.support import make_city, make_person, wait_until
from workers.models import DeadLetter


def balance(user_id) -> int:
    account = PointsAccount.objects(pk=user_id).first()
    return account.balance if account else 0


def upload(page, base: str, path) -> None:
    """Upload a bulk credit file through the form; lands on its preview."""
    page.goto(f"{base}/console/admin/bulk-credits")
    page.set_input_files("#file", str(path))
    page.click("form.upload button[type=submit]")
    page.wait_for_selector("#bulk-figures")


def counted(page, status: str) -> int:
    return int(page.locator(f"[data-count='{status}']").inner_text().replace(",", ""))


@pytest.fixture
def hq(app, tmp_path):
    """SZ run by its partner with a budget, an owner, 500 owners for a CSV with 3 bad
    lines, and a dead letter."""
    make_city("SZ")
    admin = make_person("SZ", role="admin", display_name="HQ Admin")
    partner = sz_partner()
    owner = make_person("SZ", display_name="Zhao Lei")
    owners = many_owners(500)
    lines = ["account,points,reason"] + [f"{o.id},100,Spring campaign" for o in owners]
    lines[101] = "nobody@example.com,100,Spring campaign"
    lines[202] = f"{owners[201].id},lots,Spring campaign"
    lines[303] = f"{owners[302].id},100,"
    upload = tmp_path / "spring-campaign.csv"
    upload.write_text("\n".join(lines) + "\n")
    DeadLetter(
        message_id="console-replay",
        queue_name="domain_events",
        actor_name="outbox.handle",
        args=[{}, {}],
        error="RuntimeError('push gateway down')",
    ).save()
    return {"admin": admin, "partner": partner, "owner": owner, "csv": upload}


@pytest.mark.slow
def test_an_admin_runs_the_hq_console(browser, console_url, screenshot, background, hq):
    background("worker", "dispatcher")
    page = new_page(browser, "en", DESKTOP)
    sign_in_page(page, console_url, hq["admin"].user.email)
    assert page.url.endswith("/console/admin")

    # A city, and its partner under contract; an overlapping contract is refused.
    page.goto(f"{console_url}/console/admin/cities")
    page.fill("#code", "XN")
    page.fill("#name", "Xining")
    page.fill("#province", "Qinghai")
    page.click("form.form button[type=submit]")
    page.wait_for_selector(".flash.success")
    assert "Xining" in page.inner_text("table")
    page.goto(f"{console_url}/console/admin/partners")
    today = utcnow().date()

    def contract(name: str, start) -> None:
        page.fill("#name", name)
        page.select_option("#city_code", "XN")
        page.fill("#contact", "ops@xn.example.com")
        page.fill("#contract_start", start.isoformat())
        page.fill("#contract_end", (start + timedelta(days=365)).isoformat())
        page.click("form.form button[type=submit]")
        page.wait_for_selector(".flash")

    contract("XN Motors", today)
    assert page.locator(".flash.success").count() == 1
    contract("XN Rivals", today + timedelta(days=30))
    assert "another partner" in page.inner_text(".flash.error")
    assert CityPartner.objects(city_code="XN").count() == 1

    # A budget allocated from the partner's page; the same form sent again allocates once.
    partner = hq["partner"]
    month = budget.month_of(utcnow(), "SZ")
    before = budget.summary(partner.pk, month)["allocated"]
    page.goto(f"{console_url}/console/admin/partners/{partner.pk}")
    page.fill("input[name=points]", "5000")
    # The form sent twice, as a double click or a retried request sends it: its key
    # makes one allocation.
    page.evaluate(
        """async () => {
            const form = document.querySelector('form.allocate');
            for (const _ of [1, 2]) {
                await fetch(form.action, {method: 'POST', body: new FormData(form)});
            }
        }"""
    )
    assert budget.summary(partner.pk, month)["allocated"] == before + 5000
    page.reload()
    page.fill("input[name=points]", "1000")
    page.click("form.allocate button[type=submit]")
    page.wait_for_selector(".flash.success")
    assert budget.summary(partner.pk, month)["allocated"] == before + 6000
    assert page.locator("[data-figure=allocated]").inner_text() == f"{before + 6000:,}"

    # Scorecards side by side, sorted by a figure, with charts and CSV.
    page.goto(f"{console_url}/console/admin/scorecards")
    assert page.locator(".charts img").count() == 4
    page.click("table.scorecards th a:has-text('Events held')")
    assert "sort=events_held" in page.url
    csv = page.request.get(f"{console_url}/console/admin/scorecards.csv")
    assert csv.ok and "SZ Motors" in csv.text()

    # A reward added and edited; an earning rule changed.
    page.goto(f"{console_url}/console/admin/rewards")
    page.fill("#title", "Coffee voucher")
    page.fill("#cost", "300")
    page.fill("#stock", "40")
    page.select_option("#fulfillment", "digital")
    page.select_option("#city_codes", ["SZ"])
    page.click("form.reward-form button[type=submit]")
    page.wait_for_selector(".flash.success")
    reward = Reward.objects.get(title="Coffee voucher")
    assert (reward.cost, reward.stock, reward.city_codes) == (300, 40, ["SZ"])
    page.click("text=Coffee voucher")
    page.fill("#stock", "35")
    page.click("form.reward-form button[type=submit]")
    page.wait_for_selector(".flash.success")
    assert Reward.objects.get(pk=reward.pk).stock == 35
    page.goto(f"{console_url}/console/admin/earning-rules")
    row = page.locator("tr", has_text="post.published")
    row.locator("input[name=points]").fill("8")
    row.locator("button[type=submit]").click()
    page.wait_for_selector(".flash.success")

    # An owner looked up and adjusted; nobody adjusts their own points.
    owner = hq["owner"]
    page.goto(f"{console_url}/console/admin/points?q={owner.user.email}")
    page.fill("#amount", "250")
    page.fill("#reason", "Sorry for the wait")
    page.click("form[action$='/adjust'] button")
    page.wait_for_selector(".flash.success")
    assert balance(owner.user.pk) == 250
    page.goto(f"{console_url}/console/admin/points?q={hq['admin'].user.email}")
    page.fill("#amount", "1000")
    page.fill("#reason", "Me")
    page.click("form[action$='/adjust'] button")
    page.wait_for_selector(".flash.error")
    assert balance(hq["admin"].user.pk) == 0

    # 500 owners from a CSV with 3 bad lines: a preview, then a worker applies 497.
    upload(page, console_url, hq["csv"])
    assert (counted(page, "ready"), counted(page, "invalid")) == (497, 3)
    assert page.locator("table.lines tbody tr").count() == 3
    page.click("form[action$='/start'] button")
    page.wait_for_selector(".flash.success")
    until_done = "[data-status=done]"
    page.wait_for_selector(until_done, timeout=120_000)
    assert (counted(page, "applied"), counted(page, "invalid")) == (497, 3)
    # The report opens on the lines to mend.
    page.reload()
    assert page.locator("table.lines tbody tr").count() == 3
    screenshot(page, "admin-bulk-report")
    job = BulkCredit.objects.order_by("-created_at").first()
    assert LedgerEntry.objects(__raw__={"source.id": str(job.pk)}).count() == 497
    report = page.request.get(f"{console_url}/console/admin/bulk-credits/{job.pk}/not-applied.csv")
    assert report.text().count("\n") == 4  # the header and the 3 lines
    # The same file again: nothing left to apply.
    upload(page, console_url, hq["csv"])
    assert (counted(page, "already_applied"), counted(page, "ready")) == (497, 0)
    assert page.locator("form[action$='/start']").count() == 0
    assert LedgerEntry.objects(__raw__={"source.type": "bulk_credit"}).count() == 497

    # A reconciliation run on the workers, with its report.
    page.goto(f"{console_url}/console/admin/reconciliation")
    page.click("form[action$='/start'] button")
    page.wait_for_selector(".flash.success")
    wait_until(
        lambda: reconciliation.recent_runs(load_caller(hq["admin"].id), 1)[0].status == "done",
        timeout=60,
        message="the reconciliation run",
    )
    page.reload()
    page.click("table tbody tr td a")
    assert page.locator("table tbody tr").inner_text().strip()

    # A dead letter replayed once; a word listed and a sentence tested.
    page.goto(f"{console_url}/console/admin/dead-letters")
    page.click("form[action$='/replay'] button")
    page.wait_for_selector(".flash.success")
    assert DeadLetter.objects.get(message_id="console-replay").replayed_at is not None
    page.goto(f"{console_url}/console/words")
    page.fill("#word", "scamword")
    page.click("form[action$='/add'] button")
    page.wait_for_selector(".flash.success")
    page.fill("#text", "Totally not a SCAMWORD, promise")
    page.click("form[action$='/test'] button")
    assert page.locator(".explained.held").count() == 1
    assert "scamword" in page.inner_text(".explained")


@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.slow
def test_every_admin_page_in_both_languages(browser, console_url, screenshot, hq, language):
    """Each page of the admin console, with data, photographed for a person to look at."""
    admin = load_caller(hq["admin"].id)
    cd_partner("CD Auto", days_running=40)
    today = utcnow().date()
    rewards.create_reward(
        admin, {"title": "Mug", "cost": 100, "stock": 50, "fulfillment": "pickup"}
    )
    rewards.create_reward(
        admin,
        {
            "title": "Track day",
            "cost": 20000,
            "stock": 5,
            "fulfillment": "pickup",
            "min_tier": "gold",
            "city_codes": ["SZ"],
            "per_owner_limit": 1,
        },
    )
    for amount in (500, 120, -80):
        adjustments.adjust(admin, hq["owner"].id, amount, "Goodwill")
    words.add_word(admin, "spamword")
    run = reconciliation.request_reconciliation(admin)
    PointsAccount.objects(pk=hq["owner"].user.pk).update_one(inc__balance=9)
    reconciliation.run_reconciliation(str(run.pk))
    # Last month's scorecards, as the nightly job stores them, for the comparison.
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    for partner, figures in zip(
        CityPartner.objects.order_by("city_code"),
        (
            {
                "active_owners": 214,
                "events_held": 6,
                "attended": 171,
                "points_issued": 18_400,
                "new_verified_owners": 23,
                "registrations": 190,
                "average_rating": 4.6,
            },
            {
                "active_owners": 388,
                "events_held": 9,
                "attended": 240,
                "points_issued": 26_900,
                "new_verified_owners": 41,
                "registrations": 262,
                "average_rating": 4.3,
            },
        ),
        strict=True,
    ):
        CityPartnerScorecard(
            city_partner_id=partner.pk,
            month=last_month,
            city_code=partner.city_code,
            name=partner.name,
            figures=figures,
            computed_at=utcnow(),
        ).save()
    page = new_page(browser, language, DESKTOP)
    sign_in_page(page, console_url, hq["admin"].user.email)
    shots = {
        "admin-home": "/console/admin",
        "admin-cities": "/console/admin/cities",
        "admin-partners": "/console/admin/partners",
        "admin-partner": f"/console/admin/partners/{hq['partner'].pk}",
        "admin-scorecards": f"/console/admin/scorecards?month={last_month}&sort=points_issued",
        "admin-rewards": "/console/admin/rewards",
        "admin-earning-rules": "/console/admin/earning-rules",
        "admin-points": f"/console/admin/points?q={hq['owner'].user.email}",
        "admin-reconciliation": "/console/admin/reconciliation",
        "admin-reconciliation-run": f"/console/admin/reconciliation/{run.pk}",
        "admin-dead-letters": "/console/admin/dead-letters",
        "admin-words": "/console/words",
    }
    for name, path in shots.items():
        page.goto(f"{console_url}{path}")
        assert page.locator("main h1").count() == 1, path
        screenshot(page, name)
    # The charts print figures as the table does (points issued is the fourth chart).
    page.goto(f"{console_url}{shots['admin-scorecards']}")
    points_issued = page.locator(".charts img").nth(3).get_attribute("src").split(",", 1)[1]
    assert "26,900" in base64.b64decode(points_issued).decode()
    reward = Reward.objects.get(title="Track day")
    page.goto(f"{console_url}/console/admin/rewards/{reward.pk}")
    screenshot(page, "admin-reward")
    page.goto(f"{console_url}/console/words")
    page.fill("#text", "傻 逼 and spamword")
    page.click("form[action$='/test'] button")
    page.wait_for_selector(".explained.held")
    screenshot(page, "admin-words-test")
    upload(page, console_url, hq["csv"])
    screenshot(page, "admin-bulk-preview")
    page.goto(f"{console_url}/console/admin/bulk-credits")
    screenshot(page, "admin-bulk-credits")
