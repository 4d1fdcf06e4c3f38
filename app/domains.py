"""The installed domains: the one list of the domain packages that make up the service, and
what each brings to it. `app/` reaches the domains only through this list, the way Django
reaches its apps through INSTALLED_APPS: every entry names modules by their dotted path and
is imported when first needed, so importing `app` imports no domain.

Adding a domain means one `Domain(...)` here. What reads the list:
- `app.create_app`: blueprints, metrics collectors, CLI commands;
- `app.handlers.load_handler_modules`: the `tasks` modules (handlers and actors);
- `workers.schedule`: the periodic jobs;
- `app.privacy.export_personal_data` (GET /me/export): the personal data sections;
- `profile_fields` and `employers` (GET /me), `city_figures` (GET /cities/{code}/stats),
  `scorecard_figures` (a city partner's monthly scorecard), `seed_demo`;
- `app.auth.load_caller`: `load_account`, the account a request speaks for;
- `app.screening`: `contains_listed_word`, the sensitive-word screen;
- `flask init-db` (app/cli.py): the `backfills`;
- `app.event_catalogue` (docs/events.md): the `events` each domain declares.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any


@dataclass(frozen=True)
class PeriodicJob:
    actor_name: str
    # APScheduler CronTrigger fields, in UTC: {"minute": "*/5"}, {"hour": 3, "minute": 0}.
    cron: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class ScorecardScope:
    """What a city partner's scorecard covers: its city, the partner (events carry the id
    of the partner that ran them, so a handover keeps history) and [start, end) in UTC,
    the month's edges in the city's time zone."""

    city_code: str
    city_partner_id: Any
    month: str
    start: datetime
    end: datetime


@dataclass
class ScorecardPart:
    """One domain's part of a scorecard: its figures, and the owners it saw active in the
    period (the scorecard counts the union: someone who attended and posted is one)."""

    figures: dict[str, Any] = field(default_factory=dict)
    active_owner_ids: set[Any] = field(default_factory=set)


@dataclass(frozen=True)
class CityPartnerRef:
    """A city partner a staff member works for, as `GET /me` and the consoles name it."""

    id: str
    name: str
    city_code: str


@dataclass(frozen=True)
class Backfill:
    """A change of stored data a release needs, run by `flask init-db` after the indexes and
    harmless to run again: `target` is "module:function() -> int" (how many documents it
    wrote), `done` the line it prints, with `{}` for that number."""

    target: str
    done: str


@dataclass(frozen=True)
class Domain:
    name: str
    # The module whose `blueprints` tuple holds the domain's HTTP API.
    api: str | None = None
    # The module that registers the domain's event handlers and declares its actors.
    tasks: str | None = None
    # Actors (declared in `tasks`) the scheduler enqueues on a cron.
    schedule: tuple[PeriodicJob, ...] = ()
    # Sections of the personal data export: section -> "module:function(user_id)".
    personal_data: Mapping[str, str] = field(default_factory=dict)
    # Fields the domain adds to an account's profile: "module:function(user_id) -> dict".
    profile: str | None = None
    # Its part of a city's engagement figures: "module:function(city_code, start, end)".
    city_figures: str | None = None
    # Its part of a city partner's monthly scorecard: "module:function(ScorecardScope) ->
    # ScorecardPart".
    scorecard: str | None = None
    # Prometheus collectors, computed at scrape time: "module:Class".
    metrics: tuple[str, ...] = ()
    # Operator commands (click): "module:command".
    commands: tuple[str, ...] = ()
    # Its part of the demo world, after the domains listed before it: "module:function".
    demo: str | None = None
    # The domain that keeps accounts loads the account each authenticated request speaks
    # for, in one read: "module:function(user_id: ObjectId) -> app.auth.Account | None"
    # (None: unknown or erased). One installed domain names it.
    caller_loader: str | None = None
    # What `flask init-db` changes in stored data after a release, in order.
    backfills: tuple[Backfill, ...] = ()
    # The city partners an account works for, for staff discovery (GET /me):
    # "module:function(app.auth.Caller) -> list[CityPartnerRef]"; no read for non-staff.
    employers: str | None = None
    # The domain that keeps the sensitive-word list screens text for every domain
    # (`app.screening`): "module:function(text: str) -> bool". One installed domain names it.
    text_screen: str | None = None
    # The module declaring the domain events it emits (`app.outbox.declare`); other domains
    # may import it whatever their order, as it imports nothing but `app.outbox`.
    events: str | None = None


# In dependency order: a domain may call the public services of those listed before it. One
# call reaches forward: accounts pushes a password-reset code with notifications'
# `send_reset_code`, from the request (the code must never rest in the outbox). Only
# `accounts.passwords` makes it, and notifications imports nothing that imports it.
INSTALLED_DOMAINS: tuple[Domain, ...] = (
    Domain(
        "accounts",
        api="accounts.api",
        events="accounts.domain_events",
        tasks="accounts.tasks",
        # 01:40 in China.
        schedule=(PeriodicJob("accounts.forget_client_fingerprints", {"hour": 17, "minute": 40}),),
        personal_data={"account": "accounts.personal_data:export_account"},
        city_figures="accounts.services:city_figures",
        scorecard="accounts.ownership:scorecard_figures",
        commands=("accounts.cli:create_admin",),
        demo="accounts.seed:seed_people",
        caller_loader="accounts.sessions:load_account",
        backfills=(
            Backfill("accounts.roles:copy_grants_to_users", "role grants copied onto {} users"),
            Backfill("accounts.services:backfill_city_since", "city dates set on {} users"),
        ),
    ),
    Domain(
        "notifications",
        api="notifications.api",
        events="notifications.domain_events",
        tasks="notifications.tasks",
        personal_data={"notifications": "notifications.services:export_notifications"},
    ),
    Domain(
        "workers",
        api="workers.api",
        tasks="workers.tasks",
        metrics=("workers.metrics:BackboneCollector",),
    ),
    Domain(
        "loyalty",
        api="loyalty.api",
        events="loyalty.domain_events",
        tasks="loyalty.tasks",
        schedule=(
            PeriodicJob("points.expire_due", {"minute": 5}),
            PeriodicJob("points.warn_expiring", {"hour": 1, "minute": 15}),
            PeriodicJob("reconciliation.run", {"hour": 19, "minute": 30}),  # 03:30 in China
        ),
        personal_data={"points": "loyalty.balances:export_points"},
        profile="loyalty.balances:profile_fields",
        city_figures="loyalty.balances:city_figures",
        scorecard="loyalty.balances:scorecard_figures",
        demo="loyalty.seed:seed_rewards",
    ),
    Domain(
        "partners",
        api="partners.api",
        tasks="partners.tasks",
        schedule=(
            # Just after midnight in China: yesterday's contracts are over.
            PeriodicJob("partners.end_contracts", {"hour": 16, "minute": 10}),
            PeriodicJob("partners.compute_scorecards", {"hour": 18, "minute": 30}),
            PeriodicJob("partners.reconcile_budgets", {"hour": 19, "minute": 45}),
        ),
        demo="partners.seed:seed_partners",
        employers="partners.services:employers",
    ),
    Domain(
        "events",
        api="events.api",
        events="events.domain_events",
        tasks="events.tasks",
        schedule=(
            PeriodicJob("events.send_reminders", {"minute": "*/5"}),
            PeriodicJob("events.rotate_ticket_keys", {"hour": 17, "minute": 20}),
        ),
        commands=("events.cli:rotate_ticket_keys", "events.cli:retire_ticket_key"),
        personal_data={"event_registrations": "events.registration:export_registrations"},
        city_figures="events.city_stats:city_figures",
        scorecard="events.city_stats:scorecard_figures",
        demo="events.seed:seed_events",
    ),
    Domain(
        "community",
        api="community.api",
        events="community.domain_events",
        tasks="community.tasks",
        personal_data={
            "clubs": "community.clubs:export_clubs",
            "posts": "community.posts:export_posts",
            "comments": "community.posts:export_comments",
            "reports": "community.reports:export_reports",
        },
        scorecard="community.scorecard:scorecard_figures",
        demo="community.seed:seed_clubs",
        text_screen="community.words:contains_listed_word",
        backfills=(
            Backfill("community.moderation:copy_mutes_to_users", "{} mutes copied onto users"),
        ),
    ),
    Domain(
        "drops",
        api="drops.api",
        events="drops.domain_events",
        tasks="drops.tasks",
        # Starts the job of a drop whose chain of messages stopped (Redis lost them).
        schedule=(PeriodicJob("drops.sweep", {"minute": "*"}),),
        personal_data={"drop_entries": "drops.entries:export_entries"},
    ),
)


# Imports that reach a domain installed later, each with its reason (tests/test_structure.py
# holds every other import to the list's order): (importing module, imported module).
FORWARD_CALLS: frozenset[tuple[str, str]] = frozenset(
    {("accounts.passwords", "notifications.services")}  # the reset code, above
)


# Server-rendered front ends of the same app, installed after the domains' APIs: the staff
# consoles, which call the domains' services ("module:init_app(app)").
FRONT_ENDS: tuple[str, ...] = ("consoles:init_app",)


def packages() -> tuple[str, ...]:
    """The Python packages the service is made of: the base, the installed domains, the
    front ends and the dated migrations. The wheel holds exactly these and `wsgi`
    (tests/test_structure.py and tests/test_install.py)."""
    front_ends = tuple(dict.fromkeys(target.split(".")[0].split(":")[0] for target in FRONT_ENDS))
    return ("app", *(domain.name for domain in INSTALLED_DOMAINS), *front_ends, "migrations")


def resolve(target: str) -> Any:
    """The object a "module:name" entry names (the module is imported once, by Python)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def blueprints() -> list[Any]:
    return [
        blueprint
        for domain in INSTALLED_DOMAINS
        if domain.api
        for blueprint in resolve(f"{domain.api}:blueprints")
    ]


