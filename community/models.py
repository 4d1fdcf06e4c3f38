"""Owner clubs, their members, posts, comments and likes, and the moderation records:
reports, actions (the audit log), owners' standing and the sensitive-word list.

Counters (`Club.member_count`, `Post.like_count`, `Post.comment_count`) change only in the
same transaction as the membership, like or comment that they count, with a conditional
update, so they equal the truth under any interleaving of concurrent requests.

Every query filter names fields of one index (SecantusDB scans the whole collection for a
filter with a field its index lacks); lists are ordered by `_id`, which grows with time.
"""

from __future__ import annotations

from mongoengine import (
    BooleanField,
    DateTimeField,
    DictField,
    Document,
    FloatField,
    IntField,
    ListField,
    ObjectIdField,
    StringField,
)

from app.clock import utcnow

CITY_CLUB = "city"
MODEL_CLUB = "model"
INTEREST_CLUB = "interest"
CLUB_KINDS = (CITY_CLUB, MODEL_CLUB, INTEREST_CLUB)

OPEN = "open"
APPROVAL = "approval"
VERIFIED_OWNERS = "verified_owners"
JOIN_POLICIES = (OPEN, APPROVAL, VERIFIED_OWNERS)

ACTIVE = "active"
PENDING = "pending"
MEMBERSHIP_STATUSES = (ACTIVE, PENDING)
MEMBER = "member"
MODERATOR = "moderator"

VISIBLE = "visible"
HELD = "held"
HIDDEN = "hidden"
REMOVED = "removed"
DELETED = "deleted"
CONTENT_STATUSES = (VISIBLE, HELD, HIDDEN, REMOVED, DELETED)

POST = "post"
COMMENT = "comment"
USER = "user"
TARGET_TYPES = (POST, COMMENT, USER)

OPEN_REPORT = "open"
UPHELD = "upheld"
REJECTED = "rejected"
REPORT_STATUSES = (OPEN_REPORT, UPHELD, REJECTED)

HIDE = "hide"
RESTORE = "restore"
REMOVE = "remove"
WARN = "warn"
MUTE = "mute"
BAN = "ban"
# Dismiss the reports: the content stays (held or hidden content is published), the
# account is left alone.
KEEP = "keep"
ACTIONS = (KEEP, HIDE, RESTORE, REMOVE, WARN, MUTE, BAN)
# The audit log also records an undo of a decision (`community.moderation.undo_action`).
UNDO = "undo"
AUDITED_ACTIONS = (*ACTIONS, UNDO)

MAX_BODY = 5000
MAX_IMAGES = 9
# What an erased owner's posts and comments say instead of what they wrote.
ERASED_BODY = "[deleted]"
ERASED_NAME = "Deleted user"


class Club(Document):
    name = StringField(required=True, max_length=100)
    description = StringField(default="", max_length=2000)
    kind = StringField(required=True, choices=CLUB_KINDS)
    # None: a national club, created by admins.
    city_code = StringField()
    join_policy = StringField(required=True, default=OPEN, choices=JOIN_POLICIES)
    # Active members; changed only with the membership write, in its transaction.
    member_count = IntField(required=True, default=0, min_value=0)
    created_by = ObjectIdField()
    created_at = DateTimeField(default=utcnow)

    meta = {"collection": "clubs", "indexes": [("city_code", "-id")]}


class Membership(Document):
    club_id = ObjectIdField(required=True)
    user_id = ObjectIdField(required=True)
    status = StringField(required=True, choices=MEMBERSHIP_STATUSES)
    role = StringField(required=True, default=MEMBER, choices=(MEMBER, MODERATOR))
    # The club's city (None: national), so that a post costs no read of the club.
    city_code = StringField()
    # A copy of the owner's mute (`Standing.muted_until`), read with the membership when
    # they post or comment.
    muted_until = DateTimeField()
    created_at = DateTimeField(default=utcnow)
    joined_at = DateTimeField()

    meta = {
        "collection": "memberships",
        "indexes": [
            {"fields": ["club_id", "user_id"], "unique": True},
            ("club_id", "status", "id"),
            ("user_id", "status", "id"),
            ("user_id",),
        ],
    }


