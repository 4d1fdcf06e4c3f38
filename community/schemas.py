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


class QueueItemSchema(Schema):
    target_type = fields.String()
    target_id = fields.String()
    city_code = fields.String(allow_none=True)
    weight = fields.Float(metadata={"description": "Sum of the open reports' weights"})
    reports = fields.Integer()
    reasons = fields.List(fields.String())
    first_reported_at = Rfc3339DateTime()
    status = fields.String(
        allow_none=True, metadata={"description": "The content's status (held content too)"}
    )
    content = fields.Dict(allow_none=True)


class QueueSchema(Schema):
    items = fields.List(fields.Nested(QueueItemSchema))


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


class SensitiveWordCreateSchema(Schema):
    word = Text(100, required=True)


class SensitiveWordSchema(Schema):
    id = fields.String()
    word = fields.String()
    normalised = fields.String()
    created_at = Rfc3339DateTime()
