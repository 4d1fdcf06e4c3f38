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
