"""Dead letters over HTTP: admins read the messages whose retries ran out, and replay them."""

from __future__ import annotations

from flask.views import MethodView

from app.auth import caller, login_required
from app.web import Blueprint, page_of, paginate
from workers import services
from workers.schemas import DeadLetterArgsSchema, DeadLetterSchema

dead_letters = Blueprint(
    "dead_letters", __name__, description="Messages whose retries ran out (admins)"
)
blueprints = (dead_letters,)


@dead_letters.route("/admin/dead-letters")
class DeadLetters(MethodView):
    decorators = [login_required]

    @dead_letters.arguments(DeadLetterArgsSchema, location="query")
    @dead_letters.response(200, page_of(DeadLetterSchema))
    @dead_letters.alt_response(403, description="Admins only")
    @dead_letters.doc(security=[{"bearer": []}])
    def get(self, args):
        """Dead letters, newest first (admin)"""
        return paginate(
            services.dead_letters(caller(), args["replayed"]), args["cursor"], args["limit"]
        )


@dead_letters.route("/admin/dead-letters/<dead_letter_id>/replay")
class ReplayDeadLetter(MethodView):
    decorators = [login_required]

    @dead_letters.response(202, DeadLetterSchema)
    @dead_letters.alt_response(409, description="`already_replayed`")
    @dead_letters.alt_response(503, description="Redis is down; with Retry-After")
    @dead_letters.doc(security=[{"bearer": []}])
    def post(self, dead_letter_id):
        """Send a dead letter's message again (admin)"""
        return services.replay_dead_letter(caller(), dead_letter_id)
