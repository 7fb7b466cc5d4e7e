"""Plain-text output for the terminal: tables (no dependency: a dozen lines do it), durations."""

from __future__ import annotations

from pathlib import Path


def render_table(headers: list[str], rows: list[list[object]], max_width: int = 48) -> str:
    """Left-aligned columns separated by two spaces; long cells are cut with an ellipsis, except
    in the last column, which aligns nothing after it (paths and errors stay whole there)."""
    def cell(value: object, last: bool = False) -> str:
        text = "" if value is None else str(value).replace("\n", " ")
        return text if last or len(text) <= max_width else text[: max_width - 1] + "…"

    last = len(headers) - 1
    table = [[cell(h) for h in headers]] + [[cell(v, i == last) for i, v in enumerate(row)]
                                            for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def distinct_names(paths: list[str]) -> dict[str, str]:
    """Each path's file name, with as many of its folders in front as it takes to tell it from
    the others named alike (two cards' IMG_0001.JPG: shootA/IMG_0001.JPG, shootB/IMG_0001.JPG)."""
    parts = {p: Path(p).parts for p in set(paths)}
    shown = {p: 1 for p in parts}
    while True:
        seen: dict[tuple, list[str]] = {}
        for p, n in shown.items():
            seen.setdefault(parts[p][-n:], []).append(p)
        clashes = [p for group in seen.values() if len(group) > 1 for p in group
                   if shown[p] < len(parts[p])]
        if not clashes:
            return {p: "/".join(parts[p][-n:]) for p, n in shown.items()}
        for p in clashes:
            shown[p] += 1


def duration_text(seconds: float) -> str:
    """'40 s', '14 min' or '2 h 5 min': a duration as people say it."""
    seconds = round(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {round(seconds % 3600 / 60)} min"
