"""Points follow content, through real worker and dispatcher processes."""

from __future__ import annotations

from app import handlers as registry
from app.handlers import HandledEvent
from app.outbox import DomainEvent, OutboxEvent
from loyalty.models import LedgerEntry
from tests.community.conftest import API, owner, post_in
from tests.events.conftest import deliver
from tests.support import wait_until


def _kinds(author) -> list[tuple[str, int]]:
    return [
        (e.kind, e.amount) for e in LedgerEntry.objects(account_id=author.user.pk).order_by("id")
    ]


def test_publish_remove_restore_earn_reverse_earn_once_each(
    client, make_club, ambassador, background
):
    author = owner()
    club = make_club(members=(author,))
    background("worker", "dispatcher")
    post = post_in(client, club, author)
    wait_until(lambda: _kinds(author) == [("earn", 5)], message="the post's points")

    def act(action: str) -> None:
        response = client.post(
            f"{API}/moderation/actions",
            json={"target_type": "post", "target_id": post["id"], "action": action, "reason": "r"},
            headers=ambassador.headers,
        )
        assert response.status_code == 201, response.json

    act("remove")
    wait_until(lambda: _kinds(author) == [("earn", 5), ("reverse", -5)], message="the reversal")
    act("restore")
    expected = [("earn", 5), ("reverse", -5), ("earn", 5)]
    wait_until(lambda: _kinds(author) == expected, message="the points earned back")
    reversal = LedgerEntry.objects.get(account_id=author.user.pk, kind="reverse")
    first = LedgerEntry.objects(account_id=author.user.pk, kind="earn").order_by("id").first()
    assert reversal.source["id"] == str(first.pk)

    # Every domain event delivered again, markers gone: the ledger's own keys hold.
    HandledEvent.objects.delete()
    for event_type in ("post.published", "post.removed", "post.restored"):
        deliver(event_type)
    assert _kinds(author) == expected


# --- the findings of issue 20: events delivered in an order of the test's choosing -------


def _deliver_all(newest_first: bool = False) -> None:
    """Every recorded domain event to each of its handlers, as the workers would, oldest
    first or newest first (a worker's queue gives no order across events)."""
    registry.load_handler_modules()
    events = OutboxEvent._get_collection().find().sort("_id", -1 if newest_first else 1)
    for document in list(events):
        event = DomainEvent.from_document(document)
        for handler in registry.handlers_for(event.type):
            registry.run_handler(handler, event)


def _balance(person) -> int:
    return sum(e.amount for e in LedgerEntry.objects(account_id=person.user.pk))


def _act(client, ambassador, post_id: str, action: str, target_type: str = "post") -> None:
    response = client.post(
        f"{API}/moderation/actions",
        json={"target_type": target_type, "target_id": post_id, "action": action, "reason": "r"},
        headers=ambassador.headers,
    )
    assert response.status_code == 201, response.json


def test_published_then_removed_at_once_keeps_nothing(client, make_club, ambassador):
    author = owner()
    post = post_in(client, make_club(members=(author,)), author)
    _act(client, ambassador, post["id"], "remove")
    _deliver_all(newest_first=True)  # the removal is handled before the publication
    assert _balance(author) == 0


def test_removed_then_restored_at_once_pays_again(client, make_club, ambassador):
    author = owner()
    post = post_in(client, make_club(members=(author,)), author)
    _deliver_all()
    _act(client, ambassador, post["id"], "remove")
    _act(client, ambassador, post["id"], "restore")
    _deliver_all(newest_first=True)  # the restore is handled before the removal
    assert client.get(f"{API}/posts/{post['id']}", headers=author.headers).json["status"] == (
        "visible"
    )
    assert _balance(author) == 5


def test_a_feature_after_a_restore_goes_with_the_next_removal(client, make_club, ambassador):
    author = owner()
    post = post_in(client, make_club(members=(author,)), author)
    _act(client, ambassador, post["id"], "remove")
    _act(client, ambassador, post["id"], "restore")
    featured = client.post(f"{API}/posts/{post['id']}/feature", headers=ambassador.headers)
    assert featured.status_code == 200
    _act(client, ambassador, post["id"], "remove")
    _deliver_all()
    assert _balance(author) == 0


def test_deleting_ones_own_post_gives_its_points_back(client, make_club):
    author = owner()
    post = post_in(client, make_club(members=(author,)), author)
    _deliver_all()
    assert _balance(author) == 5
    assert client.delete(f"{API}/posts/{post['id']}", headers=author.headers).status_code == 204
    _deliver_all()
    assert _balance(author) == 0
    reversal = LedgerEntry.objects.get(account_id=author.user.pk, kind="reverse")
    assert reversal.reason == "content deleted by its author"


def test_comments_on_ones_own_post_earn_nothing(client, make_club):
    author, friend = owner(), owner()
    post = post_in(client, make_club(members=(author, friend)), author)
    for person in (author, friend):
        answer = client.post(
            f"{API}/posts/{post['id']}/comments", json={"body": "hi"}, headers=person.headers
        )
        assert answer.status_code == 201
    _deliver_all()
    assert _balance(author) == 5  # the post, not the comment
    assert _balance(friend) == 1


def test_featuring_a_staff_members_post_pays_nothing(client, make_club, ambassador, leader):
    """Issue 20, finding 6: an ambassador featured a leader's post, +50 to the leader."""
    club = make_club(members=(leader,))
    post = post_in(client, club, leader)
    featured = client.post(f"{API}/posts/{post['id']}/feature", headers=ambassador.headers)
    assert featured.status_code == 200 and featured.json["featured"] is True
    _deliver_all()
    assert _balance(leader) == 5  # the post's own points, not the feature's
