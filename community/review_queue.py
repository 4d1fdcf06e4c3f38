"""The review desk's queue: one list of reviewables (after Discourse's review queue) for the
ambassadors of a city, and each item's page with its history.

An item is a target waiting for a person: content held for a sensitive word, content hidden
by reports, and anything (posts, comments, accounts) with open reports. Each comes with its
reports (who, how much their report weighs and why, their record of upheld reports, what
they said), the content as a reader sees it, the author's history (account age, verified or
not, staff or not, mute and ban, warnings, earlier decisions, the points their content pays
them now), its version and claim (`community.reviewables`), and the actions the server
allows the caller on it (`community.moderation.allowed_actions`). Filters: city, club, kind
(post, comment, user) and reason (held, hidden, reported); heaviest or newest first.

The queue is built in a fixed number of reads however long it is (tests/community/
test_review_desk.py holds it to its budget): the open reports grouped by target, the held
posts and comments, the reported posts and comments, the items' records, their clubs, the
accounts of authors, reporters and claimers, their standings, their earlier decisions and
the points their content pays.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId

from accounts.services import AMBASSADOR, AccountCard, account_cards
from app.auth import Caller
from app.clock import utcnow
from app.db import object_id
from app.errors import NotFound
from community import reviewables
from community.errors import UnknownTarget
from community.models import (
    HELD,
    HIDDEN,
    OPEN_REPORT,
    TARGET_TYPES,
    UNDO,
    USER,
    Club,
    ModerationAction,
    Report,
    Standing,
)
from community.moderation import allowed_actions
from community.reports import CONTENT_MODELS, find_target, moderated_cities
from loyalty.content_points import earned_by

QUEUE_SIZE = 100
# Why an item waits: a listed word held it, reports hid it, reports are open on it.
QUEUE_REASONS = ("held", "hidden", "reported")
SORTS = ("heaviest", "newest")
# The reports shown with an item (the heaviest), and an author's decisions listed.
REPORTS_SHOWN = 20
DECISIONS_SHOWN = 5
_CONTENT_FIELDS = dict.fromkeys(
    (
        "club_id",
        "city_code",
        "author_id",
        "author_name",
        "body",
        "image_urls",
        "status",
        "created_at",
        "published_at",
        "post_id",
    ),
    1,
)


@dataclass
class _Target:
    target_type: str
    target_id: str
    city_code: str | None = None
    club_id: ObjectId | None = None
    weight: float = 0.0
    reports: list[dict[str, Any]] = field(default_factory=list)
    first_reported_at: datetime | None = None
    last_reported_at: datetime | None = None
    content: dict[str, Any] | None = None
    account_id: ObjectId | None = None

    @property
    def key(self) -> str:
        return reviewables.key_of(self.target_type, self.target_id)


def queue(
    caller: Caller,
    city: str | None = None,
    club: str | None = None,
    kind: str | None = None,
    reason: str | None = None,
    sort: str = "heaviest",
    limit: int = QUEUE_SIZE,
) -> dict[str, Any]:
    """The items waiting in the caller's cities (or `city`), filtered and sorted."""
    cities = moderated_cities(caller, city)
    kinds = [kind] if kind else list(TARGET_TYPES)
    club_id = object_id(club) if club else None
    if club and club_id is None:
        return {"items": []}
    targets: dict[str, _Target] = {}
    if reason != "held":
        for target in _reported(cities, kinds, club_id, sort):
            targets[target.key] = target
    contents = [k for k in kinds if k in CONTENT_MODELS]
    if reason in (None, "held"):
        for target_type in contents:
            for content in _held(target_type, cities, club_id):
                target = _Target(target_type, str(content["_id"]), content=content)
                targets.setdefault(target.key, target)
    _read_contents(targets.values())
    items = _assemble(caller, list(targets.values()))
    if reason is not None:
        items = [item for item in items if reason in item["queue_reasons"]]
    if sort == "newest":
        items.sort(key=lambda item: item["last_activity_at"], reverse=True)
    else:
        items.sort(key=lambda item: (-item["weight"], item["first_reported_at"]))
    return {"items": items[:limit]}


