"""Sensitive words: a post or comment containing a listed word is held for review.

Matching sees through the usual evasions by normalising both the listed words and the text
the same way before comparing: NFKC (full-width letters and digits become ASCII), case
folding, Traditional to Simplified Chinese (OpenCC `t2s`), and dropping every space,
punctuation mark and symbol, so "f.u-c k" and "ｆｕｃｋ" both read "fuck".

The text is scanned once, however long the list: an Aho-Corasick automaton of every listed
word, built once per version of the list and cached in the process. A process checks the
list's version at most every `SENSITIVE_WORDS_REFRESH_SECONDS` (one small read), and at
once after it changed the list itself.
"""

from __future__ import annotations

import threading
import time
import unicodedata
from typing import Any

import ahocorasick
import opencc
import structlog
from flask import current_app
from mongoengine.errors import NotUniqueError
from pymongo.errors import BulkWriteError

from app.auth import Caller
from app.db import get_or_404
from app.web import paginate
from community.errors import NoLetters, WordListed
from community.models import SensitiveWord, WordListVersion

log = structlog.get_logger()

_to_simplified = opencc.OpenCC("t2s")
# Separators (Z*), punctuation (P*), symbols (S*) and controls (C*) carry no letters.
_DROPPED = ("Z", "P", "S", "C")


def normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    simplified = _to_simplified.convert(folded)
    return "".join(
        char
        for char in simplified
        if not char.isspace() and unicodedata.category(char)[0] not in _DROPPED
    )


class _Matcher:
    """The automaton of one version of the list, rebuilt when the version moves."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: int | None = None
        self.checked_at = 0.0
        self.automaton: Any = None

    def forget(self) -> None:
        with self.lock:
            self.checked_at = 0.0

    def current(self) -> Any:
        with self.lock:
            refresh = current_app.config["SENSITIVE_WORDS_REFRESH_SECONDS"]
            if time.monotonic() - self.checked_at < refresh:
                return self.automaton
            found = WordListVersion._get_collection().find_one({"_id": "sensitive_words"})
            version = found["version"] if found else 0
            if version != self.version:
                self.automaton = _build(
                    row["normalised"]
                    for row in SensitiveWord._get_collection().find({}, {"normalised": 1})
                )
                self.version = version
            self.checked_at = time.monotonic()
            return self.automaton


def _build(words: Any) -> Any:
    automaton = ahocorasick.Automaton()
    for word in words:
        automaton.add_word(word, word)
    if len(automaton) == 0:
        return None
    automaton.make_automaton()
    return automaton


_matcher = _Matcher()


def contains_listed_word(text: str) -> bool:
    automaton = _matcher.current()
    if automaton is None:
        return False
    return next(automaton.iter(normalise(text)), None) is not None


def _bump_version() -> None:
    WordListVersion._get_collection().update_one(
        {"_id": "sensitive_words"}, {"$inc": {"version": 1}}, upsert=True
    )
    _matcher.forget()


def list_words(admin: Caller, cursor: str | None, limit: int) -> dict[str, Any]:
    admin.require_admin()
    return paginate(SensitiveWord.objects, cursor, limit)


def add_words(words: list[str]) -> int:
    """Add many words at once (imports by operators); returns how many were new."""
    rows = [{"word": word, "normalised": normalise(word)} for word in words]
    rows = [row for row in rows if row["normalised"]]
    added = 0
    if rows:
        try:
            result = SensitiveWord._get_collection().insert_many(rows, ordered=False)
            added = len(result.inserted_ids)
        except BulkWriteError as exc:  # the words listed already are skipped
            added = exc.details.get("nInserted", 0)
        _bump_version()
    return added


def add_word(admin: Caller, word: str) -> SensitiveWord:
    admin.require_admin()
    normalised = normalise(word)
    if not normalised:
        raise NoLetters(errors={"word": ["No letters or digits."]})
    entry = SensitiveWord(word=word, normalised=normalised, created_by=admin.user.pk)
    try:
        entry.save(force_insert=True)
    except NotUniqueError as exc:
        raise WordListed(errors={"word": ["Already listed."]}) from exc
    _bump_version()
    log.info("sensitive_word_added", word_id=str(entry.pk), by=admin.id)
    return entry


def remove_word(admin: Caller, word_id: str) -> None:
    admin.require_admin()
    entry = get_or_404(SensitiveWord, word_id)
    entry.delete()
    _bump_version()
    log.info("sensitive_word_removed", word_id=word_id, by=admin.id)
