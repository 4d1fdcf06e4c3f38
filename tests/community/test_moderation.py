from __future__ import annotations

import pytest

from accounts.models import User
from app.auth import load_caller
from app.outbox import OutboxEvent
from community import clubs
from community.models import ModerationAction, Post, Report
from notifications.models import Notification
from tests.community.conftest import API, established, owner, post_in, report
from tests.support import make_person

ROLES = ("ambassador_here", "ambassador_elsewhere", "leader", "owner", "admin")


@pytest.fixture
def people(app):
    return {
        "ambassador_here": make_person("SZ", role="ambassador"),
        "ambassador_elsewhere": make_person("CD", role="ambassador"),
        "leader": make_person("SZ", role="circle_leader"),
        "owner": owner(),
        "admin": make_person("GZ", role="admin"),
    }


@pytest.mark.parametrize("role", ROLES)
def test_moderation_matrix(client, make_club, people, role):
    author = owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)
    who = people[role]
    allowed = role in ("ambassador_here", "admin")
    action = client.post(
        f"{API}/moderation/actions",
        json={"target_type": "post", "target_id": post["id"], "action": "hide", "reason": "r"},
        headers=who.headers,
    )
    # Without the role anywhere: 403 (who may moderate is no secret); elsewhere: 404.
    refused = 404 if role == "ambassador_elsewhere" else 403
    assert action.status_code == (201 if allowed else refused), action.json
    assert Post.objects.get(pk=post["id"]).status == ("hidden" if allowed else "visible")
    log = client.get(f"{API}/moderation/actions?city=SZ", headers=who.headers)
    assert log.status_code == (200 if allowed else 403)
    queue = client.get(f"{API}/moderation/queue", headers=who.headers)
    assert queue.status_code == (200 if allowed or role == "ambassador_elsewhere" else 403)
    feature = client.post(f"{API}/posts/{post['id']}/feature", headers=who.headers)
    # Hidden now, or not theirs to feature; or no ambassador at all.
    assert feature.status_code == (403 if role in ("leader", "owner") else 404)
    words = client.get(f"{API}/admin/sensitive-words", headers=who.headers)
    assert words.status_code == (200 if role == "admin" else 403)


def test_actions_are_audited_resolve_reports_and_tell_people(client, make_club, ambassador):
    author, reporter = owner(), owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)
    report(client, reporter, post["id"])
    removed = client.post(
        f"{API}/moderation/actions",
        json={"target_type": "post", "target_id": post["id"], "action": "remove", "reason": "ads"},
        headers=ambassador.headers,
    )
    assert removed.status_code == 201
    assert removed.json["before"] == {"status": "visible"}
    assert removed.json["after"] == {"status": "removed"}
    assert Report.objects.get().status == "upheld"
    assert Notification.objects(user_id=reporter.user.pk, template="report_resolved").count() == 1
    assert Notification.objects(user_id=author.user.pk, template="moderation_action").count() == 1
    log = client.get(f"{API}/moderation/actions", headers=ambassador.headers).json["items"]
    assert [(e["action"], e["reason"], e["actor_id"]) for e in log] == [
        ("remove", "ads", ambassador.id)
    ]
    again = client.post(
        f"{API}/moderation/actions",
        json={"target_type": "post", "target_id": post["id"], "action": "remove", "reason": "x"},
        headers=ambassador.headers,
    )
    assert again.status_code == 409 and again.json["error"] == "invalid_transition"
    assert ModerationAction.objects.count() == 1


def test_mute_and_ban(client, make_club, ambassador):
    author = owner()
    club = make_club(members=(author,))
    muted = client.post(
        f"{API}/moderation/actions",
        json={
            "target_type": "user",
            "target_id": author.id,
            "action": "mute",
            "reason": "r",
            "duration_days": 2,
        },
        headers=ambassador.headers,
    )
    assert muted.status_code == 201
    refused = client.post(
        f"{API}/clubs/{club.pk}/posts", json={"body": "x"}, headers=author.headers
    )
    assert refused.status_code == 403 and refused.json["error"] == "muted" and refused.json["until"]
    banned = client.post(
        f"{API}/moderation/actions",
        json={"target_type": "user", "target_id": author.id, "action": "ban", "reason": "r"},
        headers=ambassador.headers,
    )
    assert banned.status_code == 201
    assert User.objects.get(pk=author.user.pk).banned_until is not None
    locked = client.get(f"{API}/feed", headers=author.headers)
    assert locked.status_code == 403 and locked.json["error"] == "account_banned"
    login = client.post(
        f"{API}/auth/login", json={"email": author.user.email, "password": "password-123"}
    )
    assert login.status_code == 403 and login.json["error"] == "account_banned"


