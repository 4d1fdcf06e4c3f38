"""Operator commands: `flask --app wsgi seed-demo|init-db`, and those the installed domains
bring (`create-admin`, from accounts)."""

from __future__ import annotations

import click
from flask import Flask

from app import db, domains


def init_app(app: Flask) -> None:
    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Load a small demo world (cities, partner staff, owners, vehicles and more)."""
        for line in domains.seed_demo():
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
        db.ensure_indexes()
        click.echo("indexes ensured")
        for line in domains.backfill():
            click.echo(line)
        if drop_undeclared:
            for name in db.drop_undeclared_indexes():
                click.echo(f"dropped {name}")
