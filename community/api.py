"""Owner clubs, posts and moderation over HTTP: thin views over the community services."""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, g
from flask.views import MethodView

from accounts.errors import UnknownCity
from accounts.services import AMBASSADOR
from app.auth import caller
from app.errors import ContainsSensitiveWord, Forbidden, NotFound, RateLimited
from app.extensions import limiter
from app.idempotency import idempotent
from app.web import Blueprint, PageArgsSchema, page_of
from community import clubs, errors, moderation, posts, reports, review_queue, reviewables, words
from community.schemas import (
    ActionCreateSchema,
    ActionSchema,
    AuditArgsSchema,
    BulkActionCreateSchema,
    BulkResultSchema,
    ClaimedItemSchema,
    ClubCreateSchema,
    ClubListArgsSchema,
    ClubPostArgsSchema,
    ClubSchema,
    ClubUpdateSchema,
    CommentCreateSchema,
    CommentSchema,
    ItemSchema,
    LikeSchema,
    MemberListArgsSchema,
    MembershipSchema,
    PostCreateSchema,
    PostSchema,
    QueueArgsSchema,
    QueueSchema,
    ReportCreateSchema,
    ReportSchema,
    SensitiveWordCreateSchema,
    SensitiveWordSchema,
    UndoSchema,
    WordTestResultSchema,
    WordTestSchema,
)

blp = Blueprint("community", __name__, description="Owner clubs, posts and moderation")
blueprints = (blp,)


def _per_owner(setting: str, scope: str) -> Callable:
    """A per-minute limit on one owner's writes (429 `rate_limited` with Retry-After). On
    the view method, which the Blueprint wraps in `login_required`: the caller is known,
    and the limit is theirs, not their IP's."""
    limit = limiter.limit(
        lambda: current_app.config[setting], key_func=lambda: g.caller.id, scope=scope
    )
    return lambda view: blp.refuses(RateLimited)(limit(view))


# --- clubs -----------------------------------------------------------------------------


@blp.route("/clubs")
class Clubs(MethodView):
    @blp.arguments(ClubListArgsSchema, location="query")
    @blp.response(200, page_of(ClubSchema))
    def get(self, args):
        """Clubs, newest first; `city` and `q` (part of the name) narrow the list"""
        return clubs.list_clubs(args.get("city"), args.get("q"), args["cursor"], args["limit"])

    @idempotent
    @blp.arguments(ClubCreateSchema)
    @blp.response(201, ClubSchema)
    @blp.refuses(Forbidden, UnknownCity, ContainsSensitiveWord)
    def post(self, data):
        """Create a club (the city's circle leaders; national clubs: admins)"""
        return clubs.describe_club(clubs.create_club(caller(), **data))


@blp.route("/clubs/<club_id>")
class ClubItem(MethodView):
    @blp.response(200, ClubSchema)
    def get(self, club_id):
        """One club with its member count and the caller's membership"""
        return clubs.club_details(caller(), club_id)

    @blp.arguments(ClubUpdateSchema)
    @blp.response(200, ClubSchema)
    @blp.refuses(Forbidden, ContainsSensitiveWord)
    def patch(self, changes, club_id):
        """Edit a club's name, description or join policy (its city leaders, admin)"""
        return clubs.describe_club(clubs.update_club(caller(), club_id, changes))


@blp.route("/clubs/<club_id>/members")
class ClubMembers(MethodView):
    @idempotent
    @blp.response(201, MembershipSchema)
    @blp.refuses(errors.NotVerifiedOwner, errors.AlreadyMember, errors.Muted)
    def post(self, club_id):
        """Join: active at once in an open club, pending where the club approves

        `join_policy`: `open` (active at once), `approval` (pending until a club moderator
        or city leader approves), `verified_owners` (403 `not_verified_owner` for others).
        409 `already_member` for a second request.
        """
        return clubs.join(caller(), club_id)

    @blp.arguments(MemberListArgsSchema, location="query")
    @blp.response(200, page_of(MembershipSchema))
    @blp.refuses(Forbidden)
    def get(self, args, club_id):
        """Members (default active) or requests (`status=pending`) of a club"""
        return clubs.club_members(
            caller(), club_id, args.get("status"), args["cursor"], args["limit"]
        )


@blp.route("/clubs/<club_id>/members/me")
class MyClubMembership(MethodView):
    @blp.response(204)
    def delete(self, club_id):
        """Leave a club (or withdraw a request to join)"""
        clubs.leave(caller(), club_id)


