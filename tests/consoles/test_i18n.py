"""The consoles speak zh-CN and en: every message the pages and their code say has its zh-CN
translation, and the compiled catalogue the app loads is the one its source says."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

import consoles

CONSOLES = Path(consoles.__file__).resolve().parent
CATALOGUE = CONSOLES / "translations" / "zh_Hans_CN" / "LC_MESSAGES"
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


def said_in_code() -> set[str]:
    return {
        message if isinstance(message, str) else message[0]
        for _, _, message, *_ in extract_from_dir(
            str(CONSOLES), METHODS, keywords=KEYWORDS, comment_tags=()
        )
    }


def test_every_message_has_its_zh_cn_translation():
    with (CATALOGUE / "messages.po").open("rb") as source:
        catalogue = read_po(source)
    translated = {m.id: m.string for m in catalogue if m.id and m.string}
    missing = sorted(said_in_code() - set(translated))
    assert missing == [], "run pybabel extract/update (README: Consoles) and translate these"
    for english, chinese in translated.items():
        assert english.count("%(") == chinese.count("%("), (english, chinese)


def test_the_compiled_catalogue_is_its_source():
    with (CATALOGUE / "messages.po").open("rb") as source:
        expected = {m.id: m.string for m in read_po(source) if m.id}
    with (CATALOGUE / "messages.mo").open("rb") as compiled:
        loaded = {m.id: m.string for m in read_mo(compiled) if m.id}
    assert loaded == expected, "run pybabel compile -d consoles/translations"
