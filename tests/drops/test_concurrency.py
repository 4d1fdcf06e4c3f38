"""Real concurrent requests and concurrent job passes: no entry lost or made twice, no
place given twice, the first-come order the one clients observed, and a draw anyone can
recompute from the seed published before it opened."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from drops import allocation, draw
from drops.models import Drop, Entry
from loyalty import rewards
from loyalty.models import Redemption, Reward
from tests.drops.conftest import API, close, enter_all, entrants, outcomes, run_job


def test_concurrent_entries_lose_none_and_make_one_each(live_server, reward_drop):
    drop = reward_drop(stock=30, cost=10, quantity=12)
    people = entrants(40, points=50)
    answers: dict[str, list[tuple[int, bytes]]] = {person.id: [] for person in people}
    lock = threading.Lock()

    def send(job: tuple[int, int]) -> None:
        person, attempt = people[job[0]], job[1]
        # Two retries of one request (one key) and a second request (another key).
        key = "first" if attempt < 2 else "second"
        with requests.Session() as http:
            answer = http.post(
                f"{live_server}{API}/drops/{drop.pk}/entries",
                headers={**person.headers, "Idempotency-Key": key},
                timeout=60,
            )
        with lock:
            answers[person.id].append((answer.status_code, answer.content))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(send, [(i, attempt) for i in range(40) for attempt in range(3)]))

    assert Entry.objects(drop_id=drop.pk).count() == 40
    for person in people:
        statuses = sorted(status for status, _ in answers[person.id])
        accepted = {body for status, body in answers[person.id] if status == 202}
        # One request entered; its retry answered the same; the other key was refused,
        # unless it entered first (then the first key's two are the refused ones).
        assert statuses in ([202, 202, 409], [202, 409, 409]), statuses
        assert len(accepted) == 1
    close(drop)
    run_job(drop)
    assert Redemption.objects(reward_id=drop.target_id).count() == 12
    assert Reward.objects.get(pk=drop.target_id).stock == 18
    assert sorted(outcomes(drop).values()) == ["lost"] * 28 + ["won"] * 12


def test_passes_at_once_and_a_pass_that_died_never_give_a_place_twice(app, reward_drop):
    drop = reward_drop(stock=30, cost=10, quantity=6)
    people = entrants(20, points=50)
    enter_all(drop, people)
    close(drop)
    # A pass died after setting two places aside and making the first one's redemption.
    first, second = sorted(
        (e.to_mongo().to_dict() for e in Entry.objects(drop_id=drop.pk)),
        key=lambda entry: entry["arrival"],
    )[:2]
    for position, entry in enumerate((first, second), start=1):
        entry.update(allocated=1, position=position)
    allocation._select(drop.pk, [first, second])
    owner = next(person for person in people if person.user.pk == first["user_id"])
    made = rewards.redeem(
        owner.user, str(drop.target_id), drop=rewards.ThroughDrop(drop.pk, first["_id"])
    )

    def chain(token: str) -> None:
        # Four chains at once (a retried message, the sweep's): one pass at a time.
        with app.app_context():
            for _ in range(50):
                allocation.run(drop.pk, token)
                if Drop.objects.get(pk=drop.pk).status == "decided":
                    return
                time.sleep(0.05)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(chain, ["a", "b", "c", "d"]))
    run_job(drop)
    assert Redemption.objects(reward_id=drop.target_id).count() == 6
    assert Entry.objects.get(pk=first["_id"]).made_id == made.pk
    assert Reward.objects.get(pk=drop.target_id).stock == 24
    assert (drop.allocated, drop.won, drop.lost) == (6, 6, 14)


def test_first_come_serves_first_whom_clients_saw_answered_first(live_server, event_drop):
    drop = event_drop(capacity=30, quantity=10)
    people = entrants(40)
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}

    def send(person) -> None:
        with requests.Session() as http:
            sent[person.id] = time.monotonic()
            answer = http.post(
                f"{live_server}{API}/drops/{drop.pk}/entries", headers=person.headers, timeout=60
            )
            answered[person.id] = time.monotonic()
        assert answer.status_code == 202, answer.text

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, people))
    close(drop)
    run_job(drop)
    decided = {str(user): status for user, status in outcomes(drop).items()}
    winners = [person for person, status in decided.items() if status == "won"]
    losers = [person for person, status in decided.items() if status == "lost"]
    assert (len(winners), len(losers)) == (10, 30)
    # Answered before a winner's request was even sent: served before it, so not lost.
    assert not [
        (loser, winner) for loser in losers for winner in winners if answered[loser] < sent[winner]
    ]


def test_anyone_recomputes_a_draw_from_its_published_seed(client, event_drop):
    drop = event_drop(capacity=30, quantity=4, mode="draw")
    people = entrants(15)
    published = client.get(f"{API}/drops/{drop.pk}", headers=people[0].headers).json
    assert published["seed"] is None
    entry_ids = {}
    for person in people:
        entry_ids[person.id] = client.post(
            f"{API}/drops/{drop.pk}/entries", headers=person.headers
        ).json["id"]
    close(drop)
    run_job(drop)
    revealed = client.get(f"{API}/drops/{drop.pk}", headers=people[0].headers).json
    seed = revealed["seed"]
    assert draw.seed_hash(seed) == published["seed_hash"] == revealed["seed_hash"]
    by_ticket = sorted(people, key=lambda person: draw.ticket(seed, entry_ids[person.id]))
    shown = {
        person.id: client.get(f"{API}/drops/{drop.pk}/entries/me", headers=person.headers).json
        for person in people
    }
    assert [shown[p.id]["status"] for p in by_ticket] == ["won"] * 4 + ["lost"] * 11
    assert [shown[p.id]["position"] for p in by_ticket[:4]] == [1, 2, 3, 4]
