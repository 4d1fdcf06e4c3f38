"""The community's part of a city partner's monthly scorecard (`app/domains.py`)."""

from __future__ import annotations

import statistics

from app.domains import ScorecardPart, ScorecardScope
from community.models import REJECTED, UPHELD, VISIBLE, Comment, Post, Report


def scorecard_figures(scope: ScorecardScope) -> ScorecardPart:
    """Posts and comments published in the city's clubs in the period and visible now
    (content removed, hidden or deleted since does not count: posting and deleting must
    not lift a partner's figures), reports resolved in it and the median hours from report
    to resolution; active are the authors of the visible content."""
    period = {"$gte": scope.start, "$lt": scope.end}
    published = {
        "status": VISIBLE,
        "city_code": scope.city_code,
        "published_at": period,
    }
    posts = list(Post._get_collection().find(published, {"author_id": 1}))
    comments = list(Comment._get_collection().find(published, {"author_id": 1}))
    resolved = list(
        Report._get_collection().find(
            {
                "status": {"$in": [UPHELD, REJECTED]},
                "city_code": scope.city_code,
                "resolved_at": period,
            },
            {"created_at": 1, "resolved_at": 1},
        )
    )
    hours = [
        (report["resolved_at"] - report["created_at"]).total_seconds() / 3600 for report in resolved
    ]
    return ScorecardPart(
        {
            "posts": len(posts),
            "comments": len(comments),
            "reports_resolved": len(resolved),
            "median_hours_to_resolve": round(statistics.median(hours), 2) if hours else None,
        },
        {content["author_id"] for content in posts + comments if content.get("author_id")},
    )
