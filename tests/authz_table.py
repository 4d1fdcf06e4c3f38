"""Who may call each operation of the OpenAPI document: the one authorization table.

tests/test_authz.py walks every row through HTTP for each kind of caller and fails on an
operation of the served document that has no row here, so a new endpoint cannot ship
without deciding who may call it.

Callers (tests/test_authz.py builds them, all in SZ unless said otherwise):
- `anonymous`: no token;
- `owner`: an owner who owns the thing the path names (their vehicle, registration,
  redemption, notification, session);
- `other_owner`: another owner of the same city;
- `leader`: a circle leader of SZ, the city of the thing, and so staff of SZ's city
  partner; `other_leader`: of CD (no partner);
- `ambassador`: an ambassador of SZ;
- `club_moderator`: an owner of SZ who moderates the club the path names, where the owner
  is an active member; the club's pending applicant is a third owner, not a caller;
- `admin`: brand HQ.
An allowed caller is not refused (no 401, 403 or 404); any other is refused: 401 without a
token, 403 or 404 (a thing the caller may not see is not found) with one.
"""

from __future__ import annotations

ANONYMOUS, OWNER, OTHER_OWNER = "anonymous", "owner", "other_owner"
LEADER, OTHER_LEADER, AMBASSADOR, ADMIN = "leader", "other_leader", "ambassador", "admin"
MODERATOR = "club_moderator"
CALLERS = (ANONYMOUS, OWNER, OTHER_OWNER, LEADER, OTHER_LEADER, AMBASSADOR, MODERATOR, ADMIN)

ANYONE = frozenset(CALLERS)
# Any logged-in caller, acting on their own account (`/me/...`) or on what every member sees.
SIGNED_IN = ANYONE - {ANONYMOUS}
ADMINS = frozenset({ADMIN})
# Staff of the thing's city.
CITY_LEADERS = frozenset({LEADER, ADMIN})
# The owner of the thing the path names; a caller without one gets 404.
THE_OWNER = frozenset({OWNER})
THE_OWNER_OR_ADMIN = frozenset({OWNER, ADMIN})
# The club's active members.
MEMBERS = frozenset({OWNER, MODERATOR})
# Who manages a club's members: its moderators, its city's leaders, admins.
CLUB_MANAGERS = frozenset({MODERATOR, LEADER, ADMIN})
# Who moderates content in a city: its ambassadors, admins.
CITY_MODERATORS = frozenset({AMBASSADOR, ADMIN})
# Authenticated by something other than an access token (a refresh token, a partner's
# signature): every caller of the table is refused with 401.
OTHER_CREDENTIALS = frozenset()

