"""What the served OpenAPI document says of the API as a whole (`info.description` and
`servers`), for the interactive docs and for generated clients, which carry it. The rules of
single operations are in their own descriptions; docs/api-guide.md says the rest at length.
"""

from __future__ import annotations

from typing import Any

DESCRIPTION = """\
The backend of a car brand's owner community: accounts and verified vehicles, clubs and
posts, local events run by city partners' circle leaders, a points ledger with rewards, and
notifications. Paths below are under `/api/v1`; everything speaks JSON.

**Authentication.** `POST /auth/register` or `POST /auth/login` answer an `access_token`
(send it as `Authorization: Bearer <token>`; it lives 15 minutes by default) and a
`refresh_token`. `POST /auth/refresh` with the refresh token as the bearer answers a new
pair: keep the new refresh token, the old one is spent (sent again later, it ends the
session; parallel refreshes within a few seconds all get the same pair). Operations marked
with no security are public.

**Roles.** Everyone signed in is an owner. Circle leaders and ambassadors act in the cities
of their grants, admins everywhere; `GET /me` lists the caller's `grants` and the
`city_partners` they work for. Outside the caller's scope a thing whose existence is
private answers 404; an operation of a role the caller holds nowhere answers 403.

**Errors.** Every error is one envelope, `{code, status, message, error, errors?}`:
branch on `error`, a stable slug. Each operation lists, per status, the slugs it may
answer, each as a schema of its own (a `oneOf` told apart by `error`).

**Retries.** Every POST that creates something takes an `Idempotency-Key` header: the same
key and body sent again within 48 hours answer the first response (with
`Idempotent-Replayed: true`) and change nothing.

**Lists** answer `{items, next_cursor}`; pass `next_cursor` back as `cursor` for the next
page (`limit` 1-100, default 20). Pages never skip or repeat an item.

**Times** are RFC 3339 with an offset; a city's things (its events, their windows) are shown
in the city's time zone. Times sent in a body must carry an offset.

**Limits and availability.** 429 `rate_limited` and 503 answers carry `Retry-After`
(seconds); nothing else does. A 503 write may have been applied: retry it with the same
`Idempotency-Key`.

Every error body carries `request_id`, as the `X-Request-ID` header does: quote it when
reporting a problem. The API guide (`docs/api-guide.md`) says the rest: each role's
scope, every error slug, the domain events.
"""

# Relative: the server that served this document. Paths carry their `/api/v1` prefix.
SERVERS: list[dict[str, Any]] = [
    {"url": "/", "description": "The server this document was fetched from"},
]