def test_nobody_moderates_or_features_their_own(client, make_club):
    ambassador_member = make_person("SZ", role="ambassador")
    club = make_club(members=(ambassador_member,))
    post = post_in(client, club, ambassador_member)
    own = client.post(
        f"{API}/moderation/actions",
        json={"target_type": "post", "target_id": post["id"], "action": "hide", "reason": "r"},
        headers=ambassador_member.headers,
    )
    assert own.status_code == 403 and own.json["error"] == "own_content"
    featured = client.post(f"{API}/posts/{post['id']}/feature", headers=ambassador_member.headers)
    assert featured.status_code == 403 and featured.json["error"] == "own_content"


def test_only_admins_act_on_staff_accounts(client, make_club, ambassador):
    """A city's moderator cannot silence its leaders, a fellow ambassador or HQ; their
    content is moderated like anyone's."""
    leader = make_person("SZ", role="circle_leader")
    fellow = make_person("SZ", role="ambassador")
    admin = make_person("SZ", role="admin")
    club = make_club(members=(leader,))
    post = post_in(client, club, leader)
    for staff in (leader, fellow, admin):
        for action in ("warn", "mute", "ban", "restore"):
            refused = _act(client, ambassador, "user", staff.id, action)
            assert refused.status_code == 403 and refused.json["error"] == "staff_account"
    for action in ("warn", "mute", "ban"):
        assert _act(client, ambassador, "post", post["id"], action).json["error"] == (
            "staff_account"
        )
    assert ModerationAction.objects.count() == 0
    assert User.objects(banned_until__ne=None).count() == 0
    assert _act(client, ambassador, "post", post["id"], "hide").status_code == 201
    banned = _act(client, admin, "user", leader.id, "ban")
    assert banned.status_code == 201
    assert User.objects.get(pk=leader.user.pk).banned_until is not None


def test_featuring_pins_once(client, make_club, ambassador):
    author = owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)
    for _ in range(2):
        featured = client.post(f"{API}/posts/{post['id']}/feature", headers=ambassador.headers)
        assert featured.status_code == 200 and featured.json["featured"] is True
    stories = client.get(f"{API}/clubs/{club.pk}/posts?featured=true", headers=author.headers)
    assert [p["id"] for p in stories.json["items"]] == [post["id"]]
    assert OutboxEvent.objects(type="post.featured").count() == 1


def _act(client, who, target_type, target_id, action, **extra):
    return client.post(
        f"{API}/moderation/actions",
        json={
            "target_type": target_type,
            "target_id": target_id,
            "action": action,
            "reason": "r",
            **extra,
        },
        headers=who.headers,
    )


def test_a_national_clubs_content_belongs_to_its_authors_city(client, admin, ambassador):
    national = clubs.create_club(load_caller(admin.id), name="Camping", kind="interest")
    author = owner("CD")
    clubs.join(load_caller(author.id), str(national.pk))
    post = post_in(client, national, author)
    assert post["city_code"] == "CD"
    assert _act(client, ambassador, "post", post["id"], "hide").status_code == 404
    chengdu = make_person("CD", role="ambassador")
    assert _act(client, chengdu, "post", post["id"], "hide").status_code == 201


def test_reported_comments_are_hidden_and_uncounted_restore_lifts_a_mute(
    client, make_club, ambassador
):
    author, commenter = owner(), owner()
    club = make_club(members=(author, commenter))
    post = post_in(client, club, author)
    comment = client.post(
        f"{API}/posts/{post['id']}/comments", json={"body": "rude"}, headers=commenter.headers
    ).json
    for reporter in (established(club), established(club)):
        assert report(client, reporter, comment["id"], "comment").status_code == 201
    assert (
        client.get(f"{API}/posts/{post['id']}", headers=author.headers).json["comment_count"] == 0
    )
    assert (
        client.get(f"{API}/posts/{post['id']}/comments", headers=author.headers).json["items"] == []
    )
    assert _act(client, ambassador, "comment", comment["id"], "mute").status_code == 201
    muted = client.post(
        f"{API}/posts/{post['id']}/comments", json={"body": "again"}, headers=commenter.headers
    )
    assert muted.status_code == 403 and muted.json["error"] == "muted"
    lifted = _act(client, ambassador, "user", commenter.id, "restore")
    assert lifted.status_code == 201 and lifted.json["after"]["muted_until"] is None
    again = client.post(
        f"{API}/posts/{post['id']}/comments", json={"body": "sorry"}, headers=commenter.headers
    )
    assert again.status_code == 201
    # The mute was upheld on the comment's reports: both reporters were told.
    assert Report.objects(status="upheld").count() == 2


def test_bad_moderation_input_is_refused_cleanly(client, make_club, ambassador):
    author = owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)
    assert _act(client, ambassador, "user", author.id, "remove").status_code == 422
    assert _act(client, ambassador, "post", post["id"], "ban", duration_days=0).status_code == 422
    assert _act(client, ambassador, "post", post["id"], "ban", duration_days=1.5).status_code == 422
    assert _act(client, ambassador, "post", "nope", "hide").status_code == 404
    assert _act(client, ambassador, "post", post["id"], "explode").status_code == 422
    assert ModerationAction.objects.count() == 0
    assert User.objects.get(pk=author.user.pk).banned_until is None


