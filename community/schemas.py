from __future__ import annotations

from marshmallow import fields, validate

from app.fields import CityCode, NotEmpty, Rfc3339DateTime, Text
from app.web import PageArgsSchema, Schema, StrictInteger, sometimes_absent
from community.models import (
    ACTIONS,
    CLUB_KINDS,
    JOIN_POLICIES,
    MAX_BODY,
    MAX_IMAGES,
    MEMBERSHIP_STATUSES,
    TARGET_TYPES,
)
from community.moderation import BULK_ACTIONS, MAX_BULK
from community.review_queue import QUEUE_REASONS, SORTS

# A mute or a ban lasts from a day to ten years.
MAX_DURATION_DAYS = 3650


# --- clubs -----------------------------------------------------------------------------


class ClubCreateSchema(Schema):
    name = Text(100, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(CLUB_KINDS))
    city_code = CityCode(
        load_default=None, allow_none=True, metadata={"description": "null: a national club"}
    )
    join_policy = fields.String(load_default="open", validate=validate.OneOf(JOIN_POLICIES))
    description = Text(2000, multiline=True, blank=True, load_default="")


class ClubUpdateSchema(NotEmpty, Schema):
    name = Text(100)
    description = Text(2000, multiline=True, blank=True)
    join_policy = fields.String(validate=validate.OneOf(JOIN_POLICIES))


class ClubListArgsSchema(PageArgsSchema):
    city = CityCode()
    # Text: a control character (a NUL) is refused, never handed to the database's regex.
    q = Text(100, metadata={"description": "Part of the name"})


class MemberListArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(MEMBERSHIP_STATUSES))


class MembershipSchema(Schema):
    id = fields.String()
    club_id = fields.String()
    user_id = fields.String()
    status = fields.String()
    role = fields.String(metadata={"description": "member or moderator"})
    created_at = Rfc3339DateTime()
    joined_at = Rfc3339DateTime(allow_none=True)


class ClubSchema(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String()
    kind = fields.String()
    city_code = fields.String(allow_none=True)
    join_policy = fields.String()
    member_count = fields.Integer(metadata={"description": "Active members"})
    created_at = Rfc3339DateTime()
    my_membership = sometimes_absent(
        fields.Nested(
            MembershipSchema,
            allow_none=True,
            metadata={"description": "The caller's membership; null when they have none"},
        ),
        when="from the club list (`GET /clubs`)",
    )


# --- posts, comments, likes ------------------------------------------------------------


class PostCreateSchema(Schema):
    body = Text(MAX_BODY, multiline=True, required=True)
    image_urls = fields.List(
        fields.Url(schemes={"https"}, validate=validate.Length(max=2000)),
        load_default=list,
        validate=validate.Length(max=MAX_IMAGES),
        metadata={"description": f"At most {MAX_IMAGES} https URLs"},
    )


class CommentCreateSchema(Schema):
    body = Text(MAX_BODY, multiline=True, required=True)


class ClubPostArgsSchema(PageArgsSchema):
    featured = fields.Boolean(metadata={"description": "true: the club's owner stories only"})


class PostSchema(Schema):
    id = fields.String()
    club_id = fields.String()
    city_code = fields.String(allow_none=True)
    author_id = fields.String(allow_none=True, metadata={"description": "null once erased"})
    author_name = fields.String()
    body = fields.String()
    image_urls = fields.List(fields.String())
    status = fields.String(metadata={"description": "visible, held, hidden, removed, deleted"})
    like_count = fields.Integer()
    comment_count = fields.Integer()
    featured = fields.Boolean(metadata={"description": "An owner story, pinned in its club"})
    featured_at = Rfc3339DateTime(allow_none=True)
    created_at = Rfc3339DateTime()


class CommentSchema(Schema):
    id = fields.String()
    post_id = fields.String()
    author_id = fields.String(allow_none=True)
    author_name = fields.String()
    body = fields.String()
    status = fields.String()
    created_at = Rfc3339DateTime()


class LikeSchema(Schema):
    post_id = fields.String()
    liked = fields.Boolean()
    like_count = fields.Integer()


# --- reports and moderation ------------------------------------------------------------


class ReportCreateSchema(Schema):
    target_type = fields.String(required=True, validate=validate.OneOf(TARGET_TYPES))
    target_id = fields.String(required=True, validate=validate.Length(1, 64))
    reason = Text(500, required=True)


class ReportSchema(Schema):
    id = fields.String()
    target_type = fields.String()
    target_id = fields.String()
    reason = fields.String()
    reason_held = fields.Boolean(
        metadata={"description": "The reason holds a listed sensitive word (flagged for review)"}
    )
    weight = fields.Float(metadata={"description": "What the report counts towards hiding"})
    weight_reason = fields.String(
        allow_none=True,
        metadata={
            "description": "Why it weighs nothing until a person decides it: new_account, "
            "muted, banned, not_member, no_visible_content; null when it weighs"
        },
    )
    status = fields.String(metadata={"description": "open, upheld, rejected"})
    created_at = Rfc3339DateTime()
    resolved_at = Rfc3339DateTime(allow_none=True)


class CityArgsSchema(PageArgsSchema):
    city = CityCode()


class QueueArgsSchema(CityArgsSchema):
    club = fields.String(validate=validate.Length(1, 64), metadata={"description": "A club id"})
    kind = fields.String(
        validate=validate.OneOf(TARGET_TYPES), metadata={"description": "post, comment or user"}
    )
    reason = fields.String(
        validate=validate.OneOf(QUEUE_REASONS),
        metadata={
            "description": "held (a listed word), hidden (by reports) or reported (open reports)"
        },
    )
    sort = fields.String(
        load_default="heaviest",
        validate=validate.OneOf(SORTS),
        metadata={"description": "heaviest (reports' weight) or newest (latest activity) first"},
    )
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=100))


