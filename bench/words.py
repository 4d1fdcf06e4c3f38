"""Benchmark: the sensitive-word filter on a long post, with a short list and a long one.

The filter reads a text once (normalised as a reader sees it, then one Aho-Corasick pass),
so its cost follows the text, not the list: the ratio of a check against 10,000 listed
words to one against 10 should stay near 1. Prints both times per check and the ratio.
Starts embedded servers when MONGODB_URI / REDIS_URL are unset.
`python bench/words.py [checks]`
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import load, servers  # noqa: E402

# About 2,800 characters, Latin and Chinese, as a long post.
TEXT = (
    "lorem ipsum dolor sit amet, consectetur adipiscing elit " * 40
) + "车主俱乐部的活动很好 " * 40


def _per_check(checks: int) -> float:
    from community import words

    assert words.contains_listed_word(TEXT) is False  # the automaton is built here
    started = time.perf_counter()
    for _ in range(checks):
        words.contains_listed_word(TEXT)
    return (time.perf_counter() - started) / checks


def main(checks: int) -> None:
    with servers("bench-words-"):
        from app import create_app
        from app.db import database
        from community import words

        app = create_app()
        with app.app_context():
            app.config["SENSITIVE_WORDS_REFRESH_SECONDS"] = 0
            for name in ("sensitive_words", "sensitive_word_versions"):
                database()[name].delete_many({})
            words.add_words([f"short{n}x" for n in range(10)])
            short = _per_check(checks)
            words.add_words([f"word{n:05d}x" for n in range(10_000)])
            long = _per_check(checks)
    print(f"bench/words.py ({load()}), {len(TEXT)} characters, {checks} checks each")
    print(f"  10 words:     {short * 1000:.2f} ms per check")
    print(f"  10,010 words: {long * 1000:.2f} ms per check")
    print(f"  ratio long/short: {long / short:.2f} (target: <= 1.5)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