def event_types() -> list[Any]:
    """Every domain event type the installed domains declare (`app.outbox.EventType`), by
    name."""
    modules = [domain.events for domain in INSTALLED_DOMAINS if domain.events]
    for module in modules:
        importlib.import_module(module)
    outbox = importlib.import_module("app.outbox")
    return [kind for kind in outbox.declared_types() if kind.payload.__module__ in modules]


def task_modules() -> tuple[str, ...]:
    return tuple(domain.tasks for domain in INSTALLED_DOMAINS if domain.tasks)


def schedule() -> tuple[PeriodicJob, ...]:
    return tuple(job for domain in INSTALLED_DOMAINS for job in domain.schedule)


def metrics_collectors() -> list[Any]:
    return [resolve(target)() for domain in INSTALLED_DOMAINS for target in domain.metrics]


def commands() -> list[Any]:
    return [resolve(target) for domain in INSTALLED_DOMAINS for target in domain.commands]


def personal_data_sections() -> list[str]:
    """The sections of a personal data export, one per exporter, in export order."""
    return sorted(section for domain in INSTALLED_DOMAINS for section in domain.personal_data)


def personal_data(user_id: Any) -> dict[str, Any]:
    """Every domain's sections of one person's data, by section name."""
    exporters = {
        section: target
        for domain in INSTALLED_DOMAINS
        for section, target in domain.personal_data.items()
    }
    return {section: resolve(exporters[section])(user_id) for section in sorted(exporters)}


