"""The ambassador's review desk in a real browser (headless Chromium), with a real worker and
dispatcher moving points: an ambassador clears a queue of reported and held posts (hide,
restore, keep, remove with the points reversed, mute), undoes the removal and sees the
points back; two ambassadors in two browser contexts decide one item at once (one wins,
the other is told who); a bulk decision over 20 posts. Each page is photographed at desktop
size in zh-CN and en."""

from __future__ import annotations

import pytest

from app.auth import load_caller
from community import posts, reports, words
from community.models import ModerationAction, Post
from loyalty.models import PointsAccount
from tests.community.conftest import established, owner
from tests.consoles.browser import DESKTOP, new_page, sign_in_page
from tests.support import make_city, make_person, wait_until

# What the pages say, by language, where a test reads it.
SAYS = {
    "zh-CN": {
        "hide": "隐藏",
        "restore": "恢复",
        "keep": "保留",
        "remove": "删除",
        "mute": "禁言",
        "undo": "撤销",
        "meantime": "期间",
        "within_rules": "符合社区规则",
    },
    "en": {
        "hide": "Hide",
        "restore": "Restore",
        "keep": "Keep",
        "remove": "Remove",
        "mute": "Mute",
        "undo": "Undo",
        "meantime": "in the meantime",
        "within_rules": "Within the community rules",
    },
}


def balance(person) -> int:
    account = PointsAccount.objects(pk=person.user.pk).first()
    return account.balance if account else 0


def card(page, post_id: str, kind: str = "post"):
    return page.locator(f"#item-{kind}-{post_id}")


def decide(page, post_id: str, label: str, kind: str = "post") -> None:
    item = card(page, post_id, kind)
    item.locator("button.act", has_text=label).first.click()
    page.wait_for_selector(".flash")


@pytest.fixture
def queue_city(app, make_club):
    """SZ's club with a post hidden by two reports, a held post, a reported post, a spam
    post that earned its author points, and a troll whose comment was reported."""
    make_city("SZ")
    admin = load_caller(make_person("SZ", role="admin").id)
    words.add_word(admin, "spamword")
    author = owner(display_name="Wang Fang")
    spammer = owner(display_name="Spam Seller")
    troll = owner(display_name="Troll")
    club = make_club(members=(author, spammer, troll))
    reporters = [load_caller(established(club).id) for _ in range(2)]

    def publish(person, body: str) -> str:
        return str(posts.publish_post(load_caller(person.id), str(club.pk), body, []).pk)

    hidden = publish(author, "Sunday drive <b>to the coast</b>, all welcome")
    held = publish(author, "Selling my spamword charger")
    rude = publish(author, "Whoever parks like that should lose the car")
    spam = publish(spammer, "Cheap parts, message me on WeChat")
    troll_post = publish(troll, "First!")
    comment = posts.add_comment(load_caller(troll.id), troll_post, "You are all idiots")
    for reporter in reporters:
        reports.file_report(reporter, "post", hidden, "Looks like spam")
    reports.file_report(reporters[0], "post", rude, "Rude")
    reports.file_report(reporters[1], "post", spam, "Advertising")
    reports.file_report(reporters[0], "comment", str(comment.pk), "Insults")
    return {
        "hidden": hidden,
        "held": held,
        "rude": rude,
        "spam": spam,
        "comment": str(comment.pk),
        "spammer": spammer,
        "troll": troll,
    }