def waiting(caller: Caller) -> dict[str, int]:
    """How many items wait in the caller's cities, by why (a home page's figures): targets
    with open reports, held posts, held comments, in three reads."""
    cities = moderated_cities(caller, None)
    scope: dict[str, Any] = {} if cities is None else {"city_code": {"$in": sorted(cities)}}
    reported = next(
        Report._get_collection().aggregate(
            [
                {"$match": {"status": OPEN_REPORT, **scope}},
                {"$group": {"_id": {"type": "$target_type", "id": "$target_id"}}},
                {"$count": "targets"},
            ]
        ),
        {"targets": 0},
    )["targets"]
    held = sum(
        model._get_collection().count_documents({"status": HELD, **scope})
        for model in CONTENT_MODELS.values()
    )
    return {"reported": reported, "held": held}


def _found(caller: Caller, target_type: str, target_id: str) -> tuple[dict[str, Any], Any, Any]:
    """The target, its city and account, for an ambassador of its city (403 for someone
    who moderates nowhere, 404 outside the caller's cities)."""
    moderated_cities(caller, None)
    try:
        found, city, account = find_target(target_type, target_id, deleted=True)
    except UnknownTarget:
        raise NotFound() from None
    if not caller.acts_in(city, AMBASSADOR):
        raise NotFound()
    return found, city, account


def item_target(caller: Caller, target_type: str, target_id: str) -> tuple[str, str]:
    """An item the caller may claim: its type and id (see `_found` for the refusals)."""
    found, _, _ = _found(caller, target_type, target_id)
    return target_type, str(found["_id"])


def item(caller: Caller, target_type: str, target_id: str) -> dict[str, Any]:
    """One item as the queue shows it, waiting or not, with its history: every report and
    decision on it, oldest first (404 outside the caller's cities)."""
    found, city, account = _found(caller, target_type, target_id)
    target = _Target(target_type, str(found["_id"]), city_code=city, account_id=account)
    if target_type in CONTENT_MODELS:
        target.content = found
    reports = list(
        Report._get_collection()
        .find({"target_type": target_type, "target_id": target.target_id})
        .sort("_id", 1)
    )
    for report in reports:
        if report["status"] == OPEN_REPORT:
            _count_report(target, report)
    [described] = _assemble(caller, [target], all_reports=reports)
    decisions = list(
        ModerationAction.objects(target_type=target_type, target_id=target.target_id).order_by("id")
    )
    return {**described, "decisions": decisions}


# --- reading the targets ----------------------------------------------------------------


def _reported(
    cities: set[str] | None, kinds: list[str], club_id: ObjectId | None, sort: str
) -> list[_Target]:
    """The targets with open reports, grouped, heaviest (or newest) first."""
    match: dict[str, Any] = {"status": OPEN_REPORT}
    if cities is not None:
        match["city_code"] = {"$in": sorted(cities)}
    if len(kinds) < len(TARGET_TYPES):
        match["target_type"] = {"$in": kinds}
    if club_id is not None:
        match["club_id"] = club_id
    order = {"last_reported_at": -1} if sort == "newest" else {"weight": -1, "first_reported_at": 1}
    groups = Report._get_collection().aggregate(
        [
            {"$match": match},
            {
                "$group": {
                    "_id": {"type": "$target_type", "id": "$target_id"},
                    "city_code": {"$first": "$city_code"},
                    "weight": {"$sum": "$weight"},
                    "first_reported_at": {"$min": "$created_at"},
                    "last_reported_at": {"$max": "$created_at"},
                    "reports": {
                        "$push": {
                            "_id": "$_id",
                            "reporter_id": "$reporter_id",
                            "weight": "$weight",
                            "weight_reason": "$weight_reason",
                            "reason": "$reason",
                            "reason_held": "$reason_held",
                            "status": "$status",
                            "created_at": "$created_at",
                        }
                    },
                }
            },
            {"$sort": order},
            {"$limit": QUEUE_SIZE},
        ]
    )
    return [
        _Target(
            group["_id"]["type"],
            group["_id"]["id"],
            city_code=group["city_code"],
            weight=round(group["weight"], 3),
            reports=group["reports"],
            first_reported_at=group["first_reported_at"],
            last_reported_at=group["last_reported_at"],
        )
        for group in groups
    ]


def _count_report(target: _Target, report: dict[str, Any]) -> None:
    target.reports.append(report)
    target.weight = round(target.weight + report["weight"], 3)
    at = report["created_at"]
    target.first_reported_at = min(target.first_reported_at or at, at)
    target.last_reported_at = max(target.last_reported_at or at, at)