class Post(Document):
    club_id = ObjectIdField(required=True)
    # The content's city: its club's, or in a national club its author's. Ambassadors of
    # this city moderate it.
    city_code = StringField()
    # None once the author erased their account.
    author_id = ObjectIdField()
    author_name = StringField(required=True)
    body = StringField(required=True, max_length=MAX_BODY)
    image_urls = ListField(StringField(), default=list)
    status = StringField(required=True, default=VISIBLE, choices=CONTENT_STATUSES)
    like_count = IntField(required=True, default=0, min_value=0)
    comment_count = IntField(required=True, default=0, min_value=0)
    # "<club id>:<UTC day of its id>" while visible, else None: what lists of posts look
    # up, the days `PostDays` names (`community.feed`).
    feed_key = StringField()
    # An owner story: pinned in its club by an ambassador.
    featured = BooleanField(required=True, default=False)
    featured_by = ObjectIdField()
    featured_at = DateTimeField()
    # False when its author was staff when it was featured: staff earn nothing from another
    # staff member's action (docs/product.md invariant 10).
    feature_pays = BooleanField(required=True, default=True)
    # First made visible (held content is not, until an ambassador releases it): a post
    # earns its points once published, and loses them only then.
    published_at = DateTimeField()
    # How often moderation removed it.
    removals = IntField(required=True, default=0)
    # Counts the domain events that carry what the post owes its author (`points_owed`):
    # loyalty applies the newest it has seen, so late and reordered events converge.
    points_version = IntField(required=True, default=0)
    created_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "posts",
        "indexes": [
            # The feed and a club's posts (`community.feed`); a club's owner stories.
            ("feed_key",),
            ("club_id", "featured", "status", "-id"),
            ("author_id", "-id"),
            # Held posts wait in the review queue.
            ("status", "city_code", "-id"),
        ],
    }


class PostDays(Document):
    """How many posts a club has had on each UTC day, whatever became of them, so never
    fewer than it shows: a page of the feed reads these for the caller's clubs, learns
    which days of which clubs hold its posts, and then reads just those
    (`community.feed`). Written with each post, in its transaction."""

    # The club's id.
    id = ObjectIdField(primary_key=True)
    # "<day>:<posts>," for each earlier day with posts, oldest first: one string rather
    # than a document of days, which SecantusDB would decode and copy key by key on
    # every feed read.
    days = StringField(required=True, default="")
    # The day of the club's newest posts, and how many it has so far.
    last_day = IntField()
    last_count = IntField()

    meta = {"collection": "club_post_days", "indexes": []}


class Comment(Document):
    post_id = ObjectIdField(required=True)
    club_id = ObjectIdField(required=True)
    city_code = StringField()
    author_id = ObjectIdField()
    author_name = StringField(required=True)
    body = StringField(required=True, max_length=MAX_BODY)
    status = StringField(required=True, default=VISIBLE, choices=CONTENT_STATUSES)
    published_at = DateTimeField()
    removals = IntField(required=True, default=0)
    # On a post of its own author's: it earns nothing (commenting on one's own post would
    # farm points).
    on_own_post = BooleanField(required=True, default=False)
    points_version = IntField(required=True, default=0)
    created_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "comments",
        "indexes": [
            ("post_id", "status", "id"),
            ("author_id", "-id"),
            ("status", "city_code", "-id"),
        ],
    }


class Like(Document):
    post_id = ObjectIdField(required=True)
    user_id = ObjectIdField(required=True)
    created_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "likes",
        "indexes": [{"fields": ["post_id", "user_id"], "unique": True}],
    }


