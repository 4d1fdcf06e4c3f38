"""Points follow content, through real worker and dispatcher processes."""

from __future__ import annotations

from loyalty.models import LedgerEntry
from tests.community.conftest import API, owner, post_in
from tests.events.conftest import deliver
from tests.support import wait_until
from workers.models import HandledEvent


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
