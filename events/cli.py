"""Events' operator commands (installed by app/domains.py): rotating the ticket keys at
once, and retiring one that must stop verifying."""

from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import with_appcontext

from events import ticket_keys
from events.tickets import TICKET_GRACE


@click.command("rotate-ticket-keys")
@with_appcontext
def rotate_ticket_keys() -> None:
    """Rotate every city partner's ticket key now (the old keys verify their tickets)."""
    turned = ticket_keys.rotate_keys(TICKET_GRACE, rotation=timedelta(0))
    click.echo(f"rotated {turned['rotated']} ticket keys")


@click.command("retire-ticket-key")
@click.argument("kid")
@with_appcontext
def retire_ticket_key(kid: str) -> None:
    """Stop the ticket key KID verifying at once: its tickets are refused and re-issued."""
    if not ticket_keys.retire_key(kid):
        raise click.ClickException(f"no ticket key {kid}")
    click.echo(f"retired ticket key {kid}")