ACCESS: dict[str, frozenset[str]] = {
    # accounts
    "POST /api/v1/auth/register": ANYONE,
    "POST /api/v1/auth/login": ANYONE,
    "POST /api/v1/auth/refresh": OTHER_CREDENTIALS,
    "POST /api/v1/auth/password-reset": ANYONE,
    "POST /api/v1/auth/password-reset/confirm": ANYONE,
    "POST /api/v1/auth/logout": SIGNED_IN,
    "POST /api/v1/me/password": SIGNED_IN,
    "GET /api/v1/me/sessions": SIGNED_IN,
    "DELETE /api/v1/me/sessions/{session_id}": THE_OWNER,
    "GET /api/v1/me": SIGNED_IN,
    "PATCH /api/v1/me": SIGNED_IN,
    "DELETE /api/v1/me": SIGNED_IN,
    "GET /api/v1/me/referral": SIGNED_IN,
    "GET /api/v1/me/export": SIGNED_IN,
    "POST /api/v1/admin/role-grants": ADMINS,
    "DELETE /api/v1/admin/role-grants/{grant_id}": ADMINS,
    "GET /api/v1/cities": ANYONE,
    "POST /api/v1/cities": ADMINS,
    "GET /api/v1/me/vehicles": SIGNED_IN,
    "POST /api/v1/me/vehicles": SIGNED_IN,
    "GET /api/v1/vehicles": frozenset({LEADER, OTHER_LEADER, ADMIN}),
    "POST /api/v1/vehicles/{vehicle_id}/verify": CITY_LEADERS,
    "POST /api/v1/vehicles/{vehicle_id}/reject": CITY_LEADERS,
    # notifications
    "GET /api/v1/me/notifications": SIGNED_IN,
    "POST /api/v1/me/notifications/{notification_id}/read": THE_OWNER,
    "POST /api/v1/me/notifications/read-all": SIGNED_IN,
    "GET /api/v1/me/notification-preferences": SIGNED_IN,
    "PUT /api/v1/me/notification-preferences": SIGNED_IN,
    # workers
    "GET /api/v1/admin/dead-letters": ADMINS,
    "POST /api/v1/admin/dead-letters/{dead_letter_id}/replay": ADMINS,
    # loyalty
    "GET /api/v1/me/points": SIGNED_IN,
    "GET /api/v1/me/points/ledger": SIGNED_IN,
    "POST /api/v1/admin/points/adjustments": ADMINS,
    "POST /api/v1/admin/points/entries/{entry_id}/reversal": ADMINS,
    "GET /api/v1/admin/earning-rules": ADMINS,
    "PUT /api/v1/admin/earning-rules/{code}": ADMINS,
    "POST /api/v1/admin/reconciliation/runs": ADMINS,
    "GET /api/v1/admin/reconciliation/runs/{run_id}": ADMINS,
    "GET /api/v1/rewards": SIGNED_IN,
    "GET /api/v1/admin/rewards": ADMINS,
    "GET /api/v1/redemptions/{redemption_id}": THE_OWNER_OR_ADMIN,
    "POST /api/v1/rewards": ADMINS,
    "PATCH /api/v1/rewards/{reward_id}": ADMINS,
    "POST /api/v1/redemptions": SIGNED_IN,
    "GET /api/v1/me/redemptions": SIGNED_IN,
    "POST /api/v1/redemptions/{redemption_id}/fulfill": CITY_LEADERS,
    "POST /api/v1/redemptions/{redemption_id}/cancel": THE_OWNER_OR_ADMIN,
    "POST /api/v1/admin/partners": ADMINS,
    "POST /api/v1/partner/points/credits": OTHER_CREDENTIALS,
    # ecosystem partners: points both ways (owners' pay codes, partners' signed requests)
    "POST /api/v1/me/pay-codes": SIGNED_IN,
    "POST /api/v1/partner/points/debits": OTHER_CREDENTIALS,
    "POST /api/v1/partner/points/reversals": OTHER_CREDENTIALS,
    "POST /api/v1/partner/statements": OTHER_CREDENTIALS,
    "GET /api/v1/admin/partners": ADMINS,
    "GET /api/v1/admin/partners/{ecosystem_partner_id}": ADMINS,
    "PATCH /api/v1/admin/partners/{ecosystem_partner_id}": ADMINS,
    "POST /api/v1/admin/partners/{ecosystem_partner_id}/secrets": ADMINS,
    "DELETE /api/v1/admin/partners/{ecosystem_partner_id}/secrets/previous": ADMINS,
    "GET /api/v1/admin/partners/{ecosystem_partner_id}/statements": ADMINS,
    "GET /api/v1/admin/partners/{ecosystem_partner_id}/statements/{day}": ADMINS,
    "GET /api/v1/admin/partners/{ecosystem_partner_id}/statements/{day}/exceptions": ADMINS,
    "POST /api/v1/admin/statement-exceptions/{exception_id}/resolution": ADMINS,
    "GET /api/v1/admin/partners/{ecosystem_partner_id}/settlement": ADMINS,
    "GET /api/v1/admin/partners/{ecosystem_partner_id}/settlement.csv": ADMINS,
    "POST /api/v1/admin/partners/{ecosystem_partner_id}/settlement/close": ADMINS,
    # events
    "GET /api/v1/events": SIGNED_IN,
    "GET /api/v1/events/managed": frozenset({LEADER, OTHER_LEADER, ADMIN}),
    "POST /api/v1/events": CITY_LEADERS,
    "GET /api/v1/events/{event_id}": SIGNED_IN,
    "PATCH /api/v1/events/{event_id}": CITY_LEADERS,
    "POST /api/v1/events/{event_id}/publish": CITY_LEADERS,
    "POST /api/v1/events/{event_id}/cancel": CITY_LEADERS,
    "POST /api/v1/events/{event_id}/complete": CITY_LEADERS,
    "GET /api/v1/events/{event_id}/registrations": CITY_LEADERS,
    "POST /api/v1/events/{event_id}/registrations": SIGNED_IN,
    "DELETE /api/v1/events/{event_id}/registrations/me": THE_OWNER,
    "GET /api/v1/events/{event_id}/ticket": THE_OWNER,
    "POST /api/v1/events/{event_id}/check-ins": CITY_LEADERS,
    "GET /api/v1/events/{event_id}/door-kit": CITY_LEADERS,
    "GET /api/v1/events/{event_id}/check-in-conflicts": CITY_LEADERS,
    "GET /api/v1/me/registrations": SIGNED_IN,
    "GET /api/v1/cities/{code}/stats": CITY_LEADERS,
    # community
    "GET /api/v1/clubs": SIGNED_IN,
    "POST /api/v1/clubs": CITY_LEADERS,
    "GET /api/v1/clubs/{club_id}": SIGNED_IN,
    "PATCH /api/v1/clubs/{club_id}": CITY_LEADERS,
    "POST /api/v1/clubs/{club_id}/members": SIGNED_IN,
    "GET /api/v1/clubs/{club_id}/members": CLUB_MANAGERS,
    "DELETE /api/v1/clubs/{club_id}/members/me": MEMBERS,
    "POST /api/v1/clubs/{club_id}/members/{user_id}/approve": CLUB_MANAGERS,
    "DELETE /api/v1/clubs/{club_id}/members/{user_id}": CLUB_MANAGERS,
    "PUT /api/v1/clubs/{club_id}/moderators/{user_id}": CITY_LEADERS,
    "DELETE /api/v1/clubs/{club_id}/moderators/{user_id}": CITY_LEADERS,
    "GET /api/v1/me/clubs": SIGNED_IN,
    "GET /api/v1/clubs/{club_id}/posts": SIGNED_IN,
    "POST /api/v1/clubs/{club_id}/posts": MEMBERS,
    "GET /api/v1/feed": SIGNED_IN,
    "GET /api/v1/posts/{post_id}": SIGNED_IN,
    "DELETE /api/v1/posts/{post_id}": THE_OWNER,
    "GET /api/v1/posts/{post_id}/comments": SIGNED_IN,
    "POST /api/v1/posts/{post_id}/comments": MEMBERS,
    "DELETE /api/v1/comments/{comment_id}": THE_OWNER,
    "PUT /api/v1/posts/{post_id}/reactions/like": SIGNED_IN,
    "DELETE /api/v1/posts/{post_id}/reactions/like": SIGNED_IN,
    "POST /api/v1/posts/{post_id}/feature": CITY_MODERATORS,
    "POST /api/v1/reports": SIGNED_IN,
    "GET /api/v1/moderation/queue": CITY_MODERATORS,
    "POST /api/v1/moderation/actions": CITY_MODERATORS,
    "GET /api/v1/moderation/actions": CITY_MODERATORS,
    "GET /api/v1/moderation/items/{target_type}/{target_id}": CITY_MODERATORS,
    "PUT /api/v1/moderation/items/{target_type}/{target_id}/claim": CITY_MODERATORS,
    "DELETE /api/v1/moderation/items/{target_type}/{target_id}/claim": CITY_MODERATORS,
    # The ambassador decided the action this path names (tests/test_authz.py).
    "POST /api/v1/moderation/actions/{action_id}/undo": CITY_MODERATORS,
    "POST /api/v1/moderation/bulk-actions": CITY_MODERATORS,
    "POST /api/v1/admin/sensitive-words/test": ADMINS,
    "GET /api/v1/admin/sensitive-words": ADMINS,
    "POST /api/v1/admin/sensitive-words": ADMINS,
    "DELETE /api/v1/admin/sensitive-words/{word_id}": ADMINS,
    # city partners (their staff: the partner's circle leaders), feedback and follow-ups
    "GET /api/v1/admin/city-partners": ADMINS,
    "POST /api/v1/admin/city-partners": ADMINS,
    "PATCH /api/v1/admin/city-partners/{partner_id}": ADMINS,
    "GET /api/v1/city-partners/{partner_id}": CITY_LEADERS,
    "POST /api/v1/admin/city-partners/{partner_id}/budget-allocations": ADMINS,
    "GET /api/v1/city-partners/{partner_id}/budget": CITY_LEADERS,
    "GET /api/v1/city-partners/{partner_id}/scorecard": CITY_LEADERS,
    "GET /api/v1/admin/scorecards": ADMINS,
    "GET /api/v1/events/{event_id}/feedback": CITY_LEADERS,
    # The owner attended the event this path names (tests/test_authz.py).
    "POST /api/v1/events/{event_id}/feedback": THE_OWNER,
    "GET /api/v1/follow-ups": frozenset({LEADER, OTHER_LEADER, ADMIN}),
    "POST /api/v1/follow-ups/{follow_up_id}/close": CITY_LEADERS,
    # Every CSV on a path of its own; admin writes under /admin (the older paths answer too).
    "GET /api/v1/city-partners/{partner_id}/scorecard.csv": CITY_LEADERS,
    "GET /api/v1/admin/scorecards.csv": ADMINS,
    "POST /api/v1/admin/cities": ADMINS,
    "POST /api/v1/admin/rewards": ADMINS,
    "PATCH /api/v1/admin/rewards/{reward_id}": ADMINS,
    # drops (the world's drop releases an SZ event's seats; its body drops another SZ
    # event): staff organise drops and enter none (403 `staff_entry`); the owner entered it
    "POST /api/v1/admin/drops": CITY_LEADERS,
    "GET /api/v1/drops": SIGNED_IN,
    "GET /api/v1/drops/{drop_id}": SIGNED_IN,
    "POST /api/v1/drops/{drop_id}/entries": frozenset({OWNER, OTHER_OWNER, MODERATOR}),
    "GET /api/v1/drops/{drop_id}/entries/me": THE_OWNER,
    "GET /api/v1/drops/{drop_id}/figures": CITY_LEADERS,
}

