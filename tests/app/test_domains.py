"""The installed domains: `app/` reaches them only through the one list, and every piece
the list names exists."""

from __future__ import annotations

import json
import subprocess
import sys

import dramatiq

from app import domains
from app import handlers as registry
from tests.conftest import ROOT

DOMAIN_PACKAGES = {
    "accounts",
    "community",
    "drops",
    "events",
    "loyalty",
    "notifications",
    "partners",
    "workers",
}


def test_importing_the_base_imports_no_domain():
    modules = [f"app.{path.stem}" for path in (ROOT / "app").glob("[!_]*.py")]
    script = (
        f"import json, sys\nimport app\nfor name in {modules!r}:\n    __import__(name)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert not set(json.loads(loaded.stdout)) & DOMAIN_PACKAGES


def test_every_piece_the_list_names_exists(app):
    installed = {domain.name for domain in domains.INSTALLED_DOMAINS}
    assert installed == DOMAIN_PACKAGES
    registered = {rule.rule for rule in app.url_map.iter_rules()}
    for blueprint in domains.blueprints():
        assert any(rule.startswith(f"/api/v1{blueprint.url_prefix or ''}") for rule in registered)
    registry.load_handler_modules()
    broker = dramatiq.get_broker()
    for job in domains.schedule():
        assert broker.get_actor(job.actor_name)
    for domain in domains.INSTALLED_DOMAINS:
        for target in (
            *domain.personal_data.values(),
            *domain.metrics,
            *domain.commands,
            *(backfill.target for backfill in domain.backfills),
            *filter(
                None,
                (
                    domain.profile,
                    domain.city_figures,
                    domain.scorecard,
                    domain.demo,
                    domain.caller_loader,
                ),
            ),
        ):
            assert callable(domains.resolve(target)), target
    assert {"create-admin", "seed-demo", "init-db"} <= set(app.cli.list_commands(None))


def test_a_process_serving_no_http_has_the_commands_and_collectors_but_no_routes(app):
    """The worker, dispatcher and scheduler start with `serves_http=False`: the domains'
    operator commands and metrics, not their routes, consoles or OpenAPI document (whose
    building was four fifths of a process's start-up CPU)."""
    script = (
        "import json\nfrom app import create_app\n"
        "background = create_app(serves_http=False)\n"
        "print(json.dumps({'rules': [rule.rule for rule in background.url_map.iter_rules()],"
        " 'commands': sorted(background.cli.commands),"
        " 'collectors': len(background.extensions['metrics_collectors'])}))"
    )
    started = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    background = json.loads(started.stdout.splitlines()[-1])
    assert background["rules"] == ["/static/<path:filename>"]
    # flask-smorest's `openapi` command prints the document a process serving HTTP builds.
    assert set(app.cli.commands) - set(background["commands"]) == {"openapi"}
    assert background["collectors"] == len(app.extensions["metrics_collectors"])
    assert any(rule.rule.startswith("/api/v1/") for rule in app.url_map.iter_rules())
