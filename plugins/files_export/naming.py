"""Exported files' names from a template, as Lightroom's File Naming: {name} {stem} {recipe}
{date} {camera} {n} {title}."""

from __future__ import annotations

import re
import string

NAME_TOKENS = ("name", "stem", "recipe", "date", "camera", "n", "title")
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]+')


def name_problem(template: str) -> str | None:
    """Why ``template`` cannot name files (None: it can)."""
    try:
        used = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        return f"is not a valid template ({exc})"
    unknown = [field for field in used if field not in NAME_TOKENS]
    if unknown:
        return (f"has an unknown token {{{unknown[0]}}} (known: "
                + " ".join("{" + t + "}" for t in NAME_TOKENS) + ")")
    if not used and not template.strip():
        return "is empty"
    return None


def export_name(template: str, item, n: int, width: int, title: str) -> str:
    """The file name (without extension) ``template`` gives ``item`` (an ExportItem), the
    ``n``-th of the export (``{n}`` zero-padded to ``width`` digits), in an export called
    ``title``. Characters no file system takes become "-"."""
    from photobatch.daemon.naming import camera_token, taken_day

    summary = dict(item.metadata or {})
    values = {
        "name": item.output.stem,
        "stem": item.source.stem,
        "recipe": item.recipe.replace(":", "-"),
        "date": taken_day(item.source, summary),
        "camera": camera_token(summary),
        "n": f"{n:0{width}d}",
        "title": title,
    }
    return _UNSAFE.sub("-", template.format(**values)).strip(" .-") or f"photo-{values['n']}"
