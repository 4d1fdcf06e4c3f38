"""Reports: what each weighs (reporter standing), content hidden at the threshold from two
reporters or more, one voice per client, no existence oracle, and the review queue."""

from __future__ import annotations

from accounts.models import User
from community.models import Post, Report, Standing
from tests.community.conftest import API, established, owner, post_in, report
from tests.support import make_person


def _status(client, person, post_id: str) -> int:
    return client.get(f"{API}/posts/{post_id}", headers=person.headers).status_code


def test_two_established_reporters_hide_content_its_author_still_sees(client, make_club):
    author = owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)
    verified = established(club)
    first = report(client, verified, post["id"])
    assert first.status_code == 201
    assert (first.json["weight"], first.json["weight_reason"]) == (2.0, None)
    repeat = report(client, verified, post["id"])
    assert repeat.status_code == 200 and repeat.json["id"] == first.json["id"]
    assert Post.objects.get(pk=post["id"]).status == "visible"  # one reporter never hides
    # An unverified member weighs once they have content of their own others can see.
    member = established(club, verified=False)
    assert report(client, member, post["id"]).json["weight_reason"] == "no_visible_content"
    Report.objects(reporter_id=member.user.pk).delete()
    post_in(client, club, member, "my own post")
    second = report(client, member, post["id"])
    assert second.status_code == 201 and second.json["weight"] == 1.0
    # 2 + 1 from two reporters reaches the default threshold of 3: hidden at once, gone
    # from the lists, a 404 for others, and shown to its author as hidden.
    assert Post.objects.get(pk=post["id"]).status == "hidden"
    listed = client.get(f"{API}/clubs/{club.pk}/posts", headers=author.headers).json["items"]
    assert post["id"] not in [item["id"] for item in listed]
    assert _status(client, verified, post["id"]) == 404
    mine = client.get(f"{API}/posts/{post['id']}", headers=author.headers)
    assert mine.status_code == 200 and mine.json["status"] == "hidden"


def test_three_throwaway_accounts_silence_nobody(client, make_club, ambassador):
    """Issue 20, finding 1: fresh, unverified accounts of another city, outside the club."""
    author = owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)
    for _ in range(3):
        throwaway = make_person("CD")
        answer = report(client, throwaway, post["id"])
        assert answer.status_code == 201
        assert (answer.json["weight"], answer.json["weight_reason"]) == (0.0, "new_account")
    # Old enough but outside the club: nothing either.
    outsider = established()
    assert report(client, outsider, post["id"]).json["weight_reason"] == "not_member"
    assert Post.objects.get(pk=post["id"]).status == "visible"
    assert _status(client, author, post["id"]) == 200
    # Recorded and shown in the queue, for a person to decide.
    [item] = client.get(f"{API}/moderation/queue", headers=ambassador.headers).json["items"]
    assert (item["target_id"], item["reports"], item["weight"]) == (post["id"], 4, 0.0)


def test_one_trusted_reporter_never_hides_alone(client, make_club):
    """Issue 20, finding 1: a single upheld report once made a verified owner weigh 3."""
    author = owner()
    club = make_club(members=(author,))
    post, other = post_in(client, club, author), post_in(client, club, author, "another")
    farmer = established(club)
    Standing(user_id=farmer.user.pk, reports_resolved=1, reports_upheld=1).save()
    assert report(client, farmer, post["id"]).json["weight"] == 2.0  # below the sample
    Standing.objects(user_id=farmer.user.pk).update_one(
        set__reports_resolved=20, set__reports_upheld=20
    )
    assert report(client, farmer, other["id"]).json["weight"] == 2.5  # REPORT_MAX_WEIGHT
    assert Post.objects.get(pk=other["id"]).status == "visible"


def test_accounts_from_one_client_count_once(client, make_club):
    author = owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)

    def sign_up(number: int, device: str):
        answer = client.post(
            f"{API}/auth/register",
            json={
                "email": f"ring{number}@example.com",
                "password": "password-123",
                "display_name": f"Ring {number}",
                "city_code": "SZ",
                "device": device,
            },
        )
        assert answer.status_code == 201, answer.json
        user = User.objects.get(pk=answer.json["user"]["id"])
        assert user.client_fingerprint and "127.0.0.1" not in user.client_fingerprint
        # Established since: past the probation, verified, a member.
        person = established(club)
        User.objects(pk=person.user.pk).update_one(set__client_fingerprint=user.client_fingerprint)
        return person

    ring = [sign_up(1, "Pixel 8"), sign_up(2, "Pixel 8")]
    assert ring[0].user.reload().client_fingerprint == ring[1].user.reload().client_fingerprint
    for member in ring:
        assert report(client, member, post["id"]).json["weight"] == 2.0
    assert Post.objects.get(pk=post["id"]).status == "visible"  # 4, but one voice
    another = sign_up(3, "iPhone 15")
    assert another.user.reload().client_fingerprint != ring[0].user.client_fingerprint
    report(client, another, post["id"])
    assert Post.objects.get(pk=post["id"]).status == "hidden"


def test_reports_are_no_oracle(client, make_club, ambassador):
    """Issue 20, finding 7: content or accounts the caller may not see answer like ids that
    do not exist; one's own are refused."""
    author, reporter = owner(), established()
    club = make_club(members=(author, reporter))
    held, removed = post_in(client, club, author), post_in(client, club, author, "x")
    Post.objects(pk=held["id"]).update_one(set__status="held")
    client.post(
        f"{API}/moderation/actions",
        json={"target_type": "post", "target_id": removed["id"], "action": "remove", "reason": "r"},
        headers=ambassador.headers,
    )
    silent = owner()  # a real account that never posted
    unknown = "0123456789abcdef01234567"
    for target_type, target_id in (
        ("post", held["id"]),
        ("post", removed["id"]),
        ("post", unknown),
        ("user", silent.id),
        ("user", unknown),
    ):
        answer = report(client, reporter, target_id, target_type)
        assert (answer.status_code, answer.json["error"]) == (422, "unknown_target"), target_id
    post_in(client, club, author, "visible")
    assert report(client, reporter, author.id, "user").status_code == 201  # they post
    assert report(client, ambassador, silent.id, "user").status_code == 201  # their city
    mine = post_in(client, club, reporter, "mine")
    for target_type, target_id in (("post", mine["id"]), ("user", reporter.id)):
        answer = report(client, reporter, target_id, target_type)
        assert (answer.status_code, answer.json["error"]) == (422, "self_report")
    assert Report.objects.count() == 2


def test_the_queue_groups_targets_heaviest_first(client, make_club, ambassador):
    author = owner()
    club = make_club(members=(author,))
    light, heavy = post_in(client, club, author), post_in(client, club, author, "other")
    report(client, established(club), light["id"])
    for _ in range(2):
        report(client, established(club), heavy["id"])
    queue = client.get(f"{API}/moderation/queue", headers=ambassador.headers).json["items"]
    assert [(item["target_id"], item["reports"]) for item in queue] == [
        (heavy["id"], 2),
        (light["id"], 1),
    ]
    other = make_person("CD", role="ambassador")
    assert client.get(f"{API}/moderation/queue", headers=other.headers).json["items"] == []
    elsewhere = client.get(f"{API}/moderation/queue?city=SZ", headers=other.headers)
    assert elsewhere.status_code == 403 and elsewhere.json["error"] == "forbidden"
    assert client.get(f"{API}/moderation/queue", headers=author.headers).status_code == 403