def test_an_owner_moderating_or_featuring_visible_content_is_forbidden(client, make_club):
    # Who may moderate is no secret: an owner holding no ambassador role is refused 403, as
    # the API guide says, while an ambassador of another city does not see SZ's content.
    author, bystander = owner(), owner()
    club = make_club(members=(author,))
    post = post_in(client, club, author)
    action = {"target_type": "post", "target_id": post["id"], "action": "hide", "reason": "x"}
    refused = client.post(f"{API}/moderation/actions", json=action, headers=bystander.headers)
    assert refused.status_code == 403 and refused.json["error"] == "forbidden"
    featured = client.post(f"{API}/posts/{post['id']}/feature", headers=bystander.headers)
    assert featured.status_code == 403 and featured.json["error"] == "forbidden"
    elsewhere = make_person("CD", role="ambassador")
    hidden = client.post(f"{API}/moderation/actions", json=action, headers=elsewhere.headers)
    assert hidden.status_code == 404
    assert Post.objects.get(pk=post["id"]).status == "visible"


def test_a_mute_stops_likes_joins_and_the_weight_of_reports(client, make_club, ambassador):
    """Issue 20, finding 4: a muted owner still reported (counted), liked, joined, rejoined."""
    author = owner()
    club, other_club = make_club(members=(author,)), make_club(name="Photography")
    post = post_in(client, club, author)
    muted = established(club)
    early = report(client, muted, post["id"])
    assert early.json["weight"] == 2.0
    assert _act(client, ambassador, "user", muted.id, "mute", duration_days=3).status_code == 201
    stopped = Report.objects.get(pk=early.json["id"])  # it stops counting
    assert (stopped.weight, stopped.weight_reason) == (0.0, "muted")
    for refused in (
        client.put(f"{API}/posts/{post['id']}/reactions/like", headers=muted.headers),
        client.post(f"{API}/clubs/{other_club.pk}/members", headers=muted.headers),
    ):
        assert refused.status_code == 403 and refused.json["error"] == "muted", refused.json
        assert refused.json["until"]
    assert (
        client.delete(f"{API}/clubs/{club.pk}/members/me", headers=muted.headers).status_code == 204
    )
    rejoin = client.post(f"{API}/clubs/{club.pk}/members", headers=muted.headers)
    assert rejoin.status_code == 403 and rejoin.json["error"] == "muted"
    other = post_in(client, club, author, "another")
    late = report(client, muted, other["id"])
    assert late.status_code == 201
    assert (late.json["weight"], late.json["weight_reason"]) == (0.0, "muted")
    # A ban stops the open reports of the banned too.
    banned = established(club)
    report(client, banned, other["id"])
    assert _act(client, ambassador, "user", banned.id, "ban").status_code == 201
    assert Report.objects.get(reporter_id=banned.user.pk).weight_reason == "banned"


def test_deleted_content_stays_in_the_queue_and_takes_actions(client, make_club, ambassador):
    """Issue 20, finding 3: deleting reported content made it unmoderatable (404)."""
    author = owner()
    club = make_club(members=(author,))
    upheld, dismissed = post_in(client, club, author), post_in(client, club, author, "fine")
    for post in (upheld, dismissed):
        assert report(client, established(club), post["id"]).status_code == 201
        assert client.delete(f"{API}/posts/{post['id']}", headers=author.headers).status_code == 204
    queue = client.get(f"{API}/moderation/queue", headers=ambassador.headers).json["items"]
    assert {(item["target_id"], item["status"]) for item in queue} == {
        (upheld["id"], "deleted"),
        (dismissed["id"], "deleted"),
    }
    removed = _act(client, ambassador, "post", upheld["id"], "remove")
    assert removed.status_code == 201 and removed.json["before"] == {"status": "deleted"}
    assert _act(client, ambassador, "post", upheld["id"], "mute").status_code == 201
    restored = _act(client, ambassador, "post", dismissed["id"], "restore")
    assert restored.status_code == 201 and restored.json["after"] == {"status": "deleted"}
    assert _act(client, ambassador, "post", dismissed["id"], "hide").status_code == 409
    assert {r.target_id: r.status for r in Report.objects} == {
        upheld["id"]: "upheld",
        dismissed["id"]: "rejected",
    }
    assert Post.objects.get(pk=dismissed["id"]).status == "deleted"
    assert client.get(f"{API}/moderation/queue", headers=ambassador.headers).json["items"] == []
    # Nobody reports what its author deleted, though: it is gone for them.
    assert report(client, established(club), dismissed["id"]).status_code == 422