def _held(
    target_type: str, cities: set[str] | None, club_id: ObjectId | None
) -> list[dict[str, Any]]:
    """Content of the cities held for a listed word, oldest first (the index leads with
    the status and the city)."""
    query: dict[str, Any] = {"status": HELD}
    if cities is not None:
        query["city_code"] = {"$in": sorted(cities)}
    found = CONTENT_MODELS[target_type]._get_collection().find(query, _CONTENT_FIELDS)
    held = list(found.sort("_id", 1).limit(QUEUE_SIZE))
    return [c for c in held if club_id is None or c.get("club_id") == club_id]


def _read_contents(targets: Iterable[_Target]) -> None:
    """Read the reported content the queue shows, one read per kind."""
    wanted: dict[str, dict[ObjectId, _Target]] = defaultdict(dict)
    for target in targets:
        if target.target_type in CONTENT_MODELS and target.content is None:
            oid = object_id(target.target_id)
            if oid is not None:
                wanted[target.target_type][oid] = target
    for target_type, by_id in wanted.items():
        for content in (
            CONTENT_MODELS[target_type]
            ._get_collection()
            .find({"_id": {"$in": list(by_id)}}, _CONTENT_FIELDS)
        ):
            by_id[content["_id"]].content = content


# --- describing the items ---------------------------------------------------------------


