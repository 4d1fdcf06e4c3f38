"""The refusals of clubs, posts, moderation and the sensitive-word list, in one place."""

from __future__ import annotations

from marshmallow import fields

from app.errors import Conflict, DomainError, Forbidden, NotFound, ValidationFailed


class ClubNotFound(NotFound):
    error = "not_found"
    message = "Club not found."


class PostNotFound(NotFound):
    error = "not_found"
    message = "Post not found."


class CommentNotFound(NotFound):
    error = "not_found"
    message = "Comment not found."


class MembershipNotFound(NotFound):
    error = "not_found"
    message = "No such membership."


class NotVerifiedOwner(Forbidden):
    error = "not_verified_owner"
    message = "This club is for verified owners only."


class NotMember(Forbidden):
    error = "not_member"
    message = "Only active members of the club may do this."


class NotAuthor(Forbidden):
    error = "not_author"
    message = "Only the author may delete this."


class OwnContent(Forbidden):
    error = "own_content"
    message = "Nobody moderates or features their own content or account."


class StaffAccount(Forbidden):
    error = "staff_account"
    message = "Only admins warn, mute, ban or restore a staff account."


class ModeratorNotRemovable(Forbidden):
    error = "moderator_not_removable"
    message = "Only the club's city leaders and admins remove one of its moderators."


class Muted(Forbidden):
    error = "muted"
    message = "You are muted until {until}: no posts, comments, likes or club joins."
    detail_fields = {
        "until": fields.String(required=True, metadata={"format": "date-time"}),
    }


class AlreadyMember(Conflict):
    error = "already_member"
    message = "You already belong to this club (or asked to join it)."


class NotPending(Conflict):
    error = "not_pending"
    message = "This membership is not waiting for approval."


class NotActiveMember(Conflict):
    error = "not_active_member"
    message = "Only an active member of the club can be a moderator."


class InvalidTransition(Conflict):
    error = "invalid_transition"
    message = "The content's current status does not allow this action."


class ActionNotApplicable(ValidationFailed):
    error = "action_not_applicable"
    message = "This action does not apply to this target."


class SelfReport(ValidationFailed):
    error = "self_report"
    message = "Nobody reports their own content or account."


class UnknownTarget(ValidationFailed):
    error = "unknown_target"
    message = "No such post, comment or user."


class NewAccountLimit(DomainError):
    """With `Retry-After`: when the account leaves the sandbox."""

    status = 429
    error = "new_account_limit"
    message = "An account in its first day may do this {allowed} times; see Retry-After."
    detail_fields = {"allowed": fields.Integer(required=True)}


class WordListed(ValidationFailed):
    error = "word_listed"
    message = "This word is already listed."


class NoLetters(ValidationFailed):
    error = "no_letters"
    message = "The word has no letters or digits."


# --- the review desk -------------------------------------------------------------------


class AlreadyDecided(Conflict):
    """Someone decided the item since the version the caller decided on: nothing is
    applied twice, and the caller learns who decided what."""

    error = "already_decided"
    message = "{decided_by_name} decided this item ({action}) in the meantime."
    detail_fields = {
        "decided_by": fields.String(required=True),
        "decided_by_name": fields.String(required=True),
        "action": fields.String(required=True),
        "decided_at": fields.String(required=True, metadata={"format": "date-time"}),
        "version": fields.Integer(required=True),
    }


class ClaimedByOther(Conflict):
    error = "claimed"
    message = "{claimed_by_name} is reviewing this item until {claimed_until}."
    detail_fields = {
        "claimed_by": fields.String(required=True),
        "claimed_by_name": fields.String(required=True),
        "claimed_until": fields.String(required=True, metadata={"format": "date-time"}),
    }


class NotYourDecision(Forbidden):
    error = "not_your_decision"
    message = "Only the ambassador who decided, or an admin, undoes a decision."


class UndoExpired(Conflict):
    error = "undo_expired"
    message = "A decision can be undone within {minutes} minutes only."
    detail_fields = {"minutes": fields.Integer(required=True)}


class AlreadyUndone(Conflict):
    error = "already_undone"
    message = "This decision was undone already."


class NotUndoable(Conflict):
    error = "not_undoable"
    message = "An undo is not undone: decide the item again instead."


class Superseded(Conflict):
    error = "superseded"
    message = "The item changed after this decision: decide it again instead of undoing."
