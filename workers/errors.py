"""The refusals of the dead-letter endpoints."""

from __future__ import annotations

from app.errors import Conflict


class AlreadyReplayed(Conflict):
    error = "already_replayed"
    message = "This dead letter has already been replayed."
