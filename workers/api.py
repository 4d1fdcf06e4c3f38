"""Dead letters over HTTP: admins read the messages whose retries ran out, and replay them."""

from __future__ import annotations

from flask.views import MethodView

from app.auth import caller
from app.errors import Forbidden
from app.web import Blueprint, page_of, paginate
from workers import errors, services
from workers.schemas import DeadLetterArgsSchema, DeadLetterSchema

dead_letters = Blueprint(
    "dead_letters", __name__, description="Messages whose retries ran out (admins)"
)
blueprints = (dead_letters,)


@dead_letters.route("/admin/dead-letters")
class DeadLetters(MethodView):
    @dead_letters.arguments(DeadLetterArgsSchema, location="query")
    @dead_letters.response(200, page_of(DeadLetterSchema))
    @dead_letters.refuses(Forbidden)
    def get(self, args):
        """Dead letters, newest first (admin)"""
        return paginate(
            services.dead_letters(caller(), args["replayed"]), args["cursor"], args["limit"]
        )


@dead_letters.route("/admin/dead-letters/<dead_letter_id>/replay")
class ReplayDeadLetter(MethodView):
    @dead_letters.response(202, DeadLetterSchema)
    @dead_letters.refuses(Forbidden, errors.AlreadyReplayed)
    def post(self, dead_letter_id):
        """Send a dead letter's message again (admin)"""
        return services.replay_dead_letter(caller(), dead_letter_id)
