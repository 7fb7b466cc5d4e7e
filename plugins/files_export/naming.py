"""Exported files' names from a template, as Lightroom's File Naming: {name} {stem} {recipe}
{date} {camera} {n} {title}, and "/" for subfolders."""

from __future__ import annotations

from photobatch.recipes.templates import template_problem

NAME_TOKENS = ("name", "stem", "recipe", "date", "camera", "n", "title")


def name_problem(template: str) -> str | None:
    """Why ``template`` cannot name files (None: it can)."""
    if not template.strip():
        return "is empty"
    return template_problem(template, NAME_TOKENS)


def export_name(template: str, item, n: int, width: int, title: str) -> str:
    """The file name (without extension) ``template`` gives ``item`` (an ExportItem), the
    ``n``-th of the export (``{n}`` zero-padded to ``width`` digits), in an export called
    ``title``. Characters no file system takes become "-"."""
    from photobatch.daemon.naming import camera_token, safe_part, taken_day

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
    # A "/" in the template makes subfolders (Lightroom's "Put in Subfolder": {date}/{stem});
    # a value's own "/" is not one, and no part may climb out of the destination.
    values = {k: v.replace("/", "-").replace("\\", "-") for k, v in values.items()}
    parts = [safe_part(part) for part in template.format(**values).split("/")]
    parts = [part for part in parts if part]
    return "/".join(parts) or f"photo-{values['n']}"
