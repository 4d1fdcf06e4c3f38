"""The OpenAPI document describes the city partner routes, CSV included."""

from __future__ import annotations


def test_scorecards_are_documented_as_json_and_csv(client):
    paths = {
        path.removeprefix("/api/v1"): operations
        for path, operations in client.get("/api/v1/openapi.json").json["paths"].items()
    }
    for path in ("/city-partners/{partner_id}/scorecard", "/admin/scorecards"):
        content = paths[path]["get"]["responses"]["200"]["content"]
        assert {"application/json", "text/csv"} <= set(content), path
    refusals = paths["/admin/city-partners"]["post"]["responses"]
    assert {"403", "409", "422"} <= set(refusals)
    assert "city_taken" in str(refusals["409"])
    assert "budget_exceeded" in str(paths["/events/{event_id}/publish"]["post"]["responses"])
