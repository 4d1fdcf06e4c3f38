"""docs/api-guide.md keeps up with the code: every error slug a client can receive and every
domain event recorded or handled is described there."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from collections.abc import Iterator
from pathlib import Path

from app import domains, event_catalogue
from app.errors import DomainError

ROOT = Path(__file__).resolve().parent.parent
GUIDE = (ROOT / "docs" / "api-guide.md").read_text()
_NOT_SOURCE = {"tests", "bench", "docs", ".venv", "var"}


def calls() -> Iterator[ast.Call]:
    for path in ROOT.glob("*/**/*.py"):
        if path.relative_to(ROOT).parts[0] not in _NOT_SOURCE:
            yield from (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call))


def name_of(call: ast.Call) -> str | None:
    function = call.func
    return function.id if isinstance(function, ast.Name) else getattr(function, "attr", None)


def literal(call: ast.Call, position: int) -> str | None:
    """The string literal passed at `position`, if any."""
    if len(call.args) > position:
        value = call.args[position]
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
    return None


def refusals() -> set[type[DomainError]]:
    """Every refusal class: app/errors.py's and those of each installed domain's errors.py."""
    for domain in domains.INSTALLED_DOMAINS:
        if importlib.util.find_spec(f"{domain.name}.errors"):
            importlib.import_module(f"{domain.name}.errors")
    found, pending = set(), [DomainError]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass.__module__.split(".")[0] not in _NOT_SOURCE:
                found.add(subclass)
                pending.append(subclass)
    return found


def test_the_guide_names_every_error_slug():
    classes = refusals()
    assert {"accounts.errors", "events.errors", "loyalty.errors"} <= {c.__module__ for c in classes}
    undocumented = {
        (c.status, c.error) for c in classes if f"| {c.status} | `{c.error}` |" not in GUIDE
    }
    assert sorted(undocumented) == []


def test_refusals_are_declared_not_spelled_at_raise_sites():
    """A slug lives in its class: no envelope or refusal is built from a string literal."""
    spelled = [
        (name_of(call), literal(call, 0))
        for call in calls()
        if name_of(call) in {"envelope", *(c.__name__ for c in refusals())} and literal(call, 0)
    ]
    assert spelled == []


def test_the_guide_names_every_domain_event(app):
    names = {kind.name for kind in domains.event_types()}
    assert {"user.registered", "event.attended"} <= names
    assert sorted(name for name in names if f"`{name}`" not in GUIDE) == []


def test_events_md_is_written_from_the_declarations(app):
    """docs/events.md lists every declared event with its fields, emitter and handlers, as
    `make events-doc` writes it."""
    written = (ROOT / "docs" / "events.md").read_text()
    assert written == event_catalogue.render(), "docs/events.md is stale: run make events-doc"
    attended = next(line for line in written.splitlines() if line.startswith("| `event.att"))
    assert "| events |" in attended and "`points_reward`: int" in attended
    assert "`loyalty.attendance_points`" in attended
    assert written.count("\n| `") == len(domains.event_types()) >= 23


def test_the_readme_and_the_guide_cite_only_what_users_have():
    # The design notes stay with the team; what users read points at files they have.
    for text in (GUIDE, (ROOT / "README.md").read_text()):
        assert "PRODUCT.md" not in text and "API.md" not in text
        assert "the refresh token itself is not replaced" not in text


def tracked_texts() -> Iterator[tuple[Path, str]]:
    """Every source and document file of the checkout, with its text."""
    for path in sorted(ROOT.rglob("*")):
        parts = path.relative_to(ROOT).parts
        if parts[0] in {".venv", "var", ".git"} or "node_modules" in parts:
            continue
        if path.suffix in {".py", ".md", ".html", ".toml"} and path.is_file():
            yield path, path.read_text()


def test_what_the_code_cites_is_in_the_project():
    """The code, tests and documents cite docs/product.md, which the project carries, by
    invariant numbers it has."""
    product = (ROOT / "docs" / "product.md").read_text()
    invariants = {int(n) for n in re.findall(r"^(\d+)\. ", product.split("## Invariants")[1], re.M)}
    assert invariants == set(range(1, 13))
    cited = set()
    for path, text in tracked_texts():
        if path != Path(__file__):
            assert "PRODUCT.md" not in text, path
        cited |= {int(n) for n in re.findall(r"product\.md'?s? invariants? (\d+)", text)}
        cited |= {int(n) for n in re.findall(r"[Ii]nvariant (\d+) of docs/product\.md", text)}
    assert {1, 8, 10} <= cited <= invariants