@blp.route("/clubs/<club_id>/members/<user_id>/approve")
class ApproveMember(MethodView):
    @blp.response(200, MembershipSchema)
    @blp.refuses(Forbidden, errors.NotPending)
    def post(self, club_id, user_id):
        """Approve a request to join (club moderators, city leaders, admin)"""
        return clubs.approve(caller(), club_id, user_id)


@blp.route("/clubs/<club_id>/members/<user_id>")
class ClubMember(MethodView):
    @blp.response(204)
    @blp.refuses(Forbidden, errors.ModeratorNotRemovable)
    def delete(self, club_id, user_id):
        """Decline a request or remove a member (club moderators, city leaders, admin; a
        moderator: city leaders, admin)"""
        clubs.remove_member(caller(), club_id, user_id)


@blp.route("/clubs/<club_id>/moderators/<user_id>")
class ClubModerator(MethodView):
    @blp.response(200, MembershipSchema)
    @blp.refuses(Forbidden, errors.NotActiveMember)
    def put(self, club_id, user_id):
        """Appoint an active member as the club's moderator (city leaders, admin)"""
        return clubs.set_moderator(caller(), club_id, user_id, True)

    @blp.response(200, MembershipSchema)
    @blp.refuses(Forbidden)
    def delete(self, club_id, user_id):
        """Make a moderator a plain member again (city leaders, admin)"""
        return clubs.set_moderator(caller(), club_id, user_id, False)


@blp.route("/me/clubs")
class MyClubs(MethodView):
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, page_of(ClubSchema))
    def get(self, args):
        """The clubs the caller belongs to or asked to join"""
        return clubs.my_clubs(caller(), args["cursor"], args["limit"])


# --- posts -----------------------------------------------------------------------------


@blp.route("/clubs/<club_id>/posts")
class ClubPosts(MethodView):
    @blp.arguments(ClubPostArgsSchema, location="query")
    @blp.response(200, page_of(PostSchema), lean=True)
    def get(self, args, club_id):
        """A club's visible posts, newest first (`featured=true`: its owner stories)"""
        return posts.club_posts(
            caller(), club_id, args.get("featured"), args["cursor"], args["limit"]
        )

    @idempotent
    @_per_owner("RATELIMIT_POSTS_PER_USER", "posts")
    @blp.arguments(PostCreateSchema)
    @blp.response(201, PostSchema)
    @blp.refuses(errors.NotMember, errors.Muted, errors.NewAccountLimit)
    def post(self, data, club_id):
        """Post in a club (active members); held for review if it has a listed word

        Active members only (403 `not_member`), not while muted (403 `muted`). Limited per
        owner (`RATELIMIT_POSTS_PER_USER`, 5 a minute); an account younger than 24 hours
        posts 3 a day (429 `new_account_limit`). A published post earns its author points
        (5, at most 3 rewarded a day).
        """
        return posts.publish_post(caller(), club_id, data["body"], data["image_urls"])


@blp.route("/feed")
class Feed(MethodView):
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, page_of(PostSchema), lean=True)
    def get(self, args):
        """The visible posts of the caller's clubs, newest first"""
        return posts.feed(caller(), args["cursor"], args["limit"])


@blp.route("/posts/<post_id>")
class PostItem(MethodView):
    @blp.response(200, PostSchema)
    def get(self, post_id):
        """One post (held: its author and moderators only)"""
        return posts.visible_post(caller(), post_id)

    @blp.response(204)
    @blp.refuses(errors.NotAuthor)
    def delete(self, post_id):
        """Delete one's own post"""
        posts.delete_post(caller(), post_id)


@blp.route("/posts/<post_id>/comments")
class PostComments(MethodView):
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, page_of(CommentSchema))
    def get(self, args, post_id):
        """A post's visible comments, oldest first"""
        return posts.post_comments(caller(), post_id, args["cursor"], args["limit"])

    # No claim, so a keyed comment stays at the 5 commands of the write budget (its two
    # reads leave no room for a claim).
    @idempotent(service=posts.add_comment)
    @_per_owner("RATELIMIT_COMMENTS_PER_USER", "comments")
    @blp.arguments(CommentCreateSchema)
    @blp.response(201, CommentSchema)
    @blp.refuses(errors.NotMember, errors.Muted, errors.NewAccountLimit)
    def post(self, data, post_id):
        """Comment on a post (active members of its club); its author is told

        Active members of the post's club only (403 `not_member`), not while muted (403
        `muted`). Limited per owner (`RATELIMIT_COMMENTS_PER_USER`, 20 a minute); an account
        younger than 24 hours comments 10 times a day (429 `new_account_limit`).
        """
        return posts.add_comment(caller(), post_id, data["body"])


