"""Every time the API shows is RFC 3339 (issue 20, finding 8: an audit entry's `before` and
`after` showed RFC 1123, `Mon, 07 Dec 2026 ...`). The served OpenAPI document is walked for
every time-valued field; each one a name calls a time must be declared `date-time` (or
`date`); then every GET operation is called over a world with data in each of them, and
each value at a time-valued field, and each time written in a free-form object, must be
RFC 3339."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from app.auth import load_caller
from community import moderation, reports
from tests.support import make_person
from tests.test_fuzz import World, world  # noqa: F401 - the fixture

API = "/api/v1"
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A property whose name says it holds a time or a date.
TIME_NAME = re.compile(r"(_at|_until|^until|_since|_on|^date|expires.*)$")
# Text that holds a time of day or a weekday's abbreviation before a date, as RFC 1123 does.
TIMEISH = re.compile(r"\d{2}:\d{2}:\d{2}|^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d")


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _properties(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    schema = _resolve(spec, schema)
    found = dict(schema.get("properties", {}))
    for key in ("allOf", "oneOf", "anyOf"):
        for part in schema.get(key, ()):
            found.update(_properties(spec, part))
    return found


def _schemas(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema of the document, by a path that names it: components, and the bodies
    and answers of every operation (inline ones too), with all they nest."""
    pending: list[tuple[str, Any]] = list(spec["components"]["schemas"].items())
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue  # the path's own `parameters`
            for status, answer in operation.get("responses", {}).items():
                for media in answer.get("content", {}).values():
                    pending.append((f"{method} {path} {status}", media["schema"]))
    seen: set[int] = set()
    while pending:
        where, schema = pending.pop()
        if id(schema) in seen or not isinstance(schema, dict):
            continue
        seen.add(id(schema))
        yield where, schema
        schema = _resolve(spec, schema)
        for name, field in schema.get("properties", {}).items():
            pending.append((f"{where}.{name}", field))
        for key in ("allOf", "oneOf", "anyOf"):
            pending.extend((where, part) for part in schema.get(key, ()))
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                pending.append((f"{where}[]", schema[key]))


def test_every_time_named_field_of_the_document_is_declared_a_time(client):
    spec = client.get(f"{API}/openapi.json").json
    undeclared, declared = [], 0
    for where, schema in _schemas(spec):
        name = where.rsplit(".", 1)[-1]
        schema = _resolve(spec, schema)
        if schema.get("format") in ("date-time", "date"):
            declared += 1
        elif "." in where and TIME_NAME.search(name) and schema.get("type") == "string":
            undeclared.append(where)
    assert sorted(set(undeclared)) == []
    assert declared > 50  # the walk reached the document's times


def _check(spec: dict, value: Any, schema: dict | None, where: str, seen: list, bad: list) -> None:
    """Walk an answer alongside its schema; a part without one is free-form."""
    if value is None:
        return
    resolved = _resolve(spec, schema) if schema else {}
    time_format = (
        resolved.get("format") if resolved.get("format") in ("date-time", "date") else None
    )
    if time_format:
        pattern = RFC3339 if time_format == "date-time" else DATE
        seen.append(where)
        if not (isinstance(value, str) and pattern.fullmatch(value)):
            bad.append((where, value))
    elif isinstance(value, dict):
        fields = _properties(spec, resolved) if resolved else {}
        extra = resolved.get("additionalProperties")
        for name, item in value.items():
            inner = fields.get(name) or (extra if isinstance(extra, dict) else None)
            _check(spec, item, inner, f"{where}.{name}", seen, bad)
    elif isinstance(value, list):
        for item in value:
            _check(spec, item, resolved.get("items"), f"{where}[]", seen, bad)
    elif isinstance(value, str) and TIMEISH.search(value):
        # A time in a free-form object, or in a plain string field.
        seen.append(where)
        if not (RFC3339.fullmatch(value) or DATE.fullmatch(value)):
            bad.append((where, value))


def test_every_time_in_every_answer_is_rfc3339(client, app, world: World):  # noqa: F811
    # What fills the free-form objects with times: an audit entry with a mute's and a ban's
    # `muted_until` and `banned_until`, and the review queue's content.
    ambassador = load_caller(make_person("SZ", role="ambassador").id)
    leader = world.people["leader"]
    target = make_person("SZ")
    for action in ("mute", "ban"):
        moderation.take_action(ambassador, "user", str(target.user.pk), action, "r", 3)
    reports.file_report(load_caller(leader.id), "post", world.ids["post_id"], "off topic")
    spec = client.get(f"{API}/openapi.json").json
    seen: list[str] = []
    bad: list[tuple[str, Any]] = []
    called = 0
    for path, item in spec["paths"].items():
        if (
            "get" not in item
            or "{" in path
            and not all(name in world.ids for name in re.findall(r"{(\w+)}", path))
        ):
            continue
        url = re.sub(r"{(\w+)}", lambda found: world.ids[found[1]], path)
        for person in ("admin", "owner"):
            answer = client.get(url, headers=world.people[person].headers)
            if answer.status_code != 200 or not answer.is_json:
                continue
            called += 1
            schema = item["get"]["responses"]["200"]["content"]["application/json"]["schema"]
            _check(spec, answer.json, schema, f"GET {path}", seen, bad)
    assert bad == []
    assert called > 40
    audit = f"GET {API}/moderation/actions.items[]"
    assert f"{audit}.after.banned_until" in seen and f"{audit}.after.muted_until" in seen
    assert len(set(seen)) > 60, sorted(set(seen))  # 80 time fields when written