@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.slow
def test_an_ambassador_clears_a_queue_and_undoes_a_removal(
    browser, console_url, screenshot, background, queue_city, language
):
    says = SAYS[language]
    city = queue_city
    background("worker", "dispatcher")
    spammer = city["spammer"]
    wait_until(lambda: balance(spammer) == 5, message="the spam post's points")
    ambassador = make_person("SZ", role="ambassador", display_name="Li Na (ambassador)")
    page = new_page(browser, language, DESKTOP)
    sign_in_page(page, console_url, ambassador.user.email)
    assert page.url.endswith("/console/ambassador")
    screenshot(page, "ambassador-home")

    page.goto(f"{console_url}/console/review")
    assert page.locator(".review-item").count() == 5
    # The content as a reader sees it: markup shown as text, never run.
    assert "<b>to the coast</b>" in card(page, city["hidden"]).inner_text()
    screenshot(page, "review-desk")

    decide(page, city["rude"], says["hide"])
    decide(page, city["hidden"], says["restore"])
    decide(page, city["held"], says["keep"])
    decide(page, city["spam"], says["remove"])
    item = card(page, city["comment"], "comment")
    item.locator("input[name=duration_days]").fill("3")
    decide(page, city["comment"], says["mute"], "comment")
    statuses = {
        key: Post.objects.get(pk=city[key]).status for key in ("rude", "hidden", "held", "spam")
    }
    assert statuses == {"rude": "hidden", "hidden": "visible", "held": "visible", "spam": "removed"}
    # Kept and restored content is stated to be within the rules, whatever the list showed.
    reasons = {e.action: e.reason for e in ModerationAction.objects(action__in=("keep", "restore"))}
    assert reasons == {"keep": says["within_rules"], "restore": says["within_rules"]}
    assert load_caller(city["troll"].id).user.muted_until is not None
    assert page.locator(".review-item").count() == 0
    wait_until(lambda: balance(spammer) == 0, message="the removed post's points reversed")
    screenshot(page, "review-desk-cleared")

    # Undo the removal from the panel of recent decisions: the post and its points return.
    removal = ModerationAction.objects.get(action="remove", target_id=city["spam"])
    page.locator(f"form[action$='/decisions/{removal.pk}/undo'] button").click()
    page.wait_for_selector(".flash.success")
    assert Post.objects.get(pk=city["spam"]).status == "visible"
    wait_until(lambda: balance(spammer) == 5, message="the points back")
    page.goto(f"{console_url}/console/review/post/{city['spam']}")
    assert page.locator(".content-points").inner_text().strip() == "5"
    assert page.locator(".timeline-decision").count() == 2
    screenshot(page, "review-item")

    page.goto(f"{console_url}/console/audit")
    assert page.locator("table.audit tbody tr").count() == 6
    screenshot(page, "audit-log")


def test_two_ambassadors_deciding_one_item_at_once(browser, console_url, screenshot, queue_city):
    first = make_person("SZ", role="ambassador", display_name="Amb Zhou")
    second = make_person("SZ", role="ambassador", display_name="Amb Chen")
    pages = [new_page(browser, "en", DESKTOP) for _ in range(2)]
    for page, person in zip(pages, (first, second), strict=True):
        sign_in_page(page, console_url, person.user.email)
        page.goto(f"{console_url}/console/review")
    target = queue_city["rude"]
    # Both click at once on what each page showed (the same version of the item).
    card(pages[0], target).locator("button.act", has_text="Remove").click(no_wait_after=True)
    card(pages[1], target).locator("button.act", has_text="Hide").click(no_wait_after=True)
    for page in pages:
        page.wait_for_selector(".flash")
    flashes = [page.locator(".flash").first for page in pages]
    kinds = sorted(flash.get_attribute("class") for flash in flashes)
    assert kinds == ["flash error", "flash success"], [f.inner_text() for f in flashes]
    [entry] = ModerationAction.objects(target_id=target)
    winner = first if entry.actor_id == first.user.pk else second
    loser_page = pages[1] if winner is first else pages[0]
    told = loser_page.locator(".flash.error").inner_text()
    assert winner.user.display_name in told and "in the meantime" in told, told
    screenshot(loser_page, "review-desk-decided-meanwhile")


@pytest.mark.slow
def test_a_bulk_decision_over_twenty_posts(browser, console_url, screenshot, make_club):
    make_city("SZ")
    spammer = owner(display_name="Bulk Spammer")
    club = make_club(members=(spammer,))
    reporter = load_caller(established(club).id)
    spam = []
    for number in range(20):
        post_id = str(
            posts.publish_post(
                load_caller(spammer.id), str(club.pk), f"Cheap tyres {number}", []
            ).pk
        )
        reports.file_report(reporter, "post", post_id, "Advertising")
        spam.append(post_id)
    ambassador = make_person("SZ", role="ambassador")
    page = new_page(browser, "zh-CN", DESKTOP)
    sign_in_page(page, console_url, ambassador.user.email)
    page.goto(f"{console_url}/console/review?kind=post")
    assert page.locator(".select-item").count() == 20
    page.check("[data-select-all]")
    page.select_option("#bulk-form select[name=action]", "remove")
    page.fill("#bulk-note", "Tyre spam run")
    screenshot(page, "review-desk-bulk")
    page.click("#bulk-form button[type=submit]")
    page.wait_for_selector(".flash.success")
    entries = ModerationAction.objects(target_id__in=spam, action="remove")
    assert entries.count() == 20 and len({entry.batch_id for entry in entries}) == 1
    assert Post.objects(pk__in=spam, status="removed").count() == 20
    assert page.locator(".review-item").count() == 0
