from __future__ import annotations

import dramatiq

from tests.support import make_person
from workers.models import DeadLetter

LIST = "/api/v1/admin/dead-letters"


def park(number: int, **fields) -> DeadLetter:
    return DeadLetter(
        message_id=f"m{number}",
        queue_name="backbone",
        actor_name="dead_letters.record",
        args=[{"n": number}, {}],
        options={"max_retries": 3},
        retries=3,
        error="boom",
        **fields,
    ).save()


def queued(queue: str) -> list[dramatiq.Message]:
    broker = dramatiq.get_broker()
    return [
        dramatiq.Message.decode(raw)
        for raw in broker.client.hvals(f"{broker.namespace}:{queue}.msgs")
    ]


def test_only_admins_read_dead_letters(client):
    owner = make_person("SZ")
    leader = make_person("SZ", role="circle_leader")
    assert client.get(LIST).status_code == 401
    assert client.get(LIST, headers=owner.headers).status_code == 403
    assert client.get(LIST, headers=leader.headers).status_code == 403
    letter = park(1)
    assert client.post(f"{LIST}/{letter.pk}/replay", headers=leader.headers).status_code == 403
    assert DeadLetter.objects.get(pk=letter.pk).replayed_at is None


def test_dead_letters_are_listed_newest_first_in_pages(client):
    admin = make_person("SZ", role="admin")
    letters = [park(n) for n in range(5)]
    first = client.get(LIST, query_string={"limit": 3}, headers=admin.headers).json
    second = client.get(
        LIST, query_string={"limit": 3, "cursor": first["next_cursor"]}, headers=admin.headers
    ).json
    ids = [item["id"] for item in first["items"] + second["items"]]
    assert ids == [str(letter.pk) for letter in reversed(letters)]
    assert second["next_cursor"] is None
    assert first["items"][0]["error"] == "boom"


def test_replayed_filter(client):
    admin = make_person("SZ", role="admin")
    waiting = park(1)
    park(2, replayed_at=waiting.failed_at)
    items = client.get(LIST, query_string={"replayed": "false"}, headers=admin.headers).json
    assert [item["id"] for item in items["items"]] == [str(waiting.pk)]


def test_replay_sends_the_same_actor_and_arguments_once(client):
    admin = make_person("SZ", role="admin")
    letter = park(7)
    response = client.post(f"{LIST}/{letter.pk}/replay", headers=admin.headers)
    assert response.status_code == 202
    assert response.json["replayed_by"] == admin.id

    [message] = queued("backbone")
    assert message.message_id == response.json["replay_message_id"]
    assert message.actor_name == "dead_letters.record"
    assert list(message.args) == [{"n": 7}, {}]
    assert message.options["max_retries"] == 3

    again = client.post(f"{LIST}/{letter.pk}/replay", headers=admin.headers)
    assert again.status_code == 409
    assert again.json["error"] == "already_replayed"


def test_replay_with_redis_down_is_503_and_leaves_the_letter_replayable(client, servers):
    admin = make_person("SZ", role="admin")
    letter = park(1)
    with servers.redis_down():
        response = client.post(f"{LIST}/{letter.pk}/replay", headers=admin.headers)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert DeadLetter.objects.get(pk=letter.pk).replayed_at is None
    assert client.post(f"{LIST}/{letter.pk}/replay", headers=admin.headers).status_code == 202


def test_unknown_dead_letter_is_404(client):
    admin = make_person("SZ", role="admin")
    assert client.post(f"{LIST}/nope/replay", headers=admin.headers).status_code == 404
