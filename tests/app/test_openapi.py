"""The served OpenAPI document: who may call what, every refusal each operation may answer
(typed per slug), stable operation ids, and schemas a client generator types well."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from app.web import component_refs
from events.models import EVENT_STATUSES, REGISTRATION_STATUSES
from loyalty.models import REDEMPTION_STATUSES

API = "/api/v1"
PUBLIC = {
    ("/api/v1/auth/register", "post"),
    ("/api/v1/auth/login", "post"),
    ("/api/v1/auth/password-reset", "post"),
    ("/api/v1/auth/password-reset/confirm", "post"),
    ("/api/v1/cities", "get"),
    ("/api/v1/partner/points/credits", "post"),
    # Ecosystem partners sign instead (loyalty/partner_api.py).
    ("/api/v1/partner/points/debits", "post"),
    ("/api/v1/partner/points/reversals", "post"),
    ("/api/v1/partner/statements", "post"),
}


@pytest.fixture
def spec(client) -> dict[str, Any]:
    return client.get(f"{API}/openapi.json").json


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield path, method, operation


def refusals(spec: dict[str, Any], operation: dict[str, Any], status: int) -> dict[str, str]:
    """The slugs documented for one status of an operation, each with its schema's name."""
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    refs = [entry["$ref"] for entry in schema.get("oneOf", [schema])]
    names = [ref.rsplit("/", 1)[1] for ref in refs]
    slugs = [spec["components"]["schemas"][name]["properties"]["error"]["enum"] for name in names]
    assert all(len(slug) == 1 for slug in slugs)
    found = {slug[0]: name for slug, name in zip(slugs, names, strict=True)}
    if "oneOf" in schema:
        mapping = schema["discriminator"]["mapping"]
        assert schema["discriminator"]["propertyName"] == "error"
        assert mapping == {slug: f"#/components/schemas/{name}" for slug, name in found.items()}
    return found


def test_every_route_requires_a_login_unless_it_is_public(client, spec):
    public = {(path, method) for path, method, op in operations(spec) if op["security"] == []}
    assert public == PUBLIC
    protected = [(p, m, op) for p, m, op in operations(spec) if (p, m) not in PUBLIC]
    assert len(protected) > 50
    for path, method, operation in protected:
        assert operation["security"] == [{"bearer": []}], path
        assert {"unauthorized", "session_ended"} <= set(refusals(spec, operation, 401))
        assert "account_banned" in refusals(spec, operation, 403)
        url = re.sub(r"\{\w+\}", "5f0000000000000000000000", path)
        response = client.open(url, method=method.upper())
        assert response.status_code == 401, (method, path, response.json)
        assert response.json["error"] == "unauthorized"
    for path, method, operation in operations(spec):
        if (path, method) in PUBLIC and "401" in operation["responses"]:
            assert "session_ended" not in refusals(spec, operation, 401)  # no login refusals


def test_each_status_lists_the_slugs_its_view_may_answer(spec):
    register = spec["paths"][f"{API}/events/{{event_id}}/registrations"]["post"]
    assert refusals(spec, register, 409) == {
        "already_registered": "AlreadyRegistered",
        "registration_closed": "RegistrationClosed",
        "drop_only": "DropOnly",
    }
    assert set(refusals(spec, register, 403)) == {"account_banned", "not_verified_owner"}
    assert set(refusals(spec, register, 404)) == {"not_found"}  # an id in the path
    assert set(refusals(spec, register, 422)) == {"idempotency_key_reused"}
    assert set(refusals(spec, register, 503)) == {"service_unavailable"}
    assert "Retry-After" in register["responses"]["503"]["headers"]
    assert [p["name"] for p in register["parameters"]] == ["Idempotency-Key"]

    login = spec["paths"][f"{API}/auth/login"]["post"]
    assert set(refusals(spec, login, 429)) == {"rate_limited"}
    assert set(refusals(spec, login, 422)) == {"validation_failed"}
    assert set(refusals(spec, login, 400)) == {"malformed_json", "json_too_deep", "invalid_text"}
    assert set(refusals(spec, spec["paths"][f"{API}/cities"]["get"], 400)) == {"invalid_cursor"}
    publish = spec["paths"][f"{API}/events/{{event_id}}/publish"]["post"]
    assert "422" not in publish["responses"] and "429" not in publish["responses"]
    assert "default" not in publish["responses"]


