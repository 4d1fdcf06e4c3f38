"""docs/api-guide.md keeps up with the code: every error slug a client can receive and every
domain event recorded or handled is described there."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from app.errors import _SLUG_BY_STATUS

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "api-guide.md").read_text()
_NOT_SOURCE = {"tests", "bench", "docs", ".venv", "var"}
_ERRORS = {
    "BadRequest",
    "ValidationFailed",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "ServiceUnavailable",
}


def calls() -> Iterator[ast.Call]:
    for path in ROOT.glob("*/**/*.py"):
        if path.relative_to(ROOT).parts[0] not in _NOT_SOURCE:
            yield from (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call))


def name_of(call: ast.Call) -> str | None:
    function = call.func
    return function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)


def literal(call: ast.Call, position: int, keyword: str | None = None) -> str | None:
    """The string literal passed at `position` or as `keyword`, if any."""
    values = [k.value for k in call.keywords if k.arg == keyword] if keyword else []
    if len(call.args) > position:
        values.append(call.args[position])
    found = [v.value for v in values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return found[0] if found else None


def test_the_guide_names_every_error_slug():
    slugs = set(_SLUG_BY_STATUS.values())
    for call in calls():
        if name_of(call) in _ERRORS:
            slugs.add(literal(call, 0, "error"))
        elif name_of(call) == "envelope":
            slugs.add(literal(call, 2, "error"))
    slugs.discard(None)
    assert len(slugs) > 30
    assert sorted(slug for slug in slugs if f"`{slug}`" not in GUIDE) == []


def test_the_guide_names_every_domain_event():
    types = set()
    for call in calls():
        if name_of(call) == "record_event":
            types.add(literal(call, 1))
        elif name_of(call) == "handles":
            types.add(literal(call, 0))
    types.discard(None)
    assert {"user.registered", "event.attended"} <= types
    assert sorted(kind for kind in types if f"`{kind}`" not in GUIDE) == []
