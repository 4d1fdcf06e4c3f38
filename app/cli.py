"""Operator commands: `flask --app wsgi create-admin|seed-demo|init-db`."""

from __future__ import annotations

import click
from flask import Flask

from app import db


def init_app(app: Flask) -> None:
    @app.cli.command("create-admin")
    @click.option("--email", required=True)
    @click.option("--password", required=True)
    @click.option(
        "--city",
        "city_code",
        default="SZ",
        show_default=True,
        help="Home city of a new admin account (created if missing).",
    )
    def create_admin(email: str, password: str, city_code: str) -> None:
        """Create an admin, or reset an existing admin's password."""
        from accounts.seed import ensure_admin

        user, created = ensure_admin(email, password, city_code)
        click.echo(f"{'created' if created else 'reset'} admin {user.email} ({user.pk})")

    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Load a small demo world (cities, partner staff, owners, vehicles and more)."""
        from app.seed import seed_demo_world

        for line in seed_demo_world():
            click.echo(line)

    @app.cli.command("init-db")
    @click.option(
        "--drop-undeclared",
        is_flag=True,
        help="Also drop indexes no model declares (left by earlier releases).",
    )
    def init_db(drop_undeclared: bool) -> None:
        """Create every index the models declare (also done at start-up), and backfill
        what a release moved (run it after each upgrade; running it again is harmless)."""
        from accounts.services import copy_grants_to_users

        db.ensure_indexes()
        click.echo("indexes ensured")
        click.echo(f"role grants copied onto {copy_grants_to_users()} users")
        if drop_undeclared:
            for name in db.drop_undeclared_indexes():
                click.echo(f"dropped {name}")