@blp.route("/comments/<comment_id>")
class CommentItem(MethodView):
    @blp.response(204)
    @blp.refuses(errors.NotAuthor)
    def delete(self, comment_id):
        """Delete one's own comment"""
        posts.delete_comment(caller(), comment_id)


@blp.route("/posts/<post_id>/reactions/like")
class PostLike(MethodView):
    @_per_owner("RATELIMIT_LIKES_PER_USER", "likes")
    @blp.response(200, LikeSchema)
    @blp.refuses(errors.Muted)
    def put(self, post_id):
        """Like a post (idempotent)"""
        return posts.like(caller(), post_id)

    @_per_owner("RATELIMIT_LIKES_PER_USER", "likes")
    @blp.response(200, LikeSchema)
    def delete(self, post_id):
        """Take a like back (idempotent)"""
        return posts.unlike(caller(), post_id)


@blp.route("/posts/<post_id>/feature")
class FeaturePost(MethodView):
    @blp.response(200, PostSchema)
    @blp.refuses(Forbidden, errors.OwnContent)
    def post(self, post_id):
        """Pin a post in its club as an owner story; its author earns points once

        Ambassadors of the post's city (a national club's post: its author's city) and
        admins; nobody features their own post (403 `own_content`). An owner holding no
        ambassador role is refused 403; a post outside the caller's cities is not found
        (404).
        """
        caller().require_role(AMBASSADOR)
        return moderation.feature_post(caller(), post_id)


# --- reports and moderation ------------------------------------------------------------


@blp.route("/reports")
class Reports(MethodView):
    @idempotent
    @_per_owner("RATELIMIT_REPORTS_PER_USER", "reports")
    @blp.arguments(ReportCreateSchema)
    @blp.response(201, ReportSchema)
    @blp.alt_response(200, schema=ReportSchema, description="Already reported: the open report")
    @blp.refuses(errors.UnknownTarget, errors.SelfReport)
    def post(self, data):
        """Report a post, comment or user; enough weight from two or more reporters hides
        content at once

        One open report per reporter and target: a repeat answers 200 with the open one. A
        report weighs by its reporter's standing (nothing from new, unverified, muted or
        non-member accounts until a person decides); content is hidden pending review once
        open reports from two or more reporters reach `REPORT_HIDE_THRESHOLD`. Limited per
        owner (`RATELIMIT_REPORTS_PER_USER`, 10 a minute).
        """
        report, created = reports.file_report(caller(), **data)
        return report, 201 if created else 200


@blp.route("/moderation/queue")
class ModerationQueue(MethodView):
    @blp.arguments(QueueArgsSchema, location="query")
    @blp.response(200, QueueSchema)
    @blp.refuses(Forbidden)  # also for a `city` the caller does not moderate
    def get(self, args):
        """The review queue of the caller's cities: held, hidden and reported items with
        their reports, content, author's history, version, claim and allowed actions"""
        return review_queue.queue(
            caller(),
            args.get("city"),
            args.get("club"),
            args.get("kind"),
            args.get("reason"),
            args["sort"],
            args["limit"],
        )


@blp.route("/moderation/items/<target_type>/<target_id>")
class ModerationItem(MethodView):
    @blp.response(200, ItemSchema)
    @blp.refuses(Forbidden)
    def get(self, target_type, target_id):
        """One review item (waiting or not) with every report and decision on it"""
        return review_queue.item(caller(), _kind(target_type), target_id)


@blp.route("/moderation/items/<target_type>/<target_id>/claim")
class ModerationClaim(MethodView):
    @blp.response(200, ClaimedItemSchema)
    @blp.refuses(Forbidden, errors.ClaimedByOther)
    def put(self, target_type, target_id):
        """Claim an item for 30 minutes, so other ambassadors see someone is on it"""
        found = review_queue.item_target(caller(), _kind(target_type), target_id)
        return reviewables.claim(caller(), *found)

    @blp.response(204)
    @blp.refuses(Forbidden)
    def delete(self, target_type, target_id):
        """Give up one's claim on an item (admins: anyone's)"""
        found = review_queue.item_target(caller(), _kind(target_type), target_id)
        reviewables.release(caller(), *found)


