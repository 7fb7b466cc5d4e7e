"""The recipe reference: every field a recipe file may set, its default and what it does.

One source for ``photobatch recipes fields`` and docs/recipes.md (a test keeps the file equal to
what this renders), built from the schema's own field list and defaults and ``FIELD_HELP``.
"""

from __future__ import annotations

import dataclasses

from photobatch.recipes.field_help import FIELD_HELP
from photobatch.recipes.schema import _OUTPUT_FIELDS, _RECIPE_FIELDS, OutputSettings, Recipe

INTRO = """\
A recipe is a TOML file. Besides the fields below it may say `extends = "other"` (start from
another recipe and override a few fields; tables such as `[output]` merge key by key) and hold
`[variants.NAME]` tables (one recipe per variant, called `recipe:NAME`, with `default_variant`
naming the one plain `recipe` means). `photobatch recipes show NAME` prints a recipe with every
default filled in; `photobatch recipes new MINE --from NAME` writes a commented copy to edit.
"""


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        value = field.default
    elif field.default_factory is not dataclasses.MISSING:
        value = field.default_factory()
    else:
        return "(required)"
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[]" if not value else "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def field_rows() -> list[tuple[str, str, str]]:
    """(field, default, what it does) for every field a recipe file may set, the ``[output]``
    table's as ``output.NAME``, in the schema's order."""
    rows = [(f.name, "(none)" if f.name == "family" else _default(f), FIELD_HELP.get(f.name, ""))
            for f in dataclasses.fields(Recipe) if f.name in _RECIPE_FIELDS and f.name != "name"]
    rows += [(f"output.{f.name}", _default(f), FIELD_HELP.get(f"output.{f.name}", ""))
             for f in dataclasses.fields(OutputSettings) if f.name in _OUTPUT_FIELDS]
    return rows


def render_markdown() -> str:
    """docs/recipes.md: the intro and a table of every field."""
    lines = ["# Recipe reference", "",
             "Generated from the recipe schema by `tests/test_docs.py` (`PHOTOBATCH_UPDATE_DOCS=1 "
             "python -m pytest tests/test_docs.py` rewrites it); `photobatch recipes fields` prints "
             "the same.", "", INTRO, "| field | default | what it does |", "|---|---|---|"]
    for name, default, text in field_rows():
        cell = text.replace("|", "\\|")
        lines.append(f"| `{name}` | `{default}` | {cell} |")
    return "\n".join(lines) + "\n"


def render_text(width: int = 100) -> str:
    """The same reference for a terminal: each field, its default, and its help indented."""
    import textwrap

    out = [INTRO]
    for name, default, text in field_rows():
        out.append(f"{name} (default {default})")
        out += textwrap.wrap(text, width=width, initial_indent="    ", subsequent_indent="    ")
    return "\n".join(out) + "\n"
