"""The ambassadors' review desk through the API and its services: the queue of reviewables
with each item's reports, content, author's history, version, claim and allowed actions;
two ambassadors deciding one item at once; claims; undo within 10 minutes with the content,
the account and the points back where they were; bulk decisions audited item by item; the
audit log by ambassador, account and target; what the word filter sees."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import requests

from app import handlers as registry
from app.auth import load_caller
from app.clock import utcnow
from app.handlers import HandledEvent
from app.outbox import DomainEvent, OutboxEvent
from community import clubs, moderation, reviewables, words
from community.models import ModerationAction, Post, Report, Standing
from loyalty.models import LedgerEntry, Lot, PointsAccount
from notifications.models import Notification
from tests.community.conftest import API, established, owner, post_in, report
from tests.support import make_person, wait_until


def deliver_all() -> None:
    """Every domain event recorded and not yet handled, to each of its handlers, as the
    workers would (a handler's marker keeps a second delivery from changing anything)."""
    registry.load_handler_modules()
    for document in list(OutboxEvent._get_collection().find().sort("_id", 1)):
        event = DomainEvent.from_document(document)
        for handler in registry.handlers_for(event.type):
            if not HandledEvent.objects(pk=HandledEvent.key(event.id, handler.name)).first():
                registry.run_handler(handler, event)


def queue(client, person, **args) -> list[dict]:
    response = client.get(f"{API}/moderation/queue", query_string=args, headers=person.headers)
    assert response.status_code == 200, response.json
    return response.json["items"]


def decide(client, person, target_id, action, version=None, target_type="post", **more):
    body = {"target_type": target_type, "target_id": target_id, "action": action, "reason": "r"}
    if version is not None:
        body["version"] = version
    return client.post(f"{API}/moderation/actions", json={**body, **more}, headers=person.headers)


def points(person) -> dict:
    account = PointsAccount.objects(pk=person.user.pk).first()
    lots = sorted((lot.remaining, lot.expires_at) for lot in Lot.objects(account_id=person.user.pk))
    return {
        "balance": account.balance if account else 0,
        "lifetime": account.lifetime_earned if account else 0,
        "lots": lots,
    }


@pytest.fixture
def desk(client, make_club, ambassador):
    """A club of SZ with a held post (a listed word), a post hidden by two established
    reporters, a post reported once, and a reported account."""
    words.add_word(load_caller(make_person("SZ", role="admin").id), "spamword")
    author = owner(display_name="Spammy")
    club = make_club(members=(author,))
    held = post_in(client, club, author, "buy spamword now")
    hidden = post_in(client, club, author, "a noisy post")
    reported = post_in(client, club, author, "a borderline post")
    reporters = [established(club, display_name=f"Reporter {n}") for n in range(2)]
    for reporter in reporters:
        assert report(client, reporter, hidden["id"]).status_code == 201
    assert report(client, reporters[0], reported["id"]).status_code == 201
    troll = owner(display_name="Troll")
    post_in(client, make_club(name="Trolls", members=(troll,)), troll, "visible")
    assert report(client, reporters[1], troll.id, "user").status_code == 201
    deliver_all()
    return {
        "author": author,
        "club": club,
        "held": held["id"],
        "hidden": hidden["id"],
        "reported": reported["id"],
        "troll": troll,
        "reporters": reporters,
    }


def test_the_queue_shows_each_item_with_what_deciding_needs(client, ambassador, desk):
    items = {item["target_id"]: item for item in queue(client, ambassador)}
    assert set(items) == {desk["held"], desk["hidden"], desk["reported"], desk["troll"].id}
    held, hidden = items[desk["held"]], items[desk["hidden"]]
    assert held["queue_reasons"] == ["held"] and held["status"] == "held"
    assert hidden["queue_reasons"] == ["hidden", "reported"] and hidden["status"] == "hidden"
    assert items[desk["reported"]]["queue_reasons"] == ["reported"]
    assert items[desk["troll"].id]["status"] == "active"
    # The reports: who, how much they weigh, their record, why.
    assert {r["reporter_name"] for r in hidden["report_details"]} == {"Reporter 0", "Reporter 1"}
    assert all(r["weight"] == 2.0 and r["reason"] == "spam" for r in hidden["report_details"])
    assert hidden["report_details"][0]["reports_decided"] == 0
    # The author's history: account age, verified, decisions, points from content.
    account = hidden["account"]
    assert account["display_name"] == "Spammy" and account["verified_owner"] is False
    assert account["content_points"] == 10  # two posts published (the held one pays nothing)
    assert account["decisions"] == 0 and account["staff"] is False
    assert hidden["club_name"] == "Shenzhen owners"
    assert hidden["content"]["body"] == "a noisy post"
    # What the server allows this ambassador on each.
    assert held["actions"] == ["keep", "hide", "remove", "warn", "mute", "ban"]
    assert hidden["actions"] == ["restore", "remove", "warn", "mute", "ban"]
    assert items[desk["troll"].id]["actions"] == ["keep", "warn", "mute", "ban"]
    assert all(item["version"] == 0 and item["claim"] is None for item in items.values())


def test_the_queue_filters_and_sorts(client, ambassador, desk, make_club):
    def ids(**args) -> list[str]:
        return [item["target_id"] for item in queue(client, ambassador, **args)]

    assert ids(reason="held") == [desk["held"]]
    assert ids(reason="hidden") == [desk["hidden"]]
    assert set(ids(reason="reported")) == {desk["hidden"], desk["reported"], desk["troll"].id}
    assert ids(kind="user") == [desk["troll"].id]
    assert set(ids(club=str(desk["club"].pk))) == {desk["held"], desk["hidden"], desk["reported"]}
    assert ids(club=str(make_club(name="Empty").pk)) == []
    # Heaviest first: two reports, then one; held content weighs nothing.
    assert ids(kind="post")[:2] == [desk["hidden"], desk["reported"]]
    # Newest first: the latest activity.
    assert ids(sort="newest")[0] == desk["troll"].id
    bad = client.get(f"{API}/moderation/queue?reason=bored", headers=ambassador.headers)
    assert bad.status_code == 422


def test_own_content_and_staff_accounts_limit_what_is_offered_and_allowed(
    client, make_club, ambassador, admin
):
    leader = owner(role="circle_leader")
    club = make_club(members=(leader, ambassador))
    staff_post = post_in(client, club, leader, "a leader's post")
    own_post = post_in(client, club, ambassador, "my own post")
    for target in (staff_post, own_post):
        report(client, established(club), target["id"])
    items = {item["target_id"]: item for item in queue(client, ambassador)}
    assert items[staff_post["id"]]["actions"] == ["keep", "hide", "remove"]
    assert items[own_post["id"]]["actions"] == []
    assert decide(client, ambassador, own_post["id"], "keep").json["error"] == "own_content"
    refused = decide(client, ambassador, staff_post["id"], "mute", duration_days=3)
    assert refused.status_code == 403 and refused.json["error"] == "staff_account"
    by_admin = {item["target_id"]: item for item in queue(client, admin)}
    assert by_admin[staff_post["id"]]["actions"][-3:] == ["warn", "mute", "ban"]
    assert by_admin[own_post["id"]]["actions"] == ["keep", "hide", "remove", "warn", "mute", "ban"]


def test_two_ambassadors_deciding_one_item_at_once_one_wins(live_server, client, desk):
    first = make_person("SZ", role="ambassador", display_name="Amb One")
    second = make_person("SZ", role="ambassador", display_name="Amb Two")
    barrier = threading.Barrier(2)
    answers = {}

    def act(person, action):
        barrier.wait()
        answers[person.id] = requests.post(
            f"{live_server}{API}/moderation/actions",
            json={
                "target_type": "post",
                "target_id": desk["hidden"],
                "action": action,
                "reason": "r",
                "version": 0,
            },
            headers=person.headers,
            timeout=30,
        )

    threads = [
        threading.Thread(target=act, args=(first, "remove")),
        threading.Thread(target=act, args=(second, "keep")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(answer.status_code for answer in answers.values())
    assert statuses == [201, 409], {k: v.text for k, v in answers.items()}
    [won] = [p for p in (first, second) if answers[p.id].status_code == 201]
    [lost] = [p for p in (first, second) if answers[p.id].status_code == 409]
    refusal = answers[lost.id].json()
    assert refusal["error"] == "already_decided"
    assert refusal["decided_by"] == won.id and refusal["decided_by_name"] == won.user.display_name
    assert refusal["version"] == 1 and refusal["action"] in ("remove", "keep")
    assert won.user.display_name in refusal["message"]
    # Applied once: one audit entry, the reports resolved once, the status the winner's.
    assert ModerationAction.objects(target_id=desk["hidden"]).count() == 1
    expected = "removed" if won is first else "visible"
    assert Post.objects.get(pk=desk["hidden"]).status == expected
    assert Report.objects(target_id=desk["hidden"], status="open").count() == 0


def test_a_claimed_item_is_decided_by_its_claimer(client, ambassador, desk):
    other = make_person("SZ", role="ambassador", display_name="Amb Other")
    claim = client.put(
        f"{API}/moderation/items/post/{desk['reported']}/claim", headers=ambassador.headers
    )
    assert claim.status_code == 200, claim.json
    assert claim.json["claimed_by"] == ambassador.id
    [item] = [i for i in queue(client, other) if i["target_id"] == desk["reported"]]
    assert item["claim"]["claimed_by_name"] == ambassador.user.display_name
    assert item["claim"]["mine"] is False
    taken = client.put(
        f"{API}/moderation/items/post/{desk['reported']}/claim", headers=other.headers
    )
    assert taken.status_code == 409 and taken.json["error"] == "claimed"
    refused = decide(client, other, desk["reported"], "hide", version=0)
    assert refused.status_code == 409 and refused.json["claimed_by"] == ambassador.id
    assert Post.objects.get(pk=desk["reported"]).status == "visible"
    # A claim lapses: someone who walked away does not hold an item for ever.
    later = utcnow() + timedelta(minutes=reviewables.CLAIM_MINUTES + 1)
    reviewables.claim(load_caller(other.id), "post", desk["reported"], now=later)
    # Released, anyone decides; a decision clears the claim.
    client.delete(f"{API}/moderation/items/post/{desk['reported']}/claim", headers=other.headers)
    assert decide(client, ambassador, desk["reported"], "hide", version=0).status_code == 201
    page = client.get(f"{API}/moderation/items/post/{desk['reported']}", headers=other.headers)
    assert page.json["claim"] is None and page.json["version"] == 1


def test_undo_returns_the_content_the_points_and_the_reports(client, ambassador, desk):
    author, reporters = desk["author"], desk["reporters"]
    before = points(author)
    assert Standing.objects(user_id=reporters[0].user.pk).first() is None
    removed = decide(client, ambassador, desk["hidden"], "remove", version=0)
    assert removed.status_code == 201, removed.json
    deliver_all()
    assert points(author)["balance"] == before["balance"] - 5
    assert Report.objects(target_id=desk["hidden"], status="upheld").count() == 2
    assert Standing.objects.get(user_id=reporters[0].user.pk).reports_upheld == 1

    undone = client.post(
        f"{API}/moderation/actions/{removed.json['id']}/undo",
        json={"reason": "Wrong post"},
        headers=ambassador.headers,
    )
    assert undone.status_code == 201, undone.json
    assert undone.json["action"] == "undo" and undone.json["undoes"] == removed.json["id"]
    assert undone.json["before"] == {"status": "removed"}
    assert undone.json["after"] == {"status": "hidden"}
    deliver_all()
    # The content, the points (balance, lifetime, every lot with its expiry) and the
    # reports are back where they were.
    assert Post.objects.get(pk=desk["hidden"]).status == "hidden"
    assert points(author) == before
    assert Report.objects(target_id=desk["hidden"], status="open").count() == 2
    again = Standing.objects.get(user_id=reporters[0].user.pk)
    assert (again.reports_resolved, again.reports_upheld) == (0, 0)
    kinds = [e.kind for e in LedgerEntry.objects(account_id=author.user.pk).order_by("id")]
    assert kinds == ["earn", "earn", "reverse", "earn"]
    # The audit log shows both; the author was told of each, with the reason.
    log = client.get(
        f"{API}/moderation/actions",
        query_string={"target_type": "post", "target_id": desk["hidden"]},
        headers=ambassador.headers,
    ).json["items"]
    assert [entry["action"] for entry in log] == ["undo", "remove"]
    assert log[1]["undone_by_action"] == log[0]["id"] and log[1]["undone_at"]
    told = Notification.objects(user_id=author.user.pk, kind="community").order_by("id")
    assert [n.template for n in told] == ["moderation_action", "moderation_undone"]
    assert "Wrong post" in told[1].body
    # The item is back in the queue at its new version.
    [item] = [i for i in queue(client, ambassador) if i["target_id"] == desk["hidden"]]
    assert item["version"] == 2 and item["last_decision"]["action"] == "undo"


def test_undoing_a_mute_gives_the_account_and_its_reports_back(client, ambassador, desk):
    reporter = desk["reporters"][1]
    weights = sorted(r.weight for r in Report.objects(reporter_id=reporter.user.pk))
    muted = decide(client, ambassador, reporter.id, "mute", target_type="user", duration_days=3)
    assert muted.status_code == 201, muted.json
    assert load_caller(reporter.id).user.muted(utcnow())
    assert {r.weight for r in Report.objects(reporter_id=reporter.user.pk)} == {0.0}
    undo = moderation.undo_action(load_caller(ambassador.id), muted.json["id"])
    assert undo.after == {"muted_until": None}
    assert not load_caller(reporter.id).user.muted(utcnow())
    assert sorted(r.weight for r in Report.objects(reporter_id=reporter.user.pk)) == weights


def test_undoing_a_release_of_held_content_takes_its_points_back(client, ambassador, desk):
    author = desk["author"]
    before = points(author)["balance"]
    kept = decide(client, ambassador, desk["held"], "keep", version=0)
    assert kept.status_code == 201 and Post.objects.get(pk=desk["held"]).status == "visible"
    deliver_all()
    assert points(author)["balance"] == before + 5
    moderation.undo_action(load_caller(ambassador.id), kept.json["id"])
    deliver_all()
    post = Post.objects.get(pk=desk["held"])
    assert post.status == "held" and post.published_at is None and post.feed_key is None
    assert points(author)["balance"] == before


def test_undo_is_refused_outside_its_rules(client, ambassador, admin, desk):
    other = make_person("SZ", role="ambassador")
    hidden = decide(client, ambassador, desk["reported"], "hide", version=0).json

    def undo(person, action_id):
        return client.post(
            f"{API}/moderation/actions/{action_id}/undo", json={}, headers=person.headers
        )

    assert undo(other, hidden["id"]).json["error"] == "not_your_decision"
    assert undo(make_person("CD", role="ambassador"), hidden["id"]).status_code == 404
    assert undo(desk["author"], hidden["id"]).status_code == 403
    # Another decision since: the undo would put back a state that is gone.
    assert decide(client, other, desk["reported"], "remove", version=1).status_code == 201
    assert undo(ambassador, hidden["id"]).json["error"] == "superseded"
    assert Post.objects.get(pk=desk["reported"]).status == "removed"
    removed = ModerationAction.objects(target_id=desk["reported"], action="remove").first()
    # An admin undoes anyone's, once; an undo is not undone.
    done = undo(admin, str(removed.pk))
    assert done.status_code == 201
    assert undo(other, str(removed.pk)).json["error"] == "already_undone"
    assert undo(admin, done.json["id"]).json["error"] == "not_undoable"
    # Past 10 minutes.
    late = decide(client, ambassador, desk["held"], "remove", version=0).json
    ModerationAction.objects(pk=late["id"]).update_one(
        set__created_at=utcnow() - timedelta(minutes=11)
    )
    expired = undo(ambassador, late["id"])
    assert expired.status_code == 409 and expired.json["error"] == "undo_expired"
    assert Post.objects.get(pk=desk["held"]).status == "removed"


def test_a_bulk_decision_audits_each_item(client, make_club, ambassador):
    spammer = owner(display_name="Spammer")
    club = make_club(members=(spammer,))
    spam = [post_in(client, club, spammer, f"cheap parts {n}")["id"] for n in range(20)]
    for post_id in spam[:3]:
        report(client, established(club), post_id)
    elsewhere = make_person("CD", role="ambassador")
    cd_author = owner("CD")
    cd_club = clubs.create_club(
        load_caller(make_person("CD", role="admin").id), name="CD", kind="city", city_code="CD"
    )
    clubs.join(load_caller(cd_author.id), str(cd_club.pk))
    cd_post = post_in(client, cd_club, cd_author)["id"]
    # One item decided by someone else meanwhile, at version 0.
    assert decide(client, make_person("SZ", role="ambassador"), spam[5], "hide").status_code == 201
    items = [{"target_id": post_id, "version": 0} for post_id in spam] + [{"target_id": cd_post}]
    answer = client.post(
        f"{API}/moderation/bulk-actions",
        json={"target_type": "post", "action": "remove", "reason": "Spam run", "items": items},
        headers=ambassador.headers,
    )
    assert answer.status_code == 200, answer.json
    assert len(answer.json["applied"]) == 19
    refused = {item["target_id"]: item["error"] for item in answer.json["refused"]}
    assert refused == {spam[5]: "already_decided", cd_post: "not_found"}
    entries = ModerationAction.objects(batch_id=answer.json["batch_id"])
    assert entries.count() == 19 and {e.reason for e in entries} == {"Spam run"}
    assert Post.objects(pk__in=spam, status="removed").count() == 19
    assert Report.objects(target_id__in=spam[:3], status="upheld").count() == 3
    refused_kind = client.post(
        f"{API}/moderation/bulk-actions",
        json={"target_type": "post", "action": "ban", "reason": "r", "items": items[:1]},
        headers=ambassador.headers,
    )
    assert refused_kind.status_code == 422
    assert (
        client.post(
            f"{API}/moderation/bulk-actions",
            json={"target_type": "post", "action": "hide", "reason": "r", "items": items[:1]},
            headers=elsewhere.headers,
        ).json["refused"][0]["error"]
        == "not_found"
    )


def test_the_audit_log_by_ambassador_account_and_target(client, ambassador, admin, desk):
    other = make_person("SZ", role="ambassador")
    decide(client, ambassador, desk["reported"], "hide")
    decide(client, other, desk["hidden"], "remove")
    decide(client, other, desk["troll"].id, "warn", target_type="user")

    def log(person, **args) -> list[tuple[str, str]]:
        response = client.get(
            f"{API}/moderation/actions", query_string=args, headers=person.headers
        )
        assert response.status_code == 200, response.json
        return [(entry["action"], entry["target_id"]) for entry in response.json["items"]]

    assert log(admin, actor=other.id) == [
        ("warn", desk["troll"].id),
        ("remove", desk["hidden"]),
    ]
    assert log(ambassador, account=desk["author"].id) == [
        ("remove", desk["hidden"]),
        ("hide", desk["reported"]),
    ]
    assert log(ambassador, target_type="user", target_id=desk["troll"].id) == [
        ("warn", desk["troll"].id)
    ]
    assert log(ambassador, actor=ambassador.id, city="SZ") == [("hide", desk["reported"])]
    assert log(make_person("CD", role="ambassador"), actor=other.id) == []


def test_an_item_page_has_its_history(client, ambassador, desk):
    decide(client, ambassador, desk["hidden"], "keep")
    page = client.get(f"{API}/moderation/items/post/{desk['hidden']}", headers=ambassador.headers)
    assert page.status_code == 200, page.json
    assert [d["action"] for d in page.json["decisions"]] == ["keep"]
    assert [r["status"] for r in page.json["report_details"]] == ["rejected", "rejected"]
    assert page.json["queue_reasons"] == [] and page.json["status"] == "visible"
    for path in ("post/000000000000000000000000", "thing/1", f"comment/{desk['hidden']}"):
        assert (
            client.get(f"{API}/moderation/items/{path}", headers=ambassador.headers).status_code
            == 404
        )


def test_what_the_filter_sees(client, admin, ambassador):
    words.add_word(load_caller(admin.id), "傻逼")
    words.add_word(load_caller(admin.id), "fuck")
    answer = client.post(
        f"{API}/admin/sensitive-words/test",
        json={"text": "Ｆ.u-c k and 傻 逼"},
        headers=admin.headers,
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["held"] is True
    assert [m["word"] for m in answer.json["matches"]] == ["傻逼", "fuck"]
    assert answer.json["normalised"] == "fuckand傻逼"
    clean = client.post(
        f"{API}/admin/sensitive-words/test", json={"text": "push it"}, headers=admin.headers
    )
    assert clean.json == {**clean.json, "held": False, "matches": []}
    assert (
        client.post(
            f"{API}/admin/sensitive-words/test", json={"text": "x"}, headers=ambassador.headers
        ).status_code
        == 403
    )


def test_the_desk_never_waits_for_workers(client, ambassador, desk, background):
    """Decisions and undos answer at once; the points follow on the workers."""
    background("worker", "dispatcher")
    author = desk["author"]
    before = points(author)["balance"]
    removed = decide(client, ambassador, desk["reported"], "remove", version=0)
    wait_until(lambda: points(author)["balance"] == before - 5, message="points reversed")
    moderation.undo_action(load_caller(ambassador.id), removed.json["id"])
    wait_until(lambda: points(author)["balance"] == before, message="the points back")


def test_an_undo_sent_again_with_its_key_answers_the_first(client, ambassador, desk):
    hidden = decide(client, ambassador, desk["reported"], "hide", version=0).json
    url = f"{API}/moderation/actions/{hidden['id']}/undo"
    headers = {**ambassador.headers, "Idempotency-Key": "undo-1"}
    first = client.post(url, json={"reason": "Oops"}, headers=headers)
    again = client.post(url, json={"reason": "Oops"}, headers=headers)
    assert first.status_code == again.status_code == 201, (first.json, again.json)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == first.json
    assert ModerationAction.objects(action="undo").count() == 1
    # Without the key, the second is refused: undone already.
    assert client.post(url, json={}, headers=ambassador.headers).json["error"] == "already_undone"
