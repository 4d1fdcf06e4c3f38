"""Personal data: every installed domain that keeps some names an exporter in the list of
installed domains (`app.domains`), so `GET /me/export` gathers all of it without the
accounts package knowing every other domain.

Erasure works the other way round: `DELETE /me` anonymises the account and records a
`user.erased` domain event in the same transaction; each domain's handler then removes or
anonymises what it keeps (ledger entries stay, pointing at the anonymised account, so totals
remain consistent).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from bson import ObjectId
from marshmallow import fields

from app import domains
from app.web import Schema

# What `GET /me/export` answers: who and when, then one section per domain that keeps
# personal data (its shape is that domain's own: the profile, the ledger, the inbox...).
PersonalDataSchema = type(
    "PersonalDataSchema",
    (Schema,),
    {
        "user_id": fields.String(required=True),
        "exported_at": fields.String(required=True, metadata={"format": "date-time"}),
        **{
            section: fields.Raw(required=True, metadata={"description": "Kept by a domain"})
            for section in domains.personal_data_sections()
        },
    },
)


def export_personal_data(user_id: Any) -> dict[str, Any]:
    sections = domains.personal_data(user_id)
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