def _assemble(
    caller: Caller, targets: list[_Target], all_reports: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    now = utcnow()
    for target in targets:
        if target.content is not None:
            target.account_id = target.content.get("author_id")
            target.city_code = target.content.get("city_code")
            target.club_id = target.content.get("club_id")
        elif target.target_type == USER:
            target.account_id = object_id(target.target_id)
    records = reviewables.records([target.key for target in targets])
    accounts = {t.account_id for t in targets if t.account_id is not None}
    reporters = {report["reporter_id"] for t in targets for report in (all_reports or t.reports)}
    claimers = {
        claim["claimed_by"]
        for record in records.values()
        if (claim := reviewables.live_claim(record, now))
    }
    deciders = {r["decided_by"] for r in records.values() if r.get("decided_by")}
    cards = account_cards(accounts | reporters | claimers | deciders)
    standings = _standings(accounts | reporters)
    decisions = _decisions(accounts)
    earned = earned_by(accounts)
    clubs = _club_names({t.club_id for t in targets if t.club_id is not None})
    described = []
    for target in targets:
        content = target.content
        if target.target_type in CONTENT_MODELS and content is None:
            continue  # reported content that no longer exists
        card = cards.get(target.account_id) if target.account_id else None
        if target.target_type == USER and (card is None or card.erased):
            continue
        if target.target_type == USER and card is not None:
            target.city_code = card.city_code
        record = records.get(target.key, {})
        claim = reviewables.live_claim(record, now)
        status = content["status"] if content else _account_state(card, now)
        reasons = [
            *(["held"] if status == HELD else []),
            *(["hidden"] if status == HIDDEN else []),
            *(["reported"] if target.reports else []),
        ]
        reports = sorted(target.reports, key=lambda r: -r["weight"])
        described.append(
            {
                "key": target.key,
                "target_type": target.target_type,
                "target_id": target.target_id,
                "city_code": target.city_code,
                "club_id": target.club_id,
                "club_name": clubs.get(target.club_id) if target.club_id else None,
                "status": status,
                "queue_reasons": reasons,
                "weight": target.weight,
                "reports": len(target.reports),
                "reasons": [r["reason"] for r in reports[:10]] or ["sensitive_word"],
                "first_reported_at": target.first_reported_at
                or (content["created_at"] if content else now),
                "last_activity_at": target.last_reported_at
                or (content["created_at"] if content else now),
                "report_details": [
                    _report(report, cards, standings)
                    for report in (all_reports if all_reports is not None else reports)[
                        :REPORTS_SHOWN
                    ]
                ],
                "content": _content(target, content),
                "account": _account(target.account_id, card, standings, decisions, earned),
                "version": record.get("version", 0),
                "claim": (
                    {
                        "claimed_by": claim["claimed_by"],
                        "claimed_by_name": _name(cards, claim["claimed_by"]),
                        "claimed_until": claim["claimed_until"],
                        "mine": claim["claimed_by"] == caller.user.pk,
                    }
                    if claim
                    else None
                ),
                "last_decision": (
                    {
                        "action": record.get("last_action"),
                        "decided_by": record.get("decided_by"),
                        "decided_by_name": _name(cards, record.get("decided_by")),
                        "decided_at": record.get("decided_at"),
                    }
                    if record.get("decided_by")
                    else None
                ),
                "actions": allowed_actions(
                    caller,
                    target.target_type,
                    content["status"] if content else None,
                    target.account_id if card is None or not card.erased else None,
                    bool(card and card.staff),
                    status in ("muted", "banned"),
                ),
            }
        )
    return described


def _name(cards: dict[ObjectId, AccountCard], user_id: Any) -> str | None:
    card = cards.get(user_id) if user_id else None
    return card.display_name if card else None


def _account_state(card: AccountCard | None, now: datetime) -> str:
    if card is None:
        return "erased"
    if card.banned_until and card.banned_until > now:
        return "banned"
    if card.muted_until and card.muted_until > now:
        return "muted"
    return "active"


def _standings(user_ids: set[ObjectId]) -> dict[ObjectId, dict[str, Any]]:
    if not user_ids:
        return {}
    return {
        standing["user_id"]: standing
        for standing in Standing._get_collection().find({"user_id": {"$in": list(user_ids)}})
    }


def _decisions(account_ids: set[ObjectId]) -> dict[ObjectId, list[dict[str, Any]]]:
    """Each account's decisions (undone ones marked), newest first, in one read."""
    found: dict[ObjectId, list[dict[str, Any]]] = defaultdict(list)
    if not account_ids:
        return found
    for entry in (
        ModerationAction._get_collection()
        .find(
            {"account_id": {"$in": list(account_ids)}},
            {"account_id": 1, "action": 1, "created_at": 1, "undone_at": 1, "reason": 1},
        )
        .sort("_id", -1)
        .limit(50 * len(account_ids))
    ):
        if entry["action"] != UNDO:
            found[entry["account_id"]].append(entry)
    return found


def _club_names(club_ids: set[ObjectId]) -> dict[ObjectId, str]:
    if not club_ids:
        return {}
    return {
        club["_id"]: club["name"]
        for club in Club._get_collection().find({"_id": {"$in": list(club_ids)}}, {"name": 1})
    }


def _report(
    report: dict[str, Any],
    cards: dict[ObjectId, AccountCard],
    standings: dict[ObjectId, dict[str, Any]],
) -> dict[str, Any]:
    standing = standings.get(report["reporter_id"], {})
    card = cards.get(report["reporter_id"])
    return {
        "id": report["_id"],
        "reporter_id": report["reporter_id"],
        "reporter_name": card.display_name if card else None,
        "reporter_verified": bool(card and card.verified_owner),
        "weight": report["weight"],
        "weight_reason": report.get("weight_reason"),
        "reason": report["reason"],
        "reason_held": bool(report.get("reason_held")),
        "status": report.get("status", OPEN_REPORT),
        "reports_decided": standing.get("reports_resolved", 0),
        "reports_upheld": standing.get("reports_upheld", 0),
        "created_at": report["created_at"],
    }


def _content(target: _Target, content: dict[str, Any] | None) -> dict[str, Any] | None:
    if content is None:
        return None
    return {
        "body": content["body"],
        "image_urls": content.get("image_urls", []),
        "author_id": str(content["author_id"]) if content.get("author_id") else None,
        "author_name": content.get("author_name"),
        "created_at": content.get("created_at"),
        "post_id": str(content["post_id"]) if content.get("post_id") else None,
    }


def _account(
    account_id: ObjectId | None,
    card: AccountCard | None,
    standings: dict[ObjectId, dict[str, Any]],
    decisions: dict[ObjectId, list[dict[str, Any]]],
    earned: dict[ObjectId, int],
) -> dict[str, Any] | None:
    if account_id is None or card is None or card.erased:
        return None
    made = decisions.get(account_id, [])
    return {
        "id": account_id,
        "display_name": card.display_name,
        "joined_at": card.joined_at,
        "verified_owner": card.verified_owner,
        "staff": card.staff,
        "muted_until": card.muted_until,
        "banned_until": card.banned_until,
        "warnings": standings.get(account_id, {}).get("warnings", 0),
        "decisions": len([entry for entry in made if entry.get("undone_at") is None]),
        "recent_decisions": [
            {
                "action": entry["action"],
                "reason": entry.get("reason"),
                "created_at": entry["created_at"],
                "undone": entry.get("undone_at") is not None,
            }
            for entry in made[:DECISIONS_SHOWN]
        ],
        "content_points": earned.get(account_id, 0),
    }