def test_a_refusal_schema_types_its_slug_and_details(spec):
    schemas = spec["components"]["schemas"]
    full = schemas["CapacityBelowConfirmed"]
    assert full["properties"]["error"] == {"type": "string", "enum": ["capacity_below_confirmed"]}
    assert full["properties"]["confirmed"]["type"] == "integer"
    assert set(full["required"]) == {"code", "status", "message", "error", "confirmed"}
    assert full["additionalProperties"] is False
    assert "errors" not in full["properties"]
    assert schemas["InvalidTimes"]["properties"]["errors"] == {
        "$ref": "#/components/schemas/FieldErrors"
    }
    generic = schemas["Error"]
    assert {"code", "status", "message", "error"} <= set(generic["required"])
    assert generic["additionalProperties"] is True


def test_every_operation_has_a_unique_readable_id(spec):
    ids = [operation["operationId"] for _, _, operation in operations(spec)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"(get|post|put|patch|delete)[A-Z][A-Za-z]+", i) for i in ids)
    path = spec["paths"][f"{API}/events/{{event_id}}/registrations"]
    assert path["post"]["operationId"] == "postEventRegistrations"


def test_schemas_generate_typed_clients(spec):
    schemas = spec["components"]["schemas"]
    assert spec["openapi"].startswith("3.1")
    assert schemas["Event"]["properties"]["my_registration"]["anyOf"] == [
        {"$ref": "#/components/schemas/Registration"},
        {"type": "null"},
    ]
    assert schemas["Points"]["properties"]["next_tier"]["anyOf"][1] == {"type": "null"}
    assert schemas["Event"]["properties"]["status"]["enum"] == list(EVENT_STATUSES)
    assert schemas["Registration"]["properties"]["status"]["enum"] == list(REGISTRATION_STATUSES)
    assert schemas["Redemption"]["properties"]["status"]["enum"] == list(REDEMPTION_STATUSES)
    assert schemas["Vehicle"]["properties"]["status"]["enum"] == ["pending", "verified", "rejected"]
    assert schemas["User"]["properties"]["avatar_url"]["format"] == "uri"
    assert schemas["ProfileUpdate"]["properties"]["avatar_url"]["format"] == "uri"
    assert "PaginationMetadata" not in schemas
    export = spec["paths"][f"{API}/me/export"]["get"]["responses"]["200"]
    assert export["content"]["application/json"]["schema"]["$ref"].endswith("/PersonalData")
    assert {"user_id", "account", "points"} <= set(schemas["PersonalData"]["required"])


def test_a_lost_database_connection_answers_503(app):
    with app.test_request_context(f"{API}/me"):
        response = app.make_response(
            app.handle_user_exception(ServerSelectionTimeoutError("no primary"))
        )
    assert response.status_code == 503
    assert response.json["error"] == "service_unavailable"
    assert response.headers["Retry-After"] == "5"


def answered_schemas(spec: dict[str, Any]) -> set[str]:
    """Every component schema a 2xx answer reaches, through any nesting."""
    schemas = spec["components"]["schemas"]
    todo = [
        name
        for _, _, operation in operations(spec)
        for status, answer in operation["responses"].items()
        if status.startswith("2")
        for name in component_refs(answer)
    ]
    found: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += component_refs(schemas[name])
    return found


def test_every_field_an_answer_always_has_is_required(spec):
    # A generated client types a required field as present (`str`, not `str | Unset`).
    schemas = spec["components"]["schemas"]
    answered = answered_schemas(spec)
    assert len(answered) > 70
    for name in answered:
        schema = schemas[name]
        for field, definition in schema.get("properties", {}).items():
            if field not in schema.get("required", ()):
                # The only fields an answer may lack say when.
                assert "Absent " in definition.get("description", ""), (name, field)
    assert "locked_reason" not in schemas["RewardOffer"]["required"]
    assert {"id", "display_name", "grants", "city_partners"} <= set(schemas["User"]["required"])
    # Null is said where it may come: a nullable field's type admits null.
    assert schemas["User"]["properties"]["email"]["type"] == ["string", "null"]


def test_an_answer_lacking_a_required_field_fails_under_test(app):
    from marshmallow import fields as ma_fields

    from app.web import Schema

    class Partial(Schema):
        id = ma_fields.String()
        name = ma_fields.String()

    assert Partial().dump({"id": "1", "name": "x"}) == {"id": "1", "name": "x"}
    with pytest.raises(AssertionError, match="Partial.name is missing"):
        Partial().dump({"id": "1"})
    with pytest.raises(AssertionError, match="Partial.name is null"):
        Partial().dump({"id": "1", "name": None})