def profile_fields(user_id: Any) -> dict[str, Any]:
    """What other domains show in an account's profile (the loyalty tier...)."""
    fields: dict[str, Any] = {}
    for domain in INSTALLED_DOMAINS:
        if domain.profile:
            fields.update(resolve(domain.profile)(user_id))
    return fields


def city_figures(city_code: str, start: datetime, end: datetime) -> dict[str, Any]:
    """Every domain's engagement figures of one city for [start, end)."""
    figures: dict[str, Any] = {}
    for domain in INSTALLED_DOMAINS:
        if domain.city_figures:
            figures.update(resolve(domain.city_figures)(city_code, start, end))
    return figures


def scorecard_figures(scope: ScorecardScope) -> tuple[dict[str, Any], set[Any]]:
    """Every domain's scorecard figures for `scope`, and the union of the owners they saw
    active."""
    figures: dict[str, Any] = {}
    active: set[Any] = set()
    for domain in INSTALLED_DOMAINS:
        if domain.scorecard:
            part = resolve(domain.scorecard)(scope)
            figures.update(part.figures)
            active |= part.active_owner_ids
    return figures, active


def seed_demo() -> Iterator[str]:
    """The demo world, each domain's part in list order; yields what was done."""
    for domain in INSTALLED_DOMAINS:
        if domain.demo:
            yield from resolve(domain.demo)()


def employers(caller: Any) -> list[CityPartnerRef]:
    """The city partners `caller` works for, from the domains that keep them."""
    return [
        partner
        for domain in INSTALLED_DOMAINS
        if domain.employers
        for partner in resolve(domain.employers)(caller)
    ]


@cache
def _account_loader() -> Callable[[Any], Any]:
    [loader] = [domain.caller_loader for domain in INSTALLED_DOMAINS if domain.caller_loader]
    return resolve(loader)


def load_account(user_id: Any) -> Any:
    """The active account `user_id` names, as the domain that keeps accounts loads it (None:
    unknown or erased)."""
    return _account_loader()(user_id)


@cache
def _text_screen() -> Callable[[str], bool] | None:
    screens = [domain.text_screen for domain in INSTALLED_DOMAINS if domain.text_screen]
    return resolve(screens[0]) if screens else None


def contains_listed_word(text: str) -> bool:
    """Whether `text` holds a listed sensitive word (False when no domain keeps a list)."""
    screen = _text_screen()
    return screen is not None and screen(text)


def backfill() -> Iterator[str]:
    """Every domain's backfills, in list order; yields what each did."""
    for domain in INSTALLED_DOMAINS:
        for step in domain.backfills:
            yield step.done.format(resolve(step.target)())
