"""Points follow content (docs/product.md invariant 8), as a stateful property: random sequences
of owners publishing, commenting and deleting, an ambassador featuring, hiding, removing and
restoring, and owners erasing their accounts, through the community services, while the
domain events they record are delivered to the real handlers late, twice (also past their
markers, as after a sweep) and out of order. Once everything is delivered, every post's and
comment's net points equal what its final state owes.

`make test` runs a few examples with a fixed seed; `make fuzz` runs many with a random one
(CONTENT_POINTS_EXAMPLES, FUZZ_SEED_RANDOMLY).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from accounts import personal_data
from accounts.models import User
from app import handlers as registry
from app.auth import Caller, load_caller
from app.clock import utcnow
from app.db import transaction
from app.errors import NotFound
from app.handlers import HandledEvent
from app.outbox import DomainEvent, OutboxEvent
from community import clubs, moderation, posts
from community.errors import InvalidTransition
from loyalty import reconciliation
from loyalty.models import ContentPoints, EarningRule, LedgerEntry, Lot, PointsAccount
from loyalty.rules import DEFAULT_RULES
from tests.community.conftest import owner
from tests.support import make_person

EXAMPLES = int(os.environ.get("CONTENT_POINTS_EXAMPLES", "12"))
DERANDOMIZE = not os.environ.get("FUZZ_SEED_RANDOMLY")
AUTHORS = 3
POINTS = {"post.published": 5, "post.featured": 50, "comment.created": 1}
# The status each moderation action leaves, from the statuses it applies to (moderation's
# TRANSITIONS; on deleted content `restore` rejects the reports and leaves it deleted).
ACTIONS = {
    "hide": ({"visible"}, "hidden"),
    "remove": ({"visible", "hidden", "deleted"}, "removed"),
    "restore": ({"hidden", "removed", "deleted"}, "visible"),
}


@dataclass
class Content:
    kind: str
    id: str
    author: int
    status: str = "visible"
    featured: bool = False
    on_own_post: bool = False

    def owed(self, erased: set[int]) -> int:
        if self.status not in ("visible", "hidden") or self.author in erased:
            return 0
        if self.kind == "comment":
            return 0 if self.on_own_post else POINTS["comment.created"]
        return POINTS["post.published"] + (POINTS["post.featured"] if self.featured else 0)


def net_points(content: Content) -> int:
    """What the ledger says the content paid: its earns, less their reversals."""
    entries = LedgerEntry._get_collection()
    earns = list(entries.find({"source.type": content.kind, "source.id": content.id}))
    reversals = entries.find(
        {"kind": "reverse", "source.id": {"$in": [str(e["_id"]) for e in earns]}}
    )
    return sum(e["amount"] for e in earns) + sum(r["amount"] for r in reversals)


class PointsFollowContent(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        for document in (LedgerEntry, Lot, PointsAccount, ContentPoints, OutboxEvent, HandledEvent):
            document._get_collection().delete_many({})
        # Without caps, what each content owes is its rule's points, whatever else was
        # posted that day (caps are decided once per content; tests/loyalty/test_rules.py).
        for code in POINTS:
            EarningRule._get_collection().update_one(
                {"code": code},
                {"$set": {"code": code, "active": True, **DEFAULT_RULES[code], "caps": {}}},
                upsert=True,
            )
        registry.load_handler_modules()
        self.authors = [owner() for _ in range(AUTHORS)]
        self.ambassador = load_caller(make_person("SZ", role="ambassador").id)
        leader = load_caller(make_person("SZ", role="circle_leader").id)
        self.club = clubs.create_club(leader, name="Owners", kind="city", city_code="SZ")
        for author in self.authors:
            clubs.join(load_caller(author.id), str(self.club.pk))
        self.contents: list[Content] = []
        self.erased: set[int] = set()
        self.seen: set[str] = set()
        # (event, handler name) pairs recorded and not delivered yet, and those delivered.
        self.pending: list[tuple[DomainEvent, str]] = []
        self.delivered: list[tuple[DomainEvent, str]] = []
        self.random = random.Random(0)

    @initialize(seed=st.integers(0, 2**32 - 1))
    def seed_final_delivery(self, seed: int) -> None:
        self.random = random.Random(seed)

    # --- what owners and the ambassador do ---------------------------------------------

    def _caller(self, author: int) -> Caller:
        found = load_caller(self.authors[author].id)
        assert found is not None
        return found

    def _collect(self) -> None:
        """Queue every handler of each domain event recorded since the last look."""
        for document in OutboxEvent._get_collection().find({"_id": {"$nin": list(self.seen)}}):
            self.seen.add(document["_id"])
            event = DomainEvent.from_document(document)
            for handler in registry.handlers_for(event.type):
                self.pending.append((event, handler.name))

    @precondition(lambda self: len(self.erased) < AUTHORS)
    @rule(data=st.data())
    def publish(self, data: st.DataObject) -> None:
        author = data.draw(st.sampled_from(sorted(set(range(AUTHORS)) - self.erased)))
        post = posts.publish_post(self._caller(author), str(self.club.pk), "Hello", [])
        self.contents.append(Content("post", str(post.pk), author))
        self._collect()

    @precondition(lambda self: len(self.erased) < AUTHORS and self.contents)
    @rule(data=st.data())
    def comment(self, data: st.DataObject) -> None:
        author = data.draw(st.sampled_from(sorted(set(range(AUTHORS)) - self.erased)))
        post = data.draw(st.sampled_from([c for c in self.contents if c.kind == "post"] or [None]))
        if post is None:
            return
        try:
            made = posts.add_comment(self._caller(author), post.id, "Nice")
        except NotFound:
            assert post.status != "visible"
            return
        assert post.status == "visible"
        on_own = post.author == author
        self.contents.append(Content("comment", str(made.pk), author, on_own_post=on_own))
        self._collect()

    @precondition(lambda self: self.contents)
    @rule(data=st.data())
    def feature(self, data: st.DataObject) -> None:
        post = data.draw(st.sampled_from([c for c in self.contents if c.kind == "post"] or [None]))
        if post is None:
            return
        try:
            moderation.feature_post(self.ambassador, post.id)
        except NotFound:
            assert post.status != "visible"
            return
        assert post.status == "visible"
        post.featured = True
        self._collect()

    @precondition(lambda self: self.contents)
    @rule(data=st.data(), action=st.sampled_from(sorted(ACTIONS)))
    def moderate(self, data: st.DataObject, action: str) -> None:
        content = data.draw(st.sampled_from(self.contents))
        sources, status = ACTIONS[action]
        try:
            moderation.take_action(self.ambassador, content.kind, content.id, action, "r")
        except InvalidTransition:
            assert content.status not in sources
            return
        assert content.status in sources
        content.status = "deleted" if (content.status, action) == ("deleted", "restore") else status
        self._collect()

    @precondition(lambda self: self.contents)
    @rule(data=st.data())
    def author_deletes(self, data: st.DataObject) -> None:
        content = data.draw(st.sampled_from(self.contents))
        if content.author in self.erased:
            return
        delete = posts.delete_post if content.kind == "post" else posts.delete_comment
        try:
            delete(self._caller(content.author), content.id)
        except NotFound:
            assert content.status not in ("visible", "hidden")
            return
        assert content.status in ("visible", "hidden")
        content.status = "deleted"
        self._collect()

    @precondition(lambda self: len(self.erased) < AUTHORS)
    @rule(data=st.data())
    def author_erases_their_account(self, data: st.DataObject) -> None:
        author = data.draw(st.sampled_from(sorted(set(range(AUTHORS)) - self.erased)))
        personal_data.erase_account(User.objects.get(pk=self.authors[author].user.pk))
        self.erased.add(author)
        self._collect()

    # --- the backbone, misbehaving -----------------------------------------------------

    @precondition(lambda self: self.pending or self.delivered)
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        """Some queued messages, in any order; some delivered again (some past their
        markers, as after the dispatcher swept them)."""
        if self.pending:
            picks = data.draw(st.lists(st.integers(0, len(self.pending) - 1), unique=True))
            batch = [self.pending[i] for i in picks]
            self.pending = [m for i, m in enumerate(self.pending) if i not in set(picks)]
        else:
            batch = []
        if self.delivered:
            again = data.draw(st.lists(st.sampled_from(self.delivered), max_size=3))
            batch += again
        for message in data.draw(st.permutations(batch)):
            self._run(message, past_marker=data.draw(st.booleans()))

    def _run(self, message: tuple[DomainEvent, str], past_marker: bool) -> None:
        event, name = message
        handler = registry.handler_named(name)
        assert handler is not None
        if past_marker and message in self.delivered:
            transaction(lambda session: handler.apply(event, session))
        else:
            registry.run_handler(handler, event)
            self.delivered.append(message)

    def teardown(self) -> None:
        # Whatever is still queued arrives at last, in an order of the example's drawing,
        # and a few delivered messages arrive once more, past their markers.
        rest = self.pending + self.random.sample(self.delivered, min(3, len(self.delivered)))
        self.random.shuffle(rest)
        for message in rest:
            self._run(message, past_marker=True)
        for content in self.contents:
            assert net_points(content) == content.owed(self.erased), content
        for author in self.authors:
            assert reconciliation.check_account(author.user.pk, utcnow())[1] is None


@pytest.mark.slow
def test_points_follow_content_whatever_the_delivery(app):
    run_state_machine_as_test(
        PointsFollowContent,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=25,
            deadline=None,
            derandomize=DERANDOMIZE,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
