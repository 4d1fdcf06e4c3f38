"""Sensitive words: a post or comment containing a listed word is held for review, and so
are report reasons and feedback comments; a name (display name, club name or description,
event title) containing one is refused (422 `sensitive_word`, `app.screening`).

Matching sees what a reader sees. Both the listed words and the text are read the same way
(`reading`): HTML entities decoded; letters Unicode draws in boxes, circles, flags or small
capitals without a decomposition (🅵, 🇫, ᴛ) mapped to their letter; NFKC (full-width and
mathematical letters become ASCII), case folding, Traditional to Simplified Chinese
(OpenCC `t2s`); combining marks and invisible fillers (Unicode's default-ignorable code
points: U+034F, variation selectors, U+3164, U+17B4, zero-width spaces...) dropped; and each
non-ASCII character replaced by its UTS #39 confusable skeleton, from ICU (Cyrillic `с`,
Greek `υ`, dotless `ı` read as `c`, `u`, `i`). Inside a run of Latin letters, digits and
`@`/`$` read as the letters they imitate (`sh1t`, `a$$`).

Then Chinese (and any word not written in Latin letters) is matched anywhere in the text
with every separator dropped ("傻 逼", "傻.逼"), while a Latin word is matched on word
boundaries: separators are dropped only where the words on either side of them together
spell the listed word ("f u c k", "f.u-c k", "fu ck"), so "push it" does not read "shit"
nor "class about glass" "ass"; a letter drawn out ("fuuuck") still matches. What this does
not see (pinyin, homophones, split characters, pictures of words) is listed in the API guide.

The text is scanned once for Chinese however long the list (an Aho-Corasick automaton of
the listed words, built once per version of the list and cached in the process), and its
Latin words looked up in a table of the listed ones. A process checks the list's version at
most every `SENSITIVE_WORDS_REFRESH_SECONDS` (one small read), and at once after it changed
the list itself.
"""

from __future__ import annotations

import html
import itertools
import re
import threading
import time
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import ahocorasick
import icu
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
_confusables = icu.SpoofChecker()
# Combining marks, enclosing marks, and what Unicode says to render as nothing.
_UNSEEN = frozenset(icu.UnicodeSet("[[:Default_Ignorable_Code_Point:][:Mn:][:Me:]]"))
_LETTER_DRAWN = re.compile(
    r"(?:NEGATIVE CIRCLED|NEGATIVE SQUARED|SQUARED|CIRCLED) LATIN CAPITAL LETTER ([A-Z])"
    r"|REGIONAL INDICATOR SYMBOL LETTER ([A-Z])|LATIN LETTER SMALL CAPITAL ([A-Z])"
)


def _drawn_letters() -> dict[int, str]:
    """Letters drawn in boxes, circles, flags or as small capitals that NFKC leaves alone
    (🅵, 🇫, ᴛ), by their Unicode names: each to its letter."""
    letters = {}
    for code in itertools.chain(
        range(0x1D00, 0x1DC0), range(0xA700, 0xA800), range(0x1F100, 0x1F200)
    ):
        found = _LETTER_DRAWN.fullmatch(unicodedata.name(chr(code), ""))
        if found:
            letters[code] = next(group for group in found.groups() if group).lower()
    return letters


_DRAWN = _drawn_letters()
# Inside a run of Latin letters, what digits and symbols imitate.
_LEET = str.maketrans("013457@$", "oieastas")
# A run of ASCII letters, digits, `@` and `$`; a run of letters of any other script.
_LATIN_RUN = re.compile(r"[a-z0-9@$]+")
_OTHER_SCRIPT = re.compile(r"[^\W\x00-\x7f]+")
_PIECES = re.compile(r"[a-z0-9@$]+|[^\W\x00-\x7f]+")


def _unseen(text: str) -> str:
    return "".join(char for char in unicodedata.normalize("NFD", text) if char not in _UNSEEN)


@lru_cache(maxsize=65_536)
def _skeleton(char: str) -> str:
    """The UTS #39 skeleton of one non-ASCII character, as a reader would take it."""
    # A skeleton may be a small capital (Cyrillic `т` is `ᴛ`): read as its letter too.
    return _unseen(_confusables.getSkeleton(0, char)).translate(_DRAWN).casefold()


def reading(text: str) -> str:
    """The text as a reader sees it (see the module docstring); separators are kept."""
    for _ in range(3):  # "&amp;#117;" is "&#117;" is "u"
        decoded = html.unescape(text)
        if decoded == text:
            break
        text = decoded
    text = unicodedata.normalize("NFKC", text.translate(_DRAWN)).casefold()
    text = _unseen(_to_simplified.convert(text))
    return "".join(char if char < "\x80" else _skeleton(char) for char in text)


def _latin(run: str) -> str:
    """A Latin run as read: digits and symbols among letters as the letters they imitate;
    without letters, its digits."""
    if re.search("[a-z]", run):
        return run.translate(_LEET)
    return run.replace("@", "").replace("$", "")


def _latin_words(read: str) -> list[list[str]]:
    """The Latin words of a reading, in stretches between letters of other scripts."""
    return [
        [word for word in map(_latin, _LATIN_RUN.findall(part)) if word]
        for part in _OTHER_SCRIPT.split(read)
    ]