class QueueReportSchema(Schema):
    id = fields.String()
    reporter_id = fields.String()
    reporter_name = fields.String(allow_none=True)
    reporter_verified = fields.Boolean()
    weight = fields.Float()
    weight_reason = fields.String(allow_none=True)
    reason = fields.String()
    reason_held = fields.Boolean()
    status = fields.String(metadata={"description": "open, upheld, rejected"})
    reports_decided = fields.Integer(
        metadata={"description": "The reporter's reports decided so far"}
    )
    reports_upheld = fields.Integer(metadata={"description": "Of those, upheld"})
    created_at = Rfc3339DateTime()


class AuthorDecisionSchema(Schema):
    action = fields.String()
    reason = fields.String(allow_none=True)
    created_at = Rfc3339DateTime()
    undone = fields.Boolean()


class QueueAccountSchema(Schema):
    """The author's (or the reported account's) history."""

    id = fields.String()
    display_name = fields.String()
    joined_at = Rfc3339DateTime()
    verified_owner = fields.Boolean()
    staff = fields.Boolean(metadata={"description": "Holds a staff role: only admins silence it"})
    muted_until = Rfc3339DateTime(allow_none=True)
    banned_until = Rfc3339DateTime(allow_none=True)
    warnings = fields.Integer()
    decisions = fields.Integer(metadata={"description": "Earlier decisions, undone ones left out"})
    recent_decisions = fields.List(fields.Nested(AuthorDecisionSchema))
    content_points = fields.Integer(
        metadata={"description": "What the account's posts and comments pay it now"}
    )


class ClaimSchema(Schema):
    claimed_by = fields.String()
    claimed_by_name = fields.String(allow_none=True)
    claimed_until = Rfc3339DateTime()
    mine = fields.Boolean()


class LastDecisionSchema(Schema):
    action = fields.String(allow_none=True)
    decided_by = fields.String()
    decided_by_name = fields.String(allow_none=True)
    decided_at = Rfc3339DateTime(allow_none=True)


class QueueItemSchema(Schema):
    target_type = fields.String()
    target_id = fields.String()
    city_code = fields.String(allow_none=True)
    weight = fields.Float(metadata={"description": "Sum of the open reports' weights"})
    reports = fields.Integer()
    reasons = fields.List(fields.String())
    first_reported_at = Rfc3339DateTime()
    status = fields.String(
        allow_none=True,
        metadata={
            "description": "The content's status (held content too); an account's: active, "
            "muted, banned"
        },
    )
    content = fields.Dict(allow_none=True)
    queue_reasons = fields.List(
        fields.String(validate=validate.OneOf(QUEUE_REASONS)),
        metadata={"description": "Why the item waits: held, hidden, reported"},
    )
    club_id = fields.String(allow_none=True)
    club_name = fields.String(allow_none=True)
    last_activity_at = Rfc3339DateTime()
    report_details = fields.List(
        fields.Nested(QueueReportSchema),
        metadata={"description": "The open reports, heaviest first (at most 20)"},
    )
    account = fields.Nested(QueueAccountSchema, allow_none=True)
    version = fields.Integer(
        metadata={"description": "Send it with a decision: one on an older version is refused"}
    )
    claim = fields.Nested(ClaimSchema, allow_none=True)
    last_decision = fields.Nested(LastDecisionSchema, allow_none=True)
    actions = fields.List(
        fields.String(validate=validate.OneOf(ACTIONS)),
        metadata={"description": "The decisions the caller may make on the item now"},
    )


