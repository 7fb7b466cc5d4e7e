"""A1111's prompt syntax, which recipes written by its users carry: emphasis and BREAK.

    (words)      attention x 1.1; ((words)) x 1.21
    [words]      attention / 1.1
    (words:1.5)  attention x 1.5 (any number; 0 silences the words)
    \\( \\) \\[ \\]  the brackets themselves
    BREAK        ends the current 75-token chunk (upper case, a word of its own)

A bracket left open weighs everything after it, as in A1111. Written for photobatch from the
syntax A1111 documents (its wiki's "Attention/emphasis" and "BREAK"); the encoding that applies
the weights is the runner's (``photobatch.plugins.diffusion.prompt_chunks``).
"""

from __future__ import annotations

import re

ROUND = 1.1
SQUARE = 1 / 1.1
# The weight of a BREAK marker: it is no text, it ends a chunk.
BREAK = None

_WEIGHT = re.compile(r":\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*\)")
_BREAK_WORD = re.compile(r"\s*\bBREAK\b\s*")
_ESCAPABLE = "()[]\\"


def parse(text: str) -> list[tuple[str, float | None]]:
    """``text`` as (fragment, weight) pairs in order; a BREAK is ("BREAK", None). Neighbours of
    equal weight are merged; a text without any syntax is one pair of weight 1.0."""
    pieces: list[list] = []
    plain: list[str] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def flush():
        if not plain:
            return
        for n, part in enumerate(_BREAK_WORD.split("".join(plain))):
            if n:
                pieces.append(["BREAK", BREAK])
            pieces.append([part, 1.0])
        plain.clear()

    def weigh_from(start: int, factor: float):
        for piece in pieces[start:]:
            if piece[1] is not BREAK:
                piece[1] *= factor

    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            plain.append(text[i + 1])
            i += 2
            continue
        weight = _WEIGHT.match(text, i) if c == ":" and round_open else None
        if weight:
            flush()
            weigh_from(round_open.pop(), float(weight.group(1)))
            i = weight.end()
            continue
        if c in "([":
            flush()
            (round_open if c == "(" else square_open).append(len(pieces))
        elif c == ")" and round_open:
            flush()
            weigh_from(round_open.pop(), ROUND)
        elif c == "]" and square_open:
            flush()
            weigh_from(square_open.pop(), SQUARE)
        else:
            plain.append(c)
        i += 1
    flush()
    for start in round_open:
        weigh_from(start, ROUND)
    for start in square_open:
        weigh_from(start, SQUARE)
    merged: list[list] = []
    for piece in pieces:
        if piece[0] == "" and piece[1] is not BREAK:
            continue
        if merged and piece[1] is not BREAK and merged[-1][1] == piece[1]:
            merged[-1][0] += piece[0]
        else:
            merged.append(piece)
    return [(t, w) for t, w in merged] or [("", 1.0)]


def uses_syntax(text: str) -> bool:
    """Whether ``text`` weighs any words or has a BREAK (read differently from plain text)."""
    return any(weight != 1.0 for _, weight in parse(text))


# CLIP's tokenizer first splits text into letter runs, single digits and runs of other
# characters, and every piece becomes at least one token: counting them is a lower bound.
_PIECES = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+", re.IGNORECASE)


def surely_longer_than_a_chunk(text: str, tokens: int = 75) -> bool:
    """True when ``text`` has more than ``tokens`` CLIP tokens for certain (without a tokenizer:
    it counts the pieces every one of which is at least one token)."""
    return len(_PIECES.findall(text.lower())) > tokens
