"""The shape of the code, read from its source: what may import what (the order
`app/domains.py` declares), and how a transaction talks to MongoDB (docs/database.md)."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

from setuptools import find_packages

from app import domains
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


# --- imports -------------------------------------------------------------------------

PROJECT = {"app", "consoles", "migrations", *(d.name for d in domains.INSTALLED_DOMAINS)}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in sorted(PROJECT)
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def imports_of(path: Path, known: Iterable[str]) -> set[str]:
    """The project modules `path` imports, anywhere in it (a function's own imports too)."""
    known = set(known)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [name if name in known else node.module for name in names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in PROJECT}
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_itself_around_a_circle():
    """Not even through a function's own import: a circle hidden that way still means
    neither module can be understood (or imported first) without the other."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles(import_graph()) == []


def test_the_order_of_app_domains_holds_in_every_import():
    """`app/` imports no domain (it reaches them through app/domains.py's names); a domain
    imports only those installed before it, never another domain's models, except the
    `domain_events` modules, which anyone may import (they import nothing but
    `app.outbox`), and the forward calls app/domains.py declares."""
    order = [domain.name for domain in domains.INSTALLED_DOMAINS]
    events = {domain.events for domain in domains.INSTALLED_DOMAINS if domain.events}
    wrong = []
    for module, targets in import_graph().items():
        package = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if other == package or other == "app":
                continue
            if package == "app":
                wrong.append(f"{module} -> {target}: app/ imports no domain")
            elif target in events or (module, target) in domains.FORWARD_CALLS:
                continue
            elif package not in order:
                continue  # the front ends and the migrations come after every domain
            elif target == f"{other}.models" or target.startswith(f"{other}.models."):
                wrong.append(f"{module} -> {target}: another domain's models")
            elif other not in order or order.index(other) > order.index(package):
                wrong.append(f"{module} -> {target}: installed after {package}")
    assert wrong == []


def test_the_declared_events_modules_stand_on_the_outbox_alone():
    graph = import_graph()
    for domain in domains.INSTALLED_DOMAINS:
        if domain.events:
            assert graph[domain.events] <= {"app.outbox"}, domain.events


def test_the_checkout_packages_exactly_what_app_domains_installs():
    """pyproject.toml finds every package but the tests; that is the list app/domains.py
    makes (the base, the installed domains, the front ends, the migrations), so a package
    outside it would ship unlisted and a listed one could not be missing."""
    found = {name.split(".")[0] for name in find_packages(str(ROOT), exclude=["tests*"])}
    assert found == set(domains.packages())