def _joined(read: str) -> str:
    """A reading without separators: its Latin runs (as `_latin` reads them) and its other
    letters, in order."""
    return "".join(_latin(piece) if piece[0] < "\x80" else piece for piece in _PIECES.findall(read))


def normalise(text: str) -> str:
    """A listed word as matching stores it: its reading without separators."""
    return _joined(reading(text))


def _runs(word: str) -> tuple[str, tuple[int, ...]]:
    """A word's letters with each run of one letter drawn once, and the runs' lengths."""
    groups = [(letter, len(list(run))) for letter, run in itertools.groupby(word)]
    return "".join(letter for letter, _ in groups), tuple(length for _, length in groups)


@dataclass
class _Words:
    """One version of the list, ready to match."""

    # Words not written in Latin letters, found anywhere in the text's letters.
    automaton: Any = None
    # Latin words by their letters drawn once: the runs each needs at least; and every
    # beginning of those, where a join of words stops as soon as it leaves them.
    latin: dict[str, list[tuple[int, ...]]] = field(default_factory=lambda: defaultdict(list))
    beginnings: set[str] = field(default_factory=set)
    # Each Latin word as listed, by its letters and runs (what `matches` names).
    listed: dict[tuple[str, tuple[int, ...]], str] = field(default_factory=dict)

    def add(self, word: str) -> None:
        if re.fullmatch("[a-z0-9]+", word):
            letters, runs = _runs(word)
            self.latin[letters].append(runs)
            self.listed[(letters, runs)] = word
            self.beginnings.update(letters[:end] for end in range(1, len(letters) + 1))
            return
        if self.automaton is None:
            self.automaton = ahocorasick.Automaton()
        self.automaton.add_word(word, word)

    def done(self) -> _Words:
        if self.automaton is not None:
            self.automaton.make_automaton()
        return self

    def found_in(self, text: str) -> bool:
        read = reading(text)
        if self.automaton is not None and next(self.automaton.iter(_joined(read)), None):
            return True
        return bool(self.latin) and any(
            next(self._spelled(words), None) is not None for words in _latin_words(read)
        )

    def matches(self, text: str) -> list[str]:
        """Every listed word the text holds, as listed (normalised), in the order found."""
        read = reading(text)
        found: list[str] = []
        if self.automaton is not None:
            found += [word for _, word in self.automaton.iter(_joined(read))]
        if self.latin:
            for words in _latin_words(read):
                found += list(self._spelled(words))
        return list(dict.fromkeys(found))

    def _spelled(self, words: list[str]) -> Iterator[str]:
        """The listed Latin words that consecutive words, joined, spell."""
        spelt = [_runs(word) for word in words]
        for start in range(len(spelt)):
            letters, runs = "", tuple[int, ...]()
            for more, more_runs in spelt[start:]:
                if letters and letters[-1] == more[0]:  # a run across the join: "fu" "uck"
                    letters += more[1:]
                    runs = (*runs[:-1], runs[-1] + more_runs[0], *more_runs[1:])
                else:
                    letters, runs = letters + more, (*runs, *more_runs)
                if letters not in self.beginnings:
                    break
                for needed in self.latin.get(letters, ()):
                    if all(have >= need for have, need in zip(runs, needed, strict=True)):
                        yield self.listed[(letters, needed)]


class _Matcher:
    """The listed words of one version of the list, rebuilt when the version moves."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.version: int | None = None
        self.checked_at = 0.0
        self.words = _Words()

    def forget(self) -> None:
        # The version too: a count that started again (a restored or emptied database)
        # could reach the number this process last built and leave it on the old words.
        with self.lock:
            self.checked_at, self.version = 0.0, None

    def current(self) -> _Words:
        with self.lock:
            refresh = current_app.config["SENSITIVE_WORDS_REFRESH_SECONDS"]
            if time.monotonic() - self.checked_at < refresh:
                return self.words
            found = WordListVersion._get_collection().find_one({"_id": "sensitive_words"})
            version = found["version"] if found else 0
            if version != self.version:
                words = _Words()
                # From the words as listed, so a list stored by an earlier release's
                # normalisation reads as this one's.
                for row in SensitiveWord._get_collection().find({}, {"word": 1}):
                    if listed := normalise(row["word"]):
                        words.add(listed)
                self.words, self.version = words.done(), version
            self.checked_at = time.monotonic()
            return self.words


_matcher = _Matcher()


def contains_listed_word(text: str | None) -> bool:
    return bool(text) and _matcher.current().found_in(text or "")


def explain(admin: Caller, text: str) -> dict[str, Any]:
    """What the filter sees in `text` (an admin's "test a sentence"): its reading, its
    letters without separators, and the listed words it holds, with who listed each."""
    admin.require_admin()
    read = reading(text)
    listed = _matcher.current().matches(text)
    words = {}
    if listed:
        for row in SensitiveWord._get_collection().find({"normalised": {"$in": listed}}):
            words[row["normalised"]] = row
    return {
        "reading": read,
        "normalised": _joined(read),
        "held": bool(listed),
        "matches": [
            {
                "listed": word,
                "word": words.get(word, {}).get("word"),
                "word_id": words.get(word, {}).get("_id"),
            }
            for word in listed
        ],
    }


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
