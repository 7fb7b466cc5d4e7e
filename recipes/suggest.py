"""'Did you mean' for a mistyped name: the closest of the names allowed (as Click does)."""

from __future__ import annotations

import difflib
from typing import Iterable


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """``"; did you mean 'X'?"`` for the allowed name closest to ``word`` (the same name in
    another case first, then difflib's closest), else an empty string."""
    if not isinstance(word, str):
        return ""
    by_lower = {str(c).lower(): str(c) for c in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.75)
    if word.lower() in by_lower:
        close = [word.lower()]
    return f"; did you mean {by_lower[close[0]]!r}?" if close else ""
