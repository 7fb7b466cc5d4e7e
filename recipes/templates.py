"""Name templates with ``{tokens}`` (archive folders, export file names): which tokens one uses,
and why it cannot be used."""

from __future__ import annotations

import string


def template_problem(template: str, known: tuple[str, ...]) -> str | None:
    """Why ``template`` cannot be filled from the ``known`` tokens: a brace left open, or a
    token it does not know (named, with the known ones); None when it can."""
    try:
        used = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"is not a valid template ({exc})"
    unknown = [name for name in used if name not in known]
    if unknown:
        return (f"has an unknown token {{{unknown[0]}}} (known: "
                + " ".join("{" + t + "}" for t in known) + ")")
    return None
