"""Languages and time: zh-CN and en, from the browser's Accept-Language unless the person
picked one (kept in the cookie session), and every time in the city's time zone."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_decimal
from flask import Flask, request, session
from flask_babel import Babel, get_locale

from accounts.services import city_timezones
from events.listings import city_zone

# The languages, by HTML `lang` (what the switch and the cookie say), with Babel's name
# (which is also the folder of its catalogue under translations/).
LANGUAGES = {"zh-CN": "zh_Hans_CN", "en": "en"}
DEFAULT_LOCALE = "en"

babel = Babel()


def select_locale() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return LANGUAGES[chosen]
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
    return LANGUAGES["zh-CN"] if best and best.startswith("zh") else DEFAULT_LOCALE


def html_lang() -> str:
    return "zh-CN" if str(get_locale()).startswith("zh") else "en"


def _zone(city_code: str | None) -> ZoneInfo:
    zones = city_timezones({city_code} if city_code else set())
    return ZoneInfo(city_zone(city_code or "", zones))


def city_time(moment: datetime | None, city_code: str | None, style: str = "medium") -> str:
    """A time as the city reads it, in the caller's language (`style`: short, medium,
    date, time)."""
    if moment is None:
        return ""
    zone, locale = _zone(city_code), get_locale()
    if style == "date":
        return format_date(moment.astimezone(zone).date(), "medium", locale=locale)
    if style == "time":
        return format_time(moment, "short", tzinfo=zone, locale=locale)
    if style == "medium":  # the date spelled out, the time to the minute
        day = format_date(moment.astimezone(zone).date(), "medium", locale=locale)
        return f"{day} {format_time(moment, 'short', tzinfo=zone, locale=locale)}"
    return format_datetime(moment, style, tzinfo=zone, locale=locale)


def local_input(moment: datetime | None, city_code: str | None) -> str:
    """The value of a `datetime-local` input: the city's wall-clock time."""
    if moment is None:
        return ""
    return moment.astimezone(_zone(city_code)).strftime("%Y-%m-%dT%H:%M")


def from_local_input(value: str, city_code: str) -> datetime:
    """A `datetime-local` input's wall-clock time in the city, as an aware time."""
    return datetime.fromisoformat(value).replace(tzinfo=_zone(city_code))


def number(value: Any) -> str:
    if value is None:
        return "–"
    return format_decimal(value, locale=get_locale())


def shown(value: Any, city_code: str | None = None) -> str:
    """A stored value as a page shows it (an audit entry's before and after): a time in
    the city's zone, nothing as a dash."""
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return city_time(value, city_code, "short")
    return str(value)


def init_app(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.filters.update(
        citytime=city_time, number=number, local_input=local_input, shown=shown
    )
    app.jinja_env.globals.update(html_lang=html_lang)