def test_admin_writes_live_under_admin_and_tags_do_not_overlap(client, spec):
    admin_only = [
        (path, method)
        for path, method, operation in operations(spec)
        if operation["summary"].endswith("(admin)") and not operation.get("deprecated")
    ]
    assert len(admin_only) > 15
    assert [(p, m) for p, m in admin_only if not p.startswith(f"{API}/admin/")] == []
    # The older paths still answer, marked deprecated and naming their successor.
    older = spec["paths"][f"{API}/rewards"]["post"]
    assert older["deprecated"] is True and "POST /admin/rewards" in older["description"]
    assert spec["paths"][f"{API}/cities"]["post"]["deprecated"] is True
    assert spec["paths"][f"{API}/auth/logout"]["post"]["tags"] == ["auth"]
    tags = {tag["name"]: tag["description"] for tag in spec["tags"]}
    assert "Sign-up" not in tags["accounts"] and "login" not in tags["accounts"]
    # Two kinds of partner, one tag each: a city's operator, and systems exchanging points.
    assert "partners" not in tags and "City partners" in tags["city_partners"]
    partner_tags = {
        ("city-partners" in path, *operation["tags"])
        for path, _, operation in operations(spec)
        if "partner" in path
    }
    assert partner_tags == {(True, "city_partners"), (False, "ecosystem_partners")}
    earning_rules = spec["paths"][f"{API}/admin/earning-rules"]["get"]["responses"]["200"]
    assert earning_rules["content"]["application/json"]["schema"]["$ref"].endswith(
        "/EarningRulePage"
    )


def test_the_docs_page_asks_no_outside_validator(client):
    page = client.get(f"{API}/docs").get_data(as_text=True)
    assert '"validatorUrl": null' in page


def test_every_refusal_says_what_it_means_in_whole_sentences(spec):
    for name, schema in spec["components"]["schemas"].items():
        said = schema.get("description", "")
        if "error" in schema.get("properties", {}) and said:
            assert said.rstrip().endswith((".", ")", "`")), (name, said)
    assert spec["components"]["schemas"]["BudgetExceeded"]["description"].endswith(
        "reservation is used up."
    )


def test_the_document_and_the_operations_a_rule_decides_say_the_rule(spec):
    assert "Idempotency-Key" in spec["info"]["description"]
    assert "request_id" in spec["info"]["description"]
    assert spec["servers"] == [{"url": "/", "description": ANY_TEXT}]
    said = {
        ("/events/{event_id}/registrations", "post"): ["registration_closed", "waitlist"],
        ("/events/{event_id}/check-ins", "post"): ["2 hours before", "city's time"],
        ("/events/{event_id}/feedback", "post"): ["7 days", "feedback_exists"],
        ("/redemptions", "post"): ["insufficient_points", "30 days", "Idempotency-Key"],
        ("/clubs/{club_id}/posts", "post"): ["3 a day", "RATELIMIT_POSTS_PER_USER"],
        ("/auth/refresh", "post"): ["REFRESH_REUSE_GRACE_SECONDS"],
        ("/me", "patch"): ["90 days"],
        ("/moderation/actions", "post"): ["staff_account", "403"],
        ("/city-partners/{partner_id}/scorecard", "get"): ["month_outside_contract"],
    }
    for (path, method), phrases in said.items():
        description = spec["paths"][f"{API}{path}"][method]["description"]
        for phrase in phrases:
            assert phrase in description, (path, phrase)


class _AnyText(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    __hash__ = str.__hash__


ANY_TEXT = _AnyText()


def test_the_document_speaks_json_schema_and_ecma_patterns_only(spec):
    text = json.dumps(spec)
    assert "x-minimum" not in text and "x-maximum" not in text
    assert "(?!" not in text  # Python-only lookahead in a published pattern
    month = spec["paths"][f"{API}/admin/scorecards"]["get"]["parameters"]
    [pattern] = [p["schema"]["pattern"] for p in month if p["name"] == "month"]
    assert re.fullmatch(pattern, "2026-12") and not re.fullmatch(pattern, "0001-01")
    contract = spec["components"]["schemas"]["CityPartnerCreate"]["properties"]
    assert "2000-01-01 to 2099-12-31" in contract["contract_start"]["description"]