def _kind(target_type: str) -> str:
    """A target type from a path: anything else names nothing."""
    if target_type not in ("post", "comment", "user"):
        raise NotFound()
    return target_type


@blp.route("/moderation/actions")
class ModerationActions(MethodView):
    @idempotent
    @blp.arguments(ActionCreateSchema)
    @blp.response(201, ActionSchema)
    @blp.refuses(
        Forbidden,
        errors.OwnContent,
        errors.StaffAccount,
        NotFound,
        errors.InvalidTransition,
        errors.ActionNotApplicable,
        errors.AlreadyDecided,
        errors.ClaimedByOther,
    )
    def post(self, data):
        """Keep, hide, restore or remove content; warn, mute or ban its author or a user

        Ambassadors of the content's city (a post's or comment's city is its club's; in a
        national club, its author's) and admins. Nobody moderates their own content or
        account (403 `own_content`); only admins warn, mute, ban or restore a staff account
        (403 `staff_account`). The action resolves the open reports on its target and tells
        the reporters and the author. An owner holding no ambassador role is refused 403; a
        target outside the caller's cities is not found (404).
        """
        caller().require_role(AMBASSADOR)
        return moderation.take_action(caller(), **data)

    @blp.arguments(AuditArgsSchema, location="query")
    @blp.response(200, page_of(ActionSchema))
    @blp.refuses(Forbidden)  # also for a `city` the caller does not moderate
    def get(self, args):
        """The audit log of the caller's cities, newest first; by ambassador, account or
        target"""
        return moderation.audit_log(
            caller(),
            args.get("city"),
            args["cursor"],
            args["limit"],
            actor=args.get("actor"),
            target_type=args.get("target_type"),
            target_id=args.get("target_id"),
            account=args.get("account"),
        )


@blp.route("/moderation/actions/<action_id>/undo")
class UndoModerationAction(MethodView):
    @idempotent
    @blp.arguments(UndoSchema)
    @blp.response(201, ActionSchema)
    @blp.refuses(
        Forbidden,
        errors.NotYourDecision,
        errors.UndoExpired,
        errors.AlreadyUndone,
        errors.NotUndoable,
        errors.Superseded,
        errors.ClaimedByOther,
    )
    def post(self, data, action_id):
        """Undo a decision within 10 minutes: content, account and points return to where
        they were (the ambassador who decided, admin)"""
        return moderation.undo_action(caller(), action_id, data["reason"])


@blp.route("/moderation/bulk-actions")
class BulkModerationActions(MethodView):
    @blp.arguments(BulkActionCreateSchema)
    @blp.response(200, BulkResultSchema)
    @blp.refuses(Forbidden, errors.ActionNotApplicable)
    def post(self, data):
        """Decide many items of one kind together, each audited on its own; the answer
        lists those applied and those refused, with why"""
        return moderation.decide_many(caller(), **data)


@blp.route("/admin/sensitive-words")
class SensitiveWords(MethodView):
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, page_of(SensitiveWordSchema))
    @blp.refuses(Forbidden)
    def get(self, args):
        """The sensitive-word list (admin)"""
        return words.list_words(caller(), args["cursor"], args["limit"])

    @idempotent
    @blp.arguments(SensitiveWordCreateSchema)
    @blp.response(201, SensitiveWordSchema)
    @blp.refuses(Forbidden, errors.WordListed, errors.NoLetters)
    def post(self, data):
        """List a word: posts and comments containing it are held for review (admin)"""
        return words.add_word(caller(), data["word"])


@blp.route("/admin/sensitive-words/test")
class SensitiveWordTest(MethodView):
    @blp.arguments(WordTestSchema)
    @blp.response(200, WordTestResultSchema)
    @blp.refuses(Forbidden)
    def post(self, data):
        """What the word filter sees in a sentence: its reading and the listed words in it
        (admin)"""
        return words.explain(caller(), data["text"])


@blp.route("/admin/sensitive-words/<word_id>")
class SensitiveWord(MethodView):
    @blp.response(204)
    @blp.refuses(Forbidden)
    def delete(self, word_id):
        """Take a word off the list (admin)"""
        words.remove_word(caller(), word_id)
