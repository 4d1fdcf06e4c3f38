"""The sensitive-word list, for admins: every word with who listed it and when, adding and
removing, and a "test a sentence" box that shows what the filter sees (the text as it reads
it, its letters without separators, and the listed words it finds)."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from accounts.services import display_names
from app.auth import ADMIN, Caller
from app.errors import DomainError
from community import words
from consoles.web import ADMINS, attempt, back, console, flash_refusal


class WordForm(FlaskForm):
    word = StringField(_l("Word"), validators=[DataRequired(), Length(max=100)])


class SentenceForm(FlaskForm):
    text = TextAreaField(_l("A sentence to test"), validators=[DataRequired(), Length(max=5000)])


def _page(staff: Caller, explained: dict[str, Any] | None = None) -> str:
    listed = words.list_words(staff, request.args.get("cursor"), 100)
    names = display_names({w.created_by for w in listed["items"] if w.created_by})
    return render_template(
        "consoles/admin/words.html",
        page=listed,
        names={str(k): v for k, v in names.items()},
        form=WordForm(),
        sentence=SentenceForm(),
        explained=explained,
    )


@console.page("/words", roles=ADMINS, nav=(ADMIN, _l("Sensitive words")))
def sensitive_words(staff: Caller) -> str:
    return _page(staff)


@console.page("/words/add", roles=ADMINS, methods=("POST",))
def add_word(staff: Caller) -> Response:
    form = WordForm()
    if form.validate():
        attempt(lambda: words.add_word(staff, form.word.data or ""), _l("Listed."))
    return back("console.sensitive_words")


@console.page("/words/<word_id>/remove", roles=ADMINS, methods=("POST",))
def remove_word(staff: Caller, word_id: str) -> Response:
    attempt(lambda: words.remove_word(staff, word_id), _l("Taken off the list."))
    return back("console.sensitive_words")


@console.page("/words/test", roles=ADMINS, methods=("POST",))
def test_sentence(staff: Caller) -> str:
    """What the filter sees in a sentence, shown on the list's page."""
    form = SentenceForm()
    explained = None
    if form.validate():
        try:
            explained = words.explain(staff, form.text.data or "")
        except DomainError as refusal:
            flash_refusal(refusal)
    return _page(staff, explained)
