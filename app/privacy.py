"""Personal data: every domain that keeps some registers an exporter here, so `GET /me/export`
gathers all of it without the accounts package knowing every other domain.

Erasure works the other way round: `DELETE /me` anonymises the account and records a
`user.erased` domain event in the same transaction; each domain's handler then removes or
anonymises what it keeps (ledger entries stay, pointing at the anonymised account, so totals
remain consistent).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from bson import ObjectId

Exporter = Callable[[Any], Any]
_exporters: dict[str, Exporter] = {}


def exporter(section: str) -> Callable[[Exporter], Exporter]:
    """Register `func(user_id) -> JSON-able data` as the `section` of a personal data export."""

    def register(func: Exporter) -> Exporter:
        _exporters[section] = func
        return func

    return register


def export_personal_data(user_id: Any) -> dict[str, Any]:
    sections = {section: export(user_id) for section, export in sorted(_exporters.items())}
    return _jsonable({"user_id": user_id, "exported_at": datetime.now(UTC), **sections})


def _jsonable(value: Any) -> Any:
    """ISO 8601 times and string ids, as everywhere else in the API."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, ObjectId):
        return str(value)
    return value