# Lists a role works through, scoped by `?city=`. Asked for SZ by someone who holds the role
# (the value) in CD only, each answers 403 `forbidden`, as docs/api-guide.md promises: which
# cities exist is no secret, so a city outside the caller's scope is refused, not hidden.
SCOPED_LISTS: dict[str, str] = {
    "GET /api/v1/vehicles": "circle_leader",
    "GET /api/v1/events/managed": "circle_leader",
    "GET /api/v1/follow-ups": "circle_leader",
    "GET /api/v1/moderation/queue": "ambassador",
    "GET /api/v1/moderation/actions": "ambassador",
}

# The consoles' pages (consoles/), by Flask rule: who may open each. tests/consoles/
# test_authz.py walks every row as each caller, signed in with a console session, and fails
# on a console route without a row. Owners are no staff: the console signs them out and
# sends them to its sign-in form, as it does anonymous visitors.
STAFF_LEADERS = frozenset({LEADER, OTHER_LEADER, ADMIN})
STAFF = frozenset({LEADER, OTHER_LEADER, AMBASSADOR, ADMIN})
CONSOLE_ACCESS: dict[str, frozenset[str]] = {
    "GET /console/sign-in": ANYONE,
    "POST /console/sign-in": ANYONE,
    "POST /console/sign-out": ANYONE,
    "GET /console/language/<code>": ANYONE,
    "GET /console/sw.js": ANYONE,
    "GET /console/static/<path:filename>": ANYONE,
    "GET /console/": STAFF,
    "GET /console/leader": STAFF_LEADERS,
    "GET /console/ambassador": frozenset({AMBASSADOR, ADMIN}),
    "GET /console/admin": ADMINS,
    "GET /console/events": STAFF_LEADERS,
    "GET /console/events/new": STAFF_LEADERS,
    "POST /console/events/new": STAFF_LEADERS,
    "GET /console/events/<event_id>": CITY_LEADERS,
    "GET /console/events/<event_id>/edit": CITY_LEADERS,
    "POST /console/events/<event_id>/edit": CITY_LEADERS,
    "POST /console/events/<event_id>/publish": CITY_LEADERS,
    "POST /console/events/<event_id>/cancel": CITY_LEADERS,
    "POST /console/events/<event_id>/complete": CITY_LEADERS,
    "GET /console/events/<event_id>/registrations": CITY_LEADERS,
    "GET /console/events/<event_id>/registrations.csv": CITY_LEADERS,
    "GET /console/events/<event_id>/feedback": CITY_LEADERS,
    "GET /console/events/<event_id>/door": CITY_LEADERS,
    "GET /console/events/<event_id>/door/kit": CITY_LEADERS,
    "GET /console/events/<event_id>/door/counts": CITY_LEADERS,
    "POST /console/events/<event_id>/door/scans": CITY_LEADERS,
    "GET /console/vehicles": STAFF_LEADERS,
    "POST /console/vehicles/<vehicle_id>/verify": CITY_LEADERS,
    "POST /console/vehicles/<vehicle_id>/reject": CITY_LEADERS,
    "GET /console/follow-ups": STAFF_LEADERS,
    "POST /console/follow-ups/<follow_up_id>/close": CITY_LEADERS,
    # A leader's partner: SZ's leader works for SZ Motors; CD's for none.
    "GET /console/budget": CITY_LEADERS,
    "GET /console/scorecard": CITY_LEADERS,
    "GET /console/scorecard.csv": CITY_LEADERS,
    # The ambassador's review desk: the ambassador and admins of the city of what it shows.
    "GET /console/review": CITY_MODERATORS,
    "POST /console/review/decide": CITY_MODERATORS,
    "POST /console/review/bulk": CITY_MODERATORS,
    "POST /console/review/claim": CITY_MODERATORS,
    "POST /console/review/release": CITY_MODERATORS,
    # The ambassador decided the action this path names (tests/test_authz.py).
    "POST /console/review/decisions/<action_id>/undo": CITY_MODERATORS,
    "GET /console/review/<target_type>/<target_id>": CITY_MODERATORS,
    "GET /console/audit": CITY_MODERATORS,
    # The admin console.
    "GET /console/words": ADMINS,
    "POST /console/words/add": ADMINS,
    "POST /console/words/<word_id>/remove": ADMINS,
    "POST /console/words/test": ADMINS,
    "GET /console/admin/cities": ADMINS,
    "POST /console/admin/cities": ADMINS,
    "GET /console/admin/partners": ADMINS,
    "POST /console/admin/partners": ADMINS,
    "GET /console/admin/partners/<partner_id>": ADMINS,
    "POST /console/admin/partners/<partner_id>/allocate": ADMINS,
    "POST /console/admin/partners/<partner_id>/edit": ADMINS,
    "GET /console/admin/scorecards": ADMINS,
    "GET /console/admin/scorecards.csv": ADMINS,
    "GET /console/admin/rewards": ADMINS,
    "POST /console/admin/rewards": ADMINS,
    "GET /console/admin/rewards/<reward_id>": ADMINS,
    "POST /console/admin/rewards/<reward_id>": ADMINS,
    "GET /console/admin/earning-rules": ADMINS,
    "POST /console/admin/earning-rules/<rule_code>": ADMINS,
    "GET /console/admin/points": ADMINS,
    "POST /console/admin/points/<user_id>/adjust": ADMINS,
    "POST /console/admin/points/entries/<entry_id>/reverse": ADMINS,
    "GET /console/admin/bulk-credits": ADMINS,
    "POST /console/admin/bulk-credits": ADMINS,
    "GET /console/admin/bulk-credits/<job_id>": ADMINS,
    "POST /console/admin/bulk-credits/<job_id>/start": ADMINS,
    "GET /console/admin/bulk-credits/<job_id>/not-applied.csv": ADMINS,
    "GET /console/admin/reconciliation": ADMINS,
    "POST /console/admin/reconciliation/start": ADMINS,
    "GET /console/admin/reconciliation/<run_id>": ADMINS,
    "GET /console/admin/dead-letters": ADMINS,
    "POST /console/admin/dead-letters/<dead_letter_id>/replay": ADMINS,
}
