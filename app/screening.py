"""What people write is screened for listed sensitive words wherever they write it, not only
in posts and comments: a name others see at once (a display name, a club's name or
description, an event's title) is refused with 422 `sensitive_word`, and free text with a
review behind it (report reasons, feedback comments) is held. The list and its matching
belong to the domain that keeps them (community's `words`), reached through the installed
domains, so a domain listed before it screens without importing it.
"""

from __future__ import annotations

from app import domains
from app.errors import ContainsSensitiveWord


def holds_listed_word(text: str | None) -> bool:
    return bool(text) and domains.contains_listed_word(text or "")


def refuse_listed_words(**texts: str | None) -> None:
    """422 `sensitive_word`, naming each field whose text holds a listed word."""
    fields = sorted(name for name, text in texts.items() if holds_listed_word(text))
    if fields:
        raise ContainsSensitiveWord(
            errors={name: ["Contains a listed sensitive word."] for name in fields}
        )