class QueueSchema(Schema):
    items = fields.List(fields.Nested(QueueItemSchema))


class ItemSchema(QueueItemSchema):
    decisions = fields.List(
        fields.Nested(lambda: ActionSchema()),
        metadata={"description": "Every decision on the item, undos included, oldest first"},
    )


class ClaimedItemSchema(Schema):
    target_type = fields.String()
    target_id = fields.String()
    version = fields.Integer()
    claimed_by = fields.String()
    claimed_until = Rfc3339DateTime()


class ActionCreateSchema(Schema):
    target_type = fields.String(required=True, validate=validate.OneOf(TARGET_TYPES))
    target_id = fields.String(required=True, validate=validate.Length(1, 64))
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))
    reason = Text(500, required=True)
    duration_days = StrictInteger(
        load_default=None,
        allow_none=True,
        validate=validate.Range(1, MAX_DURATION_DAYS),
        metadata={"description": "mute and ban: how long (a ban without it: 10 years)"},
    )
    version = StrictInteger(
        load_default=None,
        allow_none=True,
        validate=validate.Range(0, 2**31),
        metadata={
            "description": "The item's version the decision was made on (the queue's "
            "`version`): when someone decided it since, 409 `already_decided`"
        },
    )


class ActionSchema(Schema):
    id = fields.String()
    actor_id = fields.String()
    target_type = fields.String()
    target_id = fields.String()
    city_code = fields.String(allow_none=True)
    action = fields.String()
    reason = fields.String()
    duration_days = fields.Integer(allow_none=True)
    before = fields.Dict()
    after = fields.Dict()
    created_at = Rfc3339DateTime()
    account_id = fields.String(allow_none=True, metadata={"description": "The account concerned"})
    version = fields.Integer(allow_none=True, metadata={"description": "The item's version made"})
    batch_id = fields.String(allow_none=True, metadata={"description": "Its bulk decision"})
    undoes = fields.String(allow_none=True, metadata={"description": "An undo: what it undid"})
    undone_at = Rfc3339DateTime(allow_none=True)
    undone_by_action = fields.String(allow_none=True)


class AuditArgsSchema(CityArgsSchema):
    actor = fields.String(
        validate=validate.Length(1, 64), metadata={"description": "An ambassador's (or admin's) id"}
    )
    account = fields.String(
        validate=validate.Length(1, 64),
        metadata={"description": "An account's id: decisions on it and on its content"},
    )
    target_type = fields.String(validate=validate.OneOf(TARGET_TYPES))
    target_id = fields.String(validate=validate.Length(1, 64))


class UndoSchema(Schema):
    reason = Text(500, blank=True, load_default="")


class BulkItemSchema(Schema):
    target_id = fields.String(required=True, validate=validate.Length(1, 64))
    version = StrictInteger(load_default=None, allow_none=True, validate=validate.Range(0, 2**31))


class BulkActionCreateSchema(Schema):
    target_type = fields.String(required=True, validate=validate.OneOf(TARGET_TYPES))
    action = fields.String(required=True, validate=validate.OneOf(BULK_ACTIONS))
    reason = Text(500, required=True)
    items = fields.List(
        fields.Nested(BulkItemSchema),
        required=True,
        validate=validate.Length(1, MAX_BULK),
    )


class BulkRefusalSchema(Schema):
    target_id = fields.String()
    status = fields.Integer()
    error = fields.String()
    message = fields.String()


class BulkResultSchema(Schema):
    batch_id = fields.String()
    applied = fields.List(fields.Nested(ActionSchema))
    refused = fields.List(fields.Nested(BulkRefusalSchema))


class WordTestSchema(Schema):
    text = Text(5000, multiline=True, required=True)


class WordMatchSchema(Schema):
    listed = fields.String(metadata={"description": "The listed word as matching stores it"})
    word = fields.String(allow_none=True, metadata={"description": "As it was listed"})
    word_id = fields.String(allow_none=True)


class WordTestResultSchema(Schema):
    reading = fields.String(metadata={"description": "The text as the filter reads it"})
    normalised = fields.String(metadata={"description": "Its letters, without separators"})
    held = fields.Boolean(metadata={"description": "Whether a post with it would be held"})
    matches = fields.List(fields.Nested(WordMatchSchema))


class SensitiveWordCreateSchema(Schema):
    word = Text(100, required=True)


class SensitiveWordSchema(Schema):
    id = fields.String()
    word = fields.String()
    normalised = fields.String()
    created_at = Rfc3339DateTime()
    created_by = fields.String(allow_none=True, metadata={"description": "The admin who listed it"})