class Report(Document):
    reporter_id = ObjectIdField(required=True)
    target_type = StringField(required=True, choices=TARGET_TYPES)
    target_id = StringField(required=True)
    # The target's city (content: its city; a user: their home city), for the queue.
    city_code = StringField()
    # The content's club (none for a user), so the review desk filters by club.
    club_id = ObjectIdField()
    reason = StringField(required=True, max_length=500)
    # The reason holds a listed sensitive word: flagged for the ambassadors who read it.
    reason_held = BooleanField(required=True, default=False)
    weight = FloatField(required=True)
    # Why it weighs nothing (`community.reports.reporter_weight`): new_account, muted,
    # banned, not_member, no_visible_content; None when it weighs.
    weight_reason = StringField()
    # The reporter's client fingerprint while open: one client, one voice on a target.
    client_fingerprint = StringField()
    status = StringField(required=True, default=OPEN_REPORT, choices=REPORT_STATUSES)
    # "reporter:type:target" while open, unset once resolved: one open report per reporter
    # and target, also under concurrent submissions.
    open_key = StringField(unique=True, sparse=True)
    created_at = DateTimeField(default=utcnow)
    resolved_at = DateTimeField()
    resolved_by = ObjectIdField()
    # The moderation action that resolved it: undoing that action opens it again.
    resolved_action_id = ObjectIdField()

    meta = {
        "collection": "reports",
        "indexes": [
            ("target_type", "target_id", "status"),
            ("status", "city_code"),
            ("reporter_id", "-id"),
        ],
    }


class ModerationAction(Document):
    """The audit log: written in the transaction of the change it records."""

    actor_id = ObjectIdField(required=True)
    target_type = StringField(required=True, choices=TARGET_TYPES)
    target_id = StringField(required=True)
    city_code = StringField()
    # The account the decision concerns: a content's author, or the user targeted (the
    # author's history on the review desk counts their earlier decisions).
    account_id = ObjectIdField()
    action = StringField(required=True, choices=AUDITED_ACTIONS)
    reason = StringField(required=True, max_length=500)
    duration_days = IntField()
    before = DictField()
    after = DictField()
    # The item's version this decision made (`Reviewable.version`).
    version = IntField()
    # One bulk decision's entries share its id; each is audited on its own.
    batch_id = ObjectIdField()
    # What undoing it puts back, beyond `before` (`community.moderation.undo_action`):
    # the fields the change set and the reports it resolved. Not shown in the log.
    undo = DictField()
    # An undo names the decision it undid; an undone decision, its undo.
    undoes = ObjectIdField()
    undone_by_action = ObjectIdField()
    undone_at = DateTimeField()
    created_at = DateTimeField(default=utcnow)

    meta = {
        "collection": "moderation_actions",
        "indexes": [
            ("city_code", "-id"),
            # The audit log by ambassador, by account and by target.
            ("actor_id", "-id"),
            ("account_id", "-id"),
            ("target_type", "target_id", "-id"),
        ],
    }


class Reviewable(Document):
    """One target of the review desk (a post, comment or account), as Discourse keeps a
    reviewable: the version every decision on it counts, so that of two ambassadors
    deciding at once one wins and the other is told who did; its claim; and its last
    decision. Written in the transaction of each decision and undo; absent until the
    first claim or decision (version 0)."""

    # "<target type>:<target id>".
    id = StringField(primary_key=True)
    version = IntField(required=True, default=0)
    claimed_by = ObjectIdField()
    claimed_until = DateTimeField()
    last_action_id = ObjectIdField()
    last_action = StringField()
    decided_by = ObjectIdField()
    decided_at = DateTimeField()

    meta = {"collection": "reviewables", "indexes": []}


class Standing(Document):
    """An owner's record in the community: their mute, and how their reports fared (which
    weighs their next reports)."""

    user_id = ObjectIdField(required=True, unique=True)
    muted_until = DateTimeField()
    warnings = IntField(default=0)
    reports_resolved = IntField(default=0)
    reports_upheld = IntField(default=0)

    meta = {"collection": "community_standings", "indexes": []}


class SensitiveWord(Document):
    word = StringField(required=True, max_length=100)
    # The word as matching sees it (`community.words.normalise`): one entry per form.
    normalised = StringField(required=True, unique=True)
    created_by = ObjectIdField()
    created_at = DateTimeField(default=utcnow)

    meta = {"collection": "sensitive_words", "indexes": []}


class WordListVersion(Document):
    """One document counting changes to the sensitive-word list: each process rebuilds its
    matcher when the count moved."""

    id = StringField(primary_key=True, default="sensitive_words")
    version = IntField(required=True, default=0)

    meta = {"collection": "sensitive_word_versions", "indexes": []}
