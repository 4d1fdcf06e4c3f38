"""The shape of the code, read from its source: what may import what (the order
`app/domains.py` declares), and how a transaction talks to MongoDB (docs/database.md)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

# What mongoengine offers without a session: inside a transaction, each would read outside
# its snapshot or write outside it. (`update` and `delete` are also the unit's batch's.)
SESSIONLESS = {"objects", "save", "reload", "modify", "select_related"}
_NOT_SOURCE = {"tests", "bench", "docs", "var", "chaos", "migrations"}


def source_files() -> Iterator[Path]:
    for path in sorted(ROOT.glob("*/**/*.py")):
        if path.relative_to(ROOT).parts[0] not in _NOT_SOURCE and ".venv" not in path.parts:
            yield path


def _transactional(function: ast.FunctionDef) -> bool:
    names = [a.arg for a in (*function.args.args, *function.args.kwonlyargs)]
    return "session" in names


def sessionless_calls_in_transactions(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """`Model.objects` and a document's own save/reload/... in a function that takes the
    transaction's `session` (a unit of work, or a helper it calls)."""
    for function in ast.walk(tree):
        if not (isinstance(function, ast.FunctionDef) and _transactional(function)):
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.Attribute) and node.attr in SESSIONLESS:
                yield node.lineno, node.attr


def test_transactions_talk_to_the_collection_with_their_session():
    found = [
        f"{path.relative_to(ROOT)}:{line}: .{name}"
        for path in source_files()
        for line, name in sessionless_calls_in_transactions(ast.parse(path.read_text()))
    ]
    assert found == []


def test_the_transaction_rule_catches_a_queryset():
    unit = "def unit(session):\n    return Post.objects(pk=1).first()\n"
    assert list(sessionless_calls_in_transactions(ast.parse(unit))) == [(2, "objects")]
    helper = "def helper(session, post):\n    post.save()\n"
    assert list(sessionless_calls_in_transactions(ast.parse(helper))) == [(2, "save")]
