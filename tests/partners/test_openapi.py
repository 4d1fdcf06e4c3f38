"""The OpenAPI document describes the city partner routes, CSV on paths of its own."""

from __future__ import annotations


def test_scorecards_are_documented_as_json_and_csv(client):
    paths = {
        path.removeprefix("/api/v1"): operations
        for path, operations in client.get("/api/v1/openapi.json").json["paths"].items()
    }
    # Each CSV has its own path, so a generated client parses each answer by its one type.
    for path in ("/city-partners/{partner_id}/scorecard", "/admin/scorecards"):
        assert set(paths[path]["get"]["responses"]["200"]["content"]) == {"application/json"}
        as_csv = paths[f"{path}.csv"]["get"]["responses"]["200"]["content"]
        assert set(as_csv) == {"text/csv"}, path
        assert as_csv["text/csv"]["schema"]["type"] == "string"
    refusals = paths["/admin/city-partners"]["post"]["responses"]
    assert {"403", "409", "422"} <= set(refusals)
    assert "city_taken" in str(refusals["409"])
    assert "budget_exceeded" in str(paths["/events/{event_id}/publish"]["post"]["responses"])
