"""Accounts' operator command: `flask --app wsgi create-admin` (installed by app/domains.py)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from accounts.seed import ensure_admin


@click.command("create-admin")
@click.option("--email", required=True)
@click.option("--password", required=True)
@click.option(
    "--city",
    "city_code",
    default="SZ",
    show_default=True,
    help="Home city of a new admin account (created if missing).",
)
@with_appcontext
def create_admin(email: str, password: str, city_code: str) -> None:
    """Create an admin, or reset an existing admin's password."""
    user, created = ensure_admin(email, password, city_code)
    click.echo(f"{'created' if created else 'reset'} admin {user.email} ({user.pk})")
